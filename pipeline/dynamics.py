"""Conversation dynamics: interruptions, non-talk time, holds, venting, pace, talk share.

Every measure is computed from a :class:`~pipeline.records.CallTranscript`: the per-channel
VAD regions (who is making sound when), the words and utterances (what is said), and the
channels' :class:`~pipeline.acoustics.ChannelAcoustics` (loudness, pitch, typing, music).
:func:`analyze_call` is a pure function; :class:`ComputeDynamics` runs it in Beam.

Event types and their ``attributes`` (a JSON object):

- ``interruption``: ``actor`` started speaking while the other party was speaking and kept
  talking past a backchannel. ``{"interrupted", "overlap"}``; the event spans the overlap.
- ``backchannel``: a short reply ("mm-hm") over the other party. ``{"host", "text"}``.
- ``non_talk``: both channels silent. ``{"during_hold"}``.
- ``hold``: the agent is away. ``{"music", "requested", "permission_asked",
  "customer_agreed", "request_utterance_id", "updates", "longest_wait",
  "over_limit_without_update"}``.
- ``venting``: the customer talks at length, louder/faster/more negative than their own
  baseline. ``{"intensity", "loudness_delta_db", "pitch_delta_semitones", "rate_ratio",
  "negative_words", "customer_share", "agent_interrupted", "agent_response_utterance_id",
  "agent_response_start", "agent_response_text"}``. ``agent_response_utterance_id`` joins
  with the classifier's labels (e.g. ``empathy``) in SQL.
- ``typing``: keyboard typing on the agent channel. ``{"clicks", "over_customer"}``.
- ``fast_pace``: an agent utterance spoken well above the agent's own rate in the same call
  (syllables per second of speech, relative to the rest of the agent's speech; see
  :func:`_fast_utterances`). ``{"utterance_id", "words", "syllables", "speech_seconds",
  "words_per_minute", "syllables_per_second", "baseline_syllables_per_second",
  "rate_ratio"}``; ``words_per_minute`` is over the utterance's speech time. The absolute
  practice limit is the call-level ``agent_pace_flag`` (``agent_max_wpm``).
- ``monologue``: an agent stretch of at least ``monologue_event_seconds``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from pipeline.acoustics import ChannelAcoustics, power_mean_db
from pipeline.deadletter import dead_letter_for
from pipeline.records import (
    AGENT,
    CUSTOMER,
    CallMetrics,
    CallTranscript,
    ChannelTranscript,
    Event,
    LoudnessSecond,
    Seconds,
    Utterance,
    UtteranceAcoustics,
    Word,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ComputeDynamics",
    "DynamicsDoFn",
    "DynamicsConfig",
    "DynamicsResult",
    "analyze_call",
    "compute_dynamics",
]

Span = tuple[Seconds, Seconds]

BACKCHANNEL_WORDS = frozenset(
    "mm mhm mm-hm mmhm hmm uh-huh uh huh uhhuh okay ok right yeah yes yep sure i see "
    "alright got it oh wow really".split()
)
"""Words a backchannel is made of (Jurafsky et al.'s Switchboard backchannel inventory)."""

NEGATIVE_WORDS = frozenset(
    """angry annoyed annoying awful bad cancel cancelling cancel complaint disappointed
    disgusting embarrassing excuses fault fed frustrated frustrating furious garbage hate
    horrible junk lost messed mistake mistakes nobody never nothing pathetic ridiculous rude
    sick stupid terrible unacceptable unhappy upset useless waste worst wrong forever
    worse""".split()
)
"""Negative-emotion words (a small lexicon in the spirit of LIWC's ``negemo`` category)."""

HOLD_REQUEST = re.compile(
    r"\bhold\b|\bbear with me\b|\bone moment\b|\b(a|one) (moment|minute|sec|second)\b"
)
PERMISSION = re.compile(
    r"\b(would|could|can|may|do|will) (you|i)\b.*\b(hold|moment|minute)\b|\bmind if\b"
    r"|\bis (it|that) (ok|okay|alright|all right)\b|\?"
)
AGREEMENT = re.compile(
    r"\b(sure|okay|ok|yes|yeah|yep|of course|go ahead|no problem|fine|alright|all right"
    r"|that's fine|no worries|please do)\b"
)
HOLD_UPDATE = re.compile(
    r"\b(still|thank you for (waiting|holding|your patience)|thanks for (waiting|holding)"
    r"|bear with me|almost|another (minute|moment)|few more)\b"
)


@dataclass(frozen=True)
class DynamicsConfig:
    """Thresholds of the conversation-dynamics measures.

    Attributes:
        backchannel_max_seconds: Speech over the other party this short is a backchannel
            ("mm-hm", "okay"), not an interruption. About one second is the usual cut-off
            for backchannels in conversation analysis (Heldner & Edlund 2010).
        backchannel_lexical_max_seconds: A slightly longer overlap is still a backchannel
            when all its words are backchannel words ("oh okay, right").
        min_overlap_seconds: Overlap shorter than this is turn-taking jitter (VAD padding,
            simultaneous starts), not an interruption.
        turn_pause_bridge: Pauses shorter than this inside one party's speech (commas,
            breaths; the VAD already splits at 0.3 s) keep the floor with that party.
        non_talk_min_seconds: Both channels silent this long is non-talk time. 3 s is the
            dead-air threshold of comparable tools (e.g. CallMiner, Observe.AI).
        hold_min_seconds: An agent absence this long, with the customer mostly silent, is a
            hold. Well above look-up pauses (3-6 s) and below the 30 s feedback interval.
        hold_max_customer_share: Above this share of customer speech inside an agent
            absence, the agent is listening, not holding.
        hold_resume_min_seconds: After a status update, an absence this long (or any absence
            filled with hold music) continues the hold; shorter ones are the pauses of a
            conversation resumed after the hold.
        hold_update_max_seconds: Agent speech inside a hold this short (one or two
            sentences, with the absence resuming after it) is a status update rather than
            the end of the hold.
        hold_request_window: The hold request is looked for in agent speech ending this
            many seconds before the hold.
        hold_answer_window: Customer speech starting within this many seconds of the
            agent's last words is the answer to the request; the hold begins after it.
        hold_feedback_interval: Practice: never leave a caller on hold more than 30 s
            without feedback (contact-center hold etiquette guidelines).
        hold_feedback_grace: A hold with status updates is flagged only when one wait
            exceeds the interval by more than this: it takes a few seconds to start an
            update, and waits are measured from the agent's last word. A hold with no update
            at all is flagged as soon as it runs past the interval.
        venting_min_seconds: Shortest venting window. The issue's example is 20 s of
            mostly-customer speech; the generated calls vent for 10-25 s, so 10 s.
        venting_min_customer_share: Share of the window the customer must be speaking.
        venting_max_gap: Customer phrases this close (and without agent turns between)
            belong to one window.
        venting_min_intensity: Phrase intensity (0-1, see ``_phrase_intensity``) from which
            a customer phrase counts as heated.
        venting_loudness_span_db: Loudness above the customer's own baseline giving full
            loudness score (a raised voice is ~6 dB louder).
        venting_pitch_span_semitones: Pitch rise above baseline giving full pitch score.
        venting_rate_span: Relative speech-rate increase giving full rate score.
        venting_weights: Weights of loudness, pitch, rate and negative-word scores.
        baseline_quantile: Quantile of the customer's phrase levels taken as their calm
            baseline (the lower quartile, so a long rant does not lift its own baseline).
        pace_min_words: Utterances with fewer words get no words-per-minute value.
        pace_min_seconds: Utterances shorter than this get no words-per-minute value.
        agent_max_wpm: Call-level agent pace limit in words per minute (``agent_pace_flag``).
            Practice: coaching guidance puts clear conversational phone speech at 140-160 wpm
            and flags agents above ~180 ("slow down, speak plainly"). It is a property of
            the agent's whole call, not of one utterance: voices differ too much for an
            absolute per-utterance limit (the generated voices speak 180-255 wpm normally).
        fast_pace_ratio: An agent utterance is rushed when its syllables per second of
            speech are at least this many times the agent's rate over the rest of the call.
            Measured on the generated set (benchmarks/DYNAMICS.md, real VAD): normal agent
            utterances of 10+ words reach at most 1.21x, those rendered at tempo 1.35 at
            least 1.30x (Whisper words; 1.15x and 1.33x with reference words). 1.25 sits
            between, about the speed-up a listener notices as rushing.
        fast_pace_min_words: Fewest words for a fast-pace event. The rate of a short phrase
            swings with a voice's rhythm and with ASR errors (Whisper hearing "started" as
            "is targeted" adds three syllables to a 1.8 s phrase): on the generated set,
            normal 6-9-word phrases reach 1.33x, normal utterances of 10+ words at most
            1.21x (Whisper words) and 1.15x (reference words); the rushed ones have 15-27.
        fast_pace_min_wpm: Floor in words per minute of speech time: an utterance faster
            than the agent's own baseline but slower than this is not rushed in absolute
            terms. Practice: the upper end of conversational pace (160 wpm).
        pace_baseline_min_words: Agent utterances with at least this many words form the
            baseline (shorter ones are mostly backchannels with unreliable rates).
        pace_baseline_min_seconds: Least agent speech (outside the utterance judged) for a
            baseline; with less, no utterance is judged. 10 s is a few sentences.
        latency_max_seconds: A customer-to-agent gap longer than this is a pause or hold,
            not response latency.
        monologue_max_gap: Agent speech separated by less than this (and no customer turn)
            is one monologue.
        monologue_event_seconds: Agent monologues this long are reported as events.
        loudness_scale_min_dbfs: Level mapped to 0 on the 0-100 loudness scale (quiet line
            noise on a phone call sits below -60 dBFS).
        loudness_scale_max_dbfs: Level mapped to 100 (digital full scale).
    """

    backchannel_max_seconds: Seconds = 1.0
    backchannel_lexical_max_seconds: Seconds = 1.6
    min_overlap_seconds: Seconds = 0.3
    turn_pause_bridge: Seconds = 0.6
    non_talk_min_seconds: Seconds = 3.0
    hold_min_seconds: Seconds = 10.0
    hold_max_customer_share: float = 0.25
    hold_resume_min_seconds: Seconds = 4.0
    hold_update_max_seconds: Seconds = 8.0
    hold_request_window: Seconds = 20.0
    hold_answer_window: Seconds = 5.0
    hold_feedback_interval: Seconds = 30.0
    hold_feedback_grace: Seconds = 5.0
    venting_min_seconds: Seconds = 10.0
    venting_min_customer_share: float = 0.6
    venting_max_gap: Seconds = 2.0
    venting_min_intensity: float = 0.4
    venting_loudness_span_db: float = 6.0
    venting_pitch_span_semitones: float = 3.0
    venting_rate_span: float = 0.2
    venting_weights: tuple[float, float, float, float] = (0.45, 0.15, 0.1, 0.3)
    baseline_quantile: float = 0.25
    pace_min_words: int = 3
    pace_min_seconds: Seconds = 1.0
    agent_max_wpm: float = 180.0
    fast_pace_ratio: float = 1.25
    fast_pace_min_words: int = 10
    fast_pace_min_wpm: float = 160.0
    pace_baseline_min_words: int = 5
    pace_baseline_min_seconds: Seconds = 10.0
    latency_max_seconds: Seconds = 5.0
    monologue_max_gap: Seconds = 2.0
    monologue_event_seconds: Seconds = 30.0
    loudness_scale_min_dbfs: float = -60.0
    loudness_scale_max_dbfs: float = 0.0


@dataclass(frozen=True)
class DynamicsResult:
    """Everything the dynamics stage computes for one call."""

    events: tuple[Event, ...]
    metrics: CallMetrics
    utterances: tuple[UtteranceAcoustics, ...] = field(default=())
    seconds: tuple[LoudnessSecond, ...] = field(default=())


# --------------------------------------------------------------------------- span helpers


def _merge(spans: Iterable[Span], gap: Seconds = 0.0) -> list[Span]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _overlap(spans: Sequence[Span], a: Seconds, b: Seconds) -> Seconds:
    return float(sum(max(0.0, min(b, y) - max(a, x)) for x, y in spans))


def _total(spans: Sequence[Span]) -> Seconds:
    return float(sum(b - a for a, b in spans))


def _intersection(xs: Sequence[Span], ys: Sequence[Span]) -> Seconds:
    return float(sum(_overlap(ys, a, b) for a, b in xs))


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def _words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:[-'][a-z]+)*", text.lower())


_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_DIGITS = re.compile(r"\d")


def syllable_count(text: str) -> int:
    """Approximate syllables of ``text``: vowel groups per word, silent final *e* and *-ed* dropped.

    A spelling heuristic, right for most English words within one syllable; rates are only
    ever compared within one speaker's call, so its bias cancels out. Digits count one
    syllable each (ASR may write numbers as digits).
    """
    total = len(_DIGITS.findall(text))
    for word in _words_of(text):
        word = word.replace("'", "").replace("-", "")
        n = len(_VOWEL_GROUP.findall(word))
        if n > 1 and word.endswith("e") and not word.endswith(("le", "ee", "ye")):
            n -= 1  # silent final e: "guide", "phone"
        elif n > 1 and word.endswith("ed") and word[-3] not in "aeiouytd":
            n -= 1  # silent e of -ed: "arrived", "booked" (not "added", "issued")
        total += max(n, 1)
    return total


# --------------------------------------------------------------------------- speech activity


def _activity(channel: ChannelTranscript) -> list[Span]:
    """Speech spans of a channel: VAD regions (words when there are none), minus hold music."""
    spans = [(r.start, r.end) for r in channel.regions]
    if not spans:
        spans = _merge(((w.start, w.end) for w in channel.words), gap=0.3)
    acoustics = channel.acoustics
    # Hold music plays on the agent's side; music on the customer's line is their background.
    music = (
        list(acoustics.music)
        if isinstance(acoustics, ChannelAcoustics) and channel.role == AGENT
        else []
    )
    if music:
        spans = [(a, b) for a, b in spans if _overlap(music, a, b) < 0.5 * (b - a)]
    return _merge(spans)


def _words_in(words: Sequence[Word], a: Seconds, b: Seconds) -> list[Word]:
    return [w for w in words if w.end > a and w.start < b and (w.start + w.end) / 2 >= a - 0.1]


# --------------------------------------------------------------------------- detectors


def _overlaps(
    spans: Mapping[str, list[Span]], words: Mapping[str, Sequence[Word]], config: DynamicsConfig
) -> list[dict[str, Any]]:
    """Interruptions and backchannels between the agent and the customer.

    A party's pauses inside a turn (the VAD splits at commas and breaths) do not give up the
    floor: the other party starting in such a pause still interrupts, and the first party
    resuming after it does not.
    """
    bridge = config.turn_pause_bridge
    turns = {role: _merge(role_spans, gap=bridge) for role, role_spans in spans.items()}
    found = []
    for actor, other in ((AGENT, CUSTOMER), (CUSTOMER, AGENT)):
        previous_end = float("-inf")
        for a, b in spans[actor]:
            resumed = a - previous_end <= bridge
            previous_end = b
            if resumed:
                continue
            for x, y in turns[other]:
                if not x < a < y:
                    continue
                overlap_end = min(b, y)
                text = " ".join(w.text for w in _words_in(words[actor], a, b)).strip()
                tokens = _words_of(text)
                lexical = bool(tokens) and all(t in BACKCHANNEL_WORDS for t in tokens)
                is_bc = (b - a <= config.backchannel_max_seconds and y > b) or (
                    lexical and b - a <= config.backchannel_lexical_max_seconds and y > b
                )
                if not is_bc and overlap_end - a < config.min_overlap_seconds:
                    break
                found.append(
                    {
                        "type": "backchannel" if is_bc else "interruption",
                        "actor": actor,
                        "start": a,
                        "end": b if is_bc else overlap_end,
                        "attributes": (
                            {"host": other, "text": text}
                            if is_bc
                            else {"interrupted": other, "overlap": _r(overlap_end - a)}
                        ),
                    }
                )
                break
    return found


def _non_talk(all_spans: Sequence[Span], duration: Seconds, config: DynamicsConfig) -> list[Span]:
    gaps = []
    t = 0.0
    for a, b in [*_merge(all_spans), (duration, duration)]:
        if a - t >= config.non_talk_min_seconds:
            gaps.append((t, a))
        t = max(t, b)
    return gaps


@dataclass
class _Hold:
    start: float
    end: float
    gaps: list[Span]
    updates: list[Span]


def _holds(
    agent: Sequence[Span],
    customer: Sequence[Span],
    music: Sequence[Span],
    config: DynamicsConfig,
) -> list[_Hold]:
    """Agent absences with a mostly silent customer, merged across status updates."""
    gaps = []
    for (_, e), (s, _) in zip(agent, agent[1:], strict=False):
        musical = s - e >= 1.0 and _overlap(music, e, s) >= 0.5 * (s - e)
        if s - e >= min(config.hold_resume_min_seconds, config.hold_min_seconds) or musical:
            if _overlap(customer, e, s) <= config.hold_max_customer_share * (s - e):
                gaps.append((e, s))
    holds: list[_Hold] = []
    for a, b in gaps:
        last = holds[-1] if holds else None
        if (
            last is not None
            and (b - a >= config.hold_resume_min_seconds or _overlap(music, a, b) >= 0.5 * (b - a))
            and a - last.end <= config.hold_update_max_seconds
            and last.end - last.gaps[0][0] >= config.hold_min_seconds
        ):
            last.updates.append((last.end, a))
            last.gaps.append((a, b))
            last.end = b
        elif b - a >= config.hold_min_seconds:
            holds.append(_Hold(a, b, [(a, b)], []))
        else:
            holds.append(_Hold(a, b, [(a, b)], []))  # a candidate; dropped below if short
    holds = [h for h in holds if h.gaps[0][1] - h.gaps[0][0] >= config.hold_min_seconds]
    # The hold begins after the customer's answer to the request ("Sure, go ahead").
    for h in holds:
        for x, y in customer:
            if h.start <= x <= h.start + config.hold_answer_window and y < h.gaps[0][1]:
                h.start = max(h.start, y)
    return holds


def _hold_attributes(
    hold: _Hold,
    utterances: Sequence[Utterance],
    labels: Mapping[str, Iterable[str]],
    music: Sequence[Span],
    config: DynamicsConfig,
) -> dict[str, Any]:
    agent_utts = [u for u in utterances if u.role == AGENT]
    customer_utts = [u for u in utterances if u.role == CUSTOMER]
    anchor = hold.gaps[0][0]
    request: Utterance | None = None
    for u in agent_utts:
        if anchor - config.hold_request_window <= u.end <= anchor + 0.5:
            text = u.text.lower()
            if "hold_request" in set(labels.get(u.utterance_id, ())) or HOLD_REQUEST.search(text):
                request = u
    permission = bool(request and PERMISSION.search(request.text.lower()))
    agreed = False
    if request is not None and permission:
        for u in customer_utts:
            if request.end - 0.5 <= u.start <= hold.start + 0.5 and AGREEMENT.search(
                u.text.lower()
            ):
                agreed = True
    waits = []
    t = hold.start
    for a, b in hold.updates:
        waits.append(a - t)
        t = b
    waits.append(hold.end - t)
    longest = max(waits)
    return {
        "music": _overlap(music, hold.start, hold.end) >= 0.3 * (hold.end - hold.start),
        "requested": request is not None,
        "permission_asked": permission,
        "customer_agreed": agreed,
        "request_utterance_id": request.utterance_id if request else None,
        "updates": len(hold.updates),
        "longest_wait": _r(longest),
        "over_limit_without_update": _over_limit(hold, longest, config),
    }


def _over_limit(hold: _Hold, longest_wait: float, config: DynamicsConfig) -> bool:
    """Whether the caller waited past the feedback interval without a status update."""
    if not hold.updates:
        return hold.end - hold.start > config.hold_feedback_interval
    return longest_wait > config.hold_feedback_interval + config.hold_feedback_grace


@dataclass
class _Phrase:
    start: float
    end: float
    words: list[Word]
    loudness: float | None = None
    pitch: float | None = None
    rate: float | None = None
    negative: int = 0
    intensity: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)


def _phrases(words: Sequence[Word], spans: Sequence[Span]) -> list[_Phrase]:
    """Customer speech cut at sentence ends and pauses (regions when there are no words)."""
    if not words:
        return [_Phrase(a, b, []) for a, b in spans]
    phrases: list[_Phrase] = []
    current: list[Word] = []
    for w in words:
        if current and (w.start - current[-1].end > 0.5):
            phrases.append(_Phrase(current[0].start, current[-1].end, current))
            current = []
        current.append(w)
        if w.text.strip().endswith((".", "?", "!")):
            phrases.append(_Phrase(current[0].start, current[-1].end, current))
            current = []
    if current:
        phrases.append(_Phrase(current[0].start, current[-1].end, current))
    return phrases


def _venting(
    phrases: list[_Phrase],
    customer: Sequence[Span],
    agent: Sequence[Span],
    acoustics: ChannelAcoustics | None,
    config: DynamicsConfig,
) -> list[tuple[float, float, list[_Phrase]]]:
    """Windows of heated customer phrases, scored against the customer's own baseline."""
    if not phrases:
        return []
    for p in phrases:
        if acoustics is not None:
            p.loudness = acoustics.loudness(p.start, p.end)
            p.pitch = acoustics.pitch(p.start, p.end)
        if p.words and p.end - p.start > 0.5:
            p.rate = len(p.words) / (p.end - p.start)
        p.negative = sum(t in NEGATIVE_WORDS for w in p.words for t in _words_of(w.text))

    def baseline(values: list[tuple[float, float]]) -> float | None:
        if not values:
            return None
        v = np.array([x for x, _ in values])
        wts = np.array([d for _, d in values])
        order = np.argsort(v)
        cum = np.cumsum(wts[order]) / wts.sum()
        return float(v[order][np.searchsorted(cum, config.baseline_quantile)])

    dur = [(p.end - p.start) for p in phrases]
    base_loud = baseline(
        [(p.loudness, d) for p, d in zip(phrases, dur, strict=True) if p.loudness is not None]
    )
    base_pitch = baseline(
        [(p.pitch, d) for p, d in zip(phrases, dur, strict=True) if p.pitch is not None]
    )
    rates = [p.rate for p in phrases if p.rate is not None]
    base_rate = float(np.median(rates)) if rates else None
    w_loud, w_pitch, w_rate, w_neg = config.venting_weights
    for p in phrases:
        loud = 0.0 if p.loudness is None or base_loud is None else p.loudness - base_loud
        pitch = (
            0.0
            if p.pitch is None or base_pitch is None
            else 12.0 * float(np.log2(p.pitch / base_pitch))
        )
        rate = 0.0 if p.rate is None or not base_rate else p.rate / base_rate - 1.0
        p.parts = {"loudness_delta_db": loud, "pitch_delta_semitones": pitch, "rate_ratio": rate}
        p.intensity = (
            w_loud * float(np.clip(loud / config.venting_loudness_span_db, 0, 1))
            + w_pitch * float(np.clip(pitch / config.venting_pitch_span_semitones, 0, 1))
            + w_rate * float(np.clip(rate / config.venting_rate_span, 0, 1))
            + w_neg * float(np.clip(p.negative / 2, 0, 1))
        )
    windows: list[tuple[float, float, list[_Phrase]]] = []
    run: list[_Phrase] = []
    candidates: list[_Phrase | None] = [*phrases, None]
    for phrase in candidates:
        hot = phrase is not None and phrase.intensity >= config.venting_min_intensity
        if hot and run and phrase is not None:
            gap_agent = [
                (a, b)
                for a, b in agent
                if a < phrase.start
                and b > run[-1].end
                and b - a > config.backchannel_max_seconds
            ]
            if phrase.start - run[-1].end > config.venting_max_gap or gap_agent:
                windows.append((run[0].start, run[-1].end, run))
                run = []
        if hot and phrase is not None:
            run.append(phrase)
        elif run:
            windows.append((run[0].start, run[-1].end, run))
            run = []
    kept = []
    for a, b, ps in windows:
        if b - a < config.venting_min_seconds:
            continue
        if _overlap(customer, a, b) < config.venting_min_customer_share * (b - a):
            continue
        kept.append((a, b, ps))
    return kept


def _response_latencies(
    agent: Sequence[Span], customer: Sequence[Span], config: DynamicsConfig
) -> list[float]:
    out = []
    for i, (_, ce) in enumerate(customer):
        next_customer = customer[i + 1][0] if i + 1 < len(customer) else float("inf")
        for a, b in agent:
            if a < ce < b:
                break  # the agent was already talking: an overlap, not a response
            if a >= ce:
                if a < next_customer and a - ce <= config.latency_max_seconds:
                    out.append(a - ce)
                break
    return out


def _monologues(
    agent: Sequence[Span], customer: Sequence[Span], config: DynamicsConfig
) -> list[Span]:
    turns = [(a, b) for a, b in customer if b - a > config.backchannel_max_seconds]
    out: list[list[float]] = []
    for a, b in agent:
        if (
            out
            and a - out[-1][1] <= config.monologue_max_gap
            and not any(x < a and y > out[-1][1] for x, y in turns)
        ):
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


# --------------------------------------------------------------------------- the call


def _scale(db: float | None, config: DynamicsConfig) -> float | None:
    if db is None:
        return None
    lo, hi = config.loudness_scale_min_dbfs, config.loudness_scale_max_dbfs
    return round(float(np.clip((db - lo) / (hi - lo) * 100.0, 0.0, 100.0)), 1)


def _wpm(words: int, seconds: float, config: DynamicsConfig) -> float | None:
    if words < config.pace_min_words or seconds < config.pace_min_seconds:
        return None
    return round(words / seconds * 60.0, 1)


@dataclass(frozen=True)
class _Rate:
    utterance: Utterance
    words: int
    syllables: int
    speech: Seconds


SPEECH_SLACK: Seconds = 0.3
"""VAD speech counted around an utterance's words (the VAD's own minimum silence): Whisper's
word times often start late or end early by 0.1-0.3 s."""


def _speech_times(utterances: Sequence[Utterance], regions: Sequence[Span]) -> list[Seconds]:
    """Seconds of speech of each of one speaker's utterances.

    Pauses between sentences are not speech: a rate over the utterance's span would call a
    speaker who pauses slow. The speech time is the speaker's VAD speech inside the
    utterance's own span widened by ``SPEECH_SLACK`` (never past halfway to the speaker's
    previous or next utterance), and never less than its words' own time (word spans closer
    than the slack joined). Bounded by its own span, an utterance cannot take a neighbour's
    speech, and bounded below by its words it cannot collapse to a sliver (which gave real
    utterances rates of 500-1,300 words per minute).
    """
    ordered = sorted(range(len(utterances)), key=lambda i: utterances[i].start)
    times = [0.0] * len(utterances)
    for k, i in enumerate(ordered):
        u = utterances[i]
        lo, hi = u.start - SPEECH_SLACK, u.end + SPEECH_SLACK
        if k > 0:
            lo = max(lo, (utterances[ordered[k - 1]].end + u.start) / 2)
        if k + 1 < len(ordered):
            hi = min(hi, (u.end + utterances[ordered[k + 1]].start) / 2)
        in_span = _overlap(regions, lo, hi)
        spoken = _total(_merge(((w.start, w.end) for w in u.words), gap=SPEECH_SLACK))
        times[i] = max(in_span, spoken)
    return times


def _fast_utterances(
    utterances: Sequence[Utterance], regions: Sequence[Span], config: DynamicsConfig
) -> list[dict[str, Any]]:
    """Agent utterances spoken well above the agent's own rate in the call.

    The rate is syllables per second of speech (less sensitive to word length than words
    per minute). Each utterance is compared with the pooled rate of the agent's other
    utterances (total syllables over total speech time, so long utterances weigh more and
    the one judged does not lift its own baseline).
    """
    rates = []
    for u, speech in zip(utterances, _speech_times(utterances, regions), strict=True):
        if len(u.words) < config.pace_baseline_min_words:
            continue
        if speech > 0.0:
            text = " ".join(w.text for w in u.words)
            rates.append(_Rate(u, len(u.words), syllable_count(text), speech))
    total_syllables = sum(r.syllables for r in rates)
    total_speech = sum(r.speech for r in rates)
    found = []
    for r in rates:
        if r.words < config.fast_pace_min_words:
            continue
        rest_speech = total_speech - r.speech
        if rest_speech < config.pace_baseline_min_seconds:
            continue
        baseline = (total_syllables - r.syllables) / rest_speech
        rate = r.syllables / r.speech
        wpm = r.words / r.speech * 60.0
        if baseline <= 0.0 or rate < config.fast_pace_ratio * baseline:
            continue
        if wpm < config.fast_pace_min_wpm:
            continue
        found.append(
            {
                "type": "fast_pace",
                "actor": AGENT,
                "start": r.utterance.start,
                "end": r.utterance.end,
                "attributes": {
                    "utterance_id": r.utterance.utterance_id,
                    "words": r.words,
                    "syllables": r.syllables,
                    "speech_seconds": _r(r.speech),
                    "words_per_minute": _r(wpm, 1),
                    "syllables_per_second": _r(rate, 2),
                    "baseline_syllables_per_second": _r(baseline, 2),
                    "rate_ratio": _r(rate / baseline),
                },
            }
        )
    return found


def analyze_call(
    call: CallTranscript,
    config: DynamicsConfig | None = None,
    labels: Mapping[str, Iterable[str]] | None = None,
) -> DynamicsResult:
    """Computes the conversation dynamics of one call.

    Args:
        call: The call after VAD, ASR and (optionally) acoustic analysis.
        config: Thresholds.
        labels: Optional classifier labels per ``utterance_id`` (``hold_request`` marks a
            hold request the keyword rules miss).

    Returns:
        Events, call metrics, per-utterance loudness/pace and per-second loudness.
    """
    config = config or DynamicsConfig()
    labels = labels or {}
    call_id = call.call_id
    duration = float(call.duration)
    agent_ch = call.channel_of(AGENT)
    customer_ch = call.channel_of(CUSTOMER)
    two_party = agent_ch is not None and customer_ch is not None
    activity = {ch.role: _activity(ch) for ch in call.channels}
    words = {ch.role: ch.words for ch in call.channels}
    spans = {AGENT: activity.get(AGENT, []), CUSTOMER: activity.get(CUSTOMER, [])}
    word_map = {AGENT: words.get(AGENT, ()), CUSTOMER: words.get(CUSTOMER, ())}
    acoustics = {
        ch.role: ch.acoustics for ch in call.channels if isinstance(ch.acoustics, ChannelAcoustics)
    }
    drafts: list[dict[str, Any]] = []

    # Non-talk: every channel silent.
    all_spans = [s for ch_spans in activity.values() for s in ch_spans]
    non_talk = _non_talk(all_spans, duration, config)

    overlaps = _overlaps(spans, word_map, config) if two_party else []
    drafts += overlaps

    holds: list[_Hold] = []
    hold_attrs: list[dict[str, Any]] = []
    if two_party:
        agent_music = list(acoustics[AGENT].music) if AGENT in acoustics else []
        holds = _holds(spans[AGENT], spans[CUSTOMER], agent_music, config)
        for h in holds:
            attrs = _hold_attributes(h, call.utterances, labels, agent_music, config)
            hold_attrs.append(attrs)
            drafts.append(
                {"type": "hold", "actor": AGENT, "start": h.start, "end": h.end,
                 "attributes": attrs}
            )  # fmt: skip
    hold_spans = [(h.start, h.end) for h in holds]
    for a, b in non_talk:
        drafts.append(
            {"type": "non_talk", "actor": "both", "start": a, "end": b,
             "attributes": {"during_hold": _overlap(hold_spans, a, b) > 0.5 * (b - a)}}
        )  # fmt: skip

    # Venting windows of the customer.
    venting: list[tuple[float, float, list[_Phrase]]] = []
    if two_party:
        phrases = _phrases(word_map[CUSTOMER], spans[CUSTOMER])
        venting = _venting(phrases, spans[CUSTOMER], spans[AGENT], acoustics.get(CUSTOMER), config)
    agent_utts = [u for u in call.utterances if u.role == AGENT]
    venting_interrupted = 0
    for a, b, ps in venting:
        interrupted = any(
            o["type"] == "interruption" and o["actor"] == AGENT and a - 0.5 <= o["start"] <= b
            for o in overlaps
        )
        venting_interrupted += interrupted
        response = next((u for u in agent_utts if u.start >= a and u.end > b - 0.5), None)
        wts = np.array([p.end - p.start for p in ps])

        def wmean(key: str, ps: list[_Phrase] = ps, wts: np.ndarray = wts) -> float:
            return float(np.average([p.parts[key] for p in ps], weights=wts))

        drafts.append(
            {
                "type": "venting",
                "actor": CUSTOMER,
                "start": a,
                "end": b,
                "attributes": {
                    "intensity": _r(float(np.average([p.intensity for p in ps], weights=wts))),
                    "loudness_delta_db": _r(wmean("loudness_delta_db"), 2),
                    "pitch_delta_semitones": _r(wmean("pitch_delta_semitones"), 2),
                    "rate_ratio": _r(1.0 + wmean("rate_ratio")),
                    "negative_words": int(sum(p.negative for p in ps)),
                    "customer_share": _r(_overlap(spans[CUSTOMER], a, b) / max(b - a, 1e-9)),
                    "agent_interrupted": bool(interrupted),
                    "agent_response_utterance_id": response.utterance_id if response else None,
                    "agent_response_start": _r(response.start) if response else None,
                    "agent_response_text": response.text if response else None,
                },
            }
        )

    # Typing on the agent channel, and how much of it the customer talks over.
    typing_spans: list[Span] = []
    typing_over_customer: float | None = None
    if AGENT in acoustics:
        agent_ac = acoustics[AGENT]
        typing_spans = list(agent_ac.typing)
        clicks = list(agent_ac.typing_clicks) or [0] * len(typing_spans)
        for (a, b), n in zip(typing_spans, clicks, strict=False):
            drafts.append(
                {"type": "typing", "actor": AGENT, "start": a, "end": b,
                 "attributes": {"clicks": n, "over_customer": _r(_overlap(spans[CUSTOMER], a, b))}}
            )  # fmt: skip
        typing_over_customer = (
            _r(_intersection(typing_spans, spans[CUSTOMER])) if customer_ch is not None else None
        )

    # Per-utterance loudness and pace.
    utterance_rows = []
    for u in call.utterances:
        ac = acoustics.get(u.role)
        db = ac.loudness(u.start, u.end) if ac is not None else None
        wpm = _wpm(len(u.words), u.duration, config)
        utterance_rows.append(
            UtteranceAcoustics(
                utterance_id=u.utterance_id,
                call_id=call_id,
                role=u.role,
                loudness_dbfs=_r(db, 2),
                loudness=_scale(db, config),
                words_per_minute=wpm,
                pitch_hz=_r(ac.pitch(u.start, u.end), 1) if ac is not None else None,
            )
        )

    fast_drafts = (
        _fast_utterances(
            [u for u in call.utterances if u.role == AGENT],
            [(r.start, r.end) for r in agent_ch.regions],
            config,
        )
        if agent_ch is not None
        else []
    )
    drafts += fast_drafts
    fast = len(fast_drafts)

    def party_wpm(role: str) -> float | None:
        # Words over the party's talk time with the pauses inside their turns (speech joined
        # across gaps under monologue_max_gap with no turn of the other party): the measure
        # behind the 140-180 wpm phone norms, which count a speaker's pauses.
        other = CUSTOMER if role == AGENT else AGENT
        us = [u for u in call.utterances if u.role == role]
        n = sum(len(u.words) for u in us)
        own = _merge((u.start, u.end) for u in us)
        turns = _monologues(own, _merge((u.start, u.end) for u in call.utterances
                                        if u.role == other), config)
        return _wpm(n, _total(turns), config)

    monologues = _monologues(spans[AGENT], spans[CUSTOMER], config) if agent_ch else []
    for a, b in monologues:
        if b - a >= config.monologue_event_seconds:
            drafts.append(
                {"type": "monologue", "actor": AGENT, "start": a, "end": b, "attributes": {}}
            )
    latencies = _response_latencies(spans[AGENT], spans[CUSTOMER], config) if two_party else []

    # Per-second loudness of every channel.
    seconds_rows = []
    for ch in call.channels:
        ac = acoustics.get(ch.role)
        if ac is None:
            continue
        per = int(round(1.0 / ac.hop))
        n_sec = ac.num_frames // per
        if n_sec == 0:
            continue
        lv = ac.loudness_db[: n_sec * per].astype(np.float64).reshape(n_sec, per)
        sec_db = 10.0 * np.log10(np.mean(np.power(10.0, lv / 10.0), axis=1))
        ch_spans = activity[ch.role]
        for s in range(n_sec):
            seconds_rows.append(
                LoudnessSecond(
                    call_id=call_id,
                    role=ch.role,
                    second=s,
                    loudness_dbfs=round(float(sec_db[s]), 2),
                    loudness=_scale(float(sec_db[s]), config) or 0.0,
                    speech=round(_overlap(ch_spans, s, s + 1.0), 2),
                )
            )

    drafts.sort(key=lambda d: (d["start"], d["end"], d["type"]))
    events = tuple(
        Event(
            call_id=call_id,
            event_id=f"{call_id}/e{i:04d}",
            type=d["type"],
            actor=d["actor"],
            start=round(float(d["start"]), 3),
            end=round(float(d["end"]), 3),
            attributes=json.dumps(d["attributes"], sort_keys=True),
        )
        for i, d in enumerate(drafts, start=1)
    )

    interruptions = [o for o in overlaps if o["type"] == "interruption"]
    agent_talk = _total(spans[AGENT]) if agent_ch else None
    customer_talk = _total(spans[CUSTOMER]) if customer_ch else None
    talk_sum = (agent_talk or 0.0) + (customer_talk or 0.0)
    utt_loud = [r.loudness_dbfs for r in utterance_rows if r.role == CUSTOMER and r.loudness_dbfs]

    def speech_db(role: str) -> float | None:
        ac = acoustics.get(role)
        if ac is None or not activity.get(role):
            return None
        parts = [ac.loudness_db[ac.frame_range(a, b)] for a, b in activity[role]]
        return _r(power_mean_db(np.concatenate(parts)) if parts else None, 2)

    def count(kind: str, actor: str | None = None) -> int | None:
        if not two_party:
            return None
        return sum(
            1 for o in overlaps if o["type"] == kind and (actor is None or o["actor"] == actor)
        )

    metrics = CallMetrics(
        call_id=call_id,
        duration=round(duration, 3),
        interruptions=count("interruption"),
        agent_interruptions=count("interruption", AGENT),
        customer_interruptions=count("interruption", CUSTOMER),
        interruption_seconds=_r(sum(o["end"] - o["start"] for o in interruptions))
        if two_party
        else None,
        agent_interruption_seconds=_r(
            sum(o["end"] - o["start"] for o in interruptions if o["actor"] == AGENT)
        )
        if two_party
        else None,
        agent_backchannels=count("backchannel", AGENT),
        customer_backchannels=count("backchannel", CUSTOMER),
        overlap_seconds=_r(_intersection(spans[AGENT], spans[CUSTOMER])) if two_party else None,
        non_talk_count=len(non_talk),
        non_talk_seconds=_r(_total(non_talk)) or 0.0,
        non_talk_longest=_r(max((b - a for a, b in non_talk), default=0.0)) or 0.0,
        non_talk_share=_r(_total(non_talk) / duration) if duration > 0 else None,
        holds=len(holds) if two_party else None,
        hold_seconds=_r(sum(h.end - h.start for h in holds)) if two_party else None,
        holds_unannounced=sum(not a["requested"] for a in hold_attrs) if two_party else None,
        holds_without_permission=sum(not a["permission_asked"] for a in hold_attrs)
        if two_party
        else None,
        holds_without_agreement=sum(not a["customer_agreed"] for a in hold_attrs)
        if two_party
        else None,
        holds_over_limit_without_update=sum(a["over_limit_without_update"] for a in hold_attrs)
        if two_party
        else None,
        hold_updates=sum(a["updates"] for a in hold_attrs) if two_party else None,
        venting_windows=len(venting) if two_party else None,
        venting_seconds=_r(sum(b - a for a, b, _ in venting)) if two_party else None,
        venting_interrupted_by_agent=venting_interrupted if two_party else None,
        agent_words_per_minute=party_wpm(AGENT),
        customer_words_per_minute=party_wpm(CUSTOMER),
        agent_fast_utterances=fast if agent_ch else None,
        agent_pace_flag=None
        if party_wpm(AGENT) is None
        else bool((party_wpm(AGENT) or 0.0) > config.agent_max_wpm),
        agent_talk_seconds=_r(agent_talk),
        customer_talk_seconds=_r(customer_talk),
        agent_talk_share=_r(agent_talk / duration) if agent_talk is not None and duration else None,
        customer_talk_share=_r(customer_talk / duration)
        if customer_talk is not None and duration
        else None,
        agent_talk_ratio=_r((agent_talk or 0.0) / talk_sum) if two_party and talk_sum else None,
        response_latency_mean=_r(float(np.mean(latencies))) if latencies else None,
        response_latency_median=_r(float(np.median(latencies))) if latencies else None,
        response_latency_count=len(latencies) if two_party else None,
        longest_agent_monologue=_r(max((b - a for a, b in monologues), default=0.0))
        if agent_ch
        else None,
        typing_seconds=_r(_total(typing_spans)) if AGENT in acoustics else None,
        typing_over_customer_seconds=typing_over_customer,
        agent_loudness_dbfs=speech_db(AGENT),
        customer_loudness_dbfs=speech_db(CUSTOMER),
        agent_loudness=_scale(speech_db(AGENT), config),
        customer_loudness=_scale(speech_db(CUSTOMER), config),
        customer_loudness_max_dbfs=_r(max(utt_loud), 2) if utt_loud else None,
        agent_noise_floor_dbfs=acoustics[AGENT].noise_floor_db if AGENT in acoustics else None,
        customer_noise_floor_dbfs=acoustics[CUSTOMER].noise_floor_db
        if CUSTOMER in acoustics
        else None,
    )
    result = DynamicsResult(events, metrics, tuple(utterance_rows), tuple(seconds_rows))
    if call.header.num_channels == 1:
        from pipeline.diarization import mono_not_measurable

        result = mono_not_measurable(result)
    return result


def compute_dynamics(
    call: CallTranscript,
    config: DynamicsConfig | None = None,
    labels: Mapping[str, Iterable[str]] | None = None,
) -> tuple[list[Event], CallMetrics]:
    """Events and call-level metrics of one call (see :func:`analyze_call`)."""
    result = analyze_call(call, config, labels)
    return list(result.events), result.metrics


# --------------------------------------------------------------------------- Beam


class DynamicsDoFn(beam.DoFn):
    """Runs :func:`analyze_call` on each call; failures go to ``dead_letter``."""

    def __init__(self, config: DynamicsConfig):
        self.config = config
        self.calls = Metrics.counter("dynamics", "calls")
        self.failed = Metrics.counter("dynamics", "calls_failed")
        self.events = Metrics.counter("dynamics", "events")

    def process(
        self, element: CallTranscript | tuple[CallTranscript, Mapping[str, Iterable[str]]]
    ) -> Iterator[Any]:
        # A bare transcript, or a transcript with its classifier labels by utterance_id.
        call, labels = element if isinstance(element, tuple) else (element, None)
        try:
            result = analyze_call(call, self.config, labels)
        except Exception as e:  # any failure of one call becomes a dead letter
            logger.exception("dynamics failed for %s", getattr(call, "call_id", "?"))
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(
                ComputeDynamics.DEAD_LETTER, dead_letter_for(call, "dynamics", e)
            )
            return
        self.calls.inc()
        self.events.inc(len(result.events))
        yield beam.pvalue.TaggedOutput(ComputeDynamics.CALL_METRICS, result.metrics)
        for ev in result.events:
            yield beam.pvalue.TaggedOutput(ComputeDynamics.EVENTS, ev)
        for row in result.utterances:
            yield beam.pvalue.TaggedOutput(ComputeDynamics.UTTERANCE_METRICS, row)
        for sec in result.seconds:
            yield beam.pvalue.TaggedOutput(ComputeDynamics.LOUDNESS_SECONDS, sec)


class ComputeDynamics(beam.PTransform):
    """Beam transform: ``PCollection[CallTranscript]`` to the dynamics tables.

    Elements may also be ``(CallTranscript, labels)`` pairs, ``labels`` mapping utterance ids
    to the classifier's label names (hold requests and updates are then taken from them).

    Returns a ``DoOutputsTuple`` with the outputs ``events`` (:class:`Event`),
    ``call_metrics`` (:class:`CallMetrics`), ``utterance_metrics``
    (:class:`UtteranceAcoustics`), ``loudness_seconds`` (:class:`LoudnessSecond`) and
    ``dead_letter`` (:class:`DeadLetter`, one per call that failed).
    """

    EVENTS = "events"
    CALL_METRICS = "call_metrics"
    UTTERANCE_METRICS = "utterance_metrics"
    LOUDNESS_SECONDS = "loudness_seconds"
    DEAD_LETTER = "dead_letter"
    OUTPUTS = (EVENTS, CALL_METRICS, UTTERANCE_METRICS, LOUDNESS_SECONDS, DEAD_LETTER)

    def __init__(self, config: DynamicsConfig | None = None, label: str | None = None):
        super().__init__(label)
        self.config = config or DynamicsConfig()

    def expand(self, calls: Any) -> Any:
        return calls | "AnalyzeDynamics" >> beam.ParDo(DynamicsDoFn(self.config)).with_outputs(
            *self.OUTPUTS
        )
