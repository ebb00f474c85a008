"""Grouping recognised words into utterances, per speaker, then ordering them across speakers.

An utterance ends at a pause, or at a sentence end followed by a short pause, or when it
grows too long; utterances of both channels are then numbered in time order, so
``call-0001/u0007`` is the seventh thing said in the call, whoever said it.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline import __version__
from pipeline.records import (
    AGENT,
    CUSTOMER,
    CallHeader,
    CallSpec,
    CallSummary,
    CallTranscript,
    ChannelTranscript,
    Utterance,
    Word,
)

logger = logging.getLogger(__name__)

SENTENCE_END = (".", "?", "!")
CALLS = "calls"


@dataclass(frozen=True)
class UtteranceConfig:
    """How words are grouped into utterances.

    Attributes:
        max_pause: A silence at least this long between words always ends an utterance
            (0.8 s: longer than the pauses inside a spoken sentence).
        sentence_pause: After a word that ends a sentence, this pause is enough.
        max_duration: An utterance is cut at the next sentence end after this many seconds,
            and unconditionally at twice this.
    """

    max_pause: float = 0.8
    sentence_pause: float = 0.25
    max_duration: float = 15.0


MAX_WORD: float = 2.5
"""Longest plausible word, in seconds: even a drawn-out "sooo" or a spelled number group stays
under it; a longer word is a timing error (a word stretched over a pause)."""


def _covers_turn(gap_start: float, gap_end: float, other_starts: Sequence[float],
                 other: Sequence[Word]) -> bool:
    """Whether a whole word of the other party lies inside the pause ``gap_start..gap_end``."""
    i = bisect.bisect_left(other_starts, gap_start)
    return i < len(other) and other[i].end <= gap_end


def group_words(
    words: Sequence[Word], config: UtteranceConfig, other: Sequence[Word] = ()
) -> list[list[Word]]:
    """Split one speaker's time-ordered ``words`` into utterance-sized groups.

    A group ends at a long pause, at a sentence end followed by a short pause, when it grows
    too long, or at any pause in which the other party (``other``, their words in time order)
    says a whole word: an utterance never spans the other party's turn.
    """
    other_starts = [w.start for w in other]
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current:
            prev = current[-1]
            gap = word.start - prev.end
            length = prev.end - current[0].start
            ends_sentence = prev.text.endswith(SENTENCE_END)
            if (
                gap >= config.max_pause
                or (ends_sentence and gap >= config.sentence_pause)
                or (ends_sentence and length >= config.max_duration)
                or length >= 2 * config.max_duration
                or (gap > 0 and _covers_turn(prev.end, word.start, other_starts, other))
            ):
                groups.append(current)
                current = []
        current.append(word)
    if current:
        groups.append(current)
    return groups


def build_utterances(
    call_id: str, channels: Iterable[ChannelTranscript], config: UtteranceConfig | None = None
) -> tuple[Utterance, ...]:
    """Utterances of all channels of a call, numbered in time order."""
    config = config or UtteranceConfig()
    channels = list(channels)
    drafts = []
    for channel in channels:
        other = sorted(
            (w for c in channels if c is not channel for w in c.words),
            key=lambda w: (w.start, w.end),
        )
        for group in group_words(channel.words, config, other):
            drafts.append((group[0].start, channel.channel, channel.role, group))
    drafts.sort(key=lambda d: (d[0], d[1], d[2]))
    utterances = []
    for n, (_, channel_index, role, group) in enumerate(drafts, start=1):
        utterances.append(
            Utterance(
                utterance_id=f"{call_id}/u{n:04d}",
                call_id=call_id,
                role=role,
                channel=channel_index,
                start=group[0].start,
                end=max(w.end for w in group),
                text=" ".join(w.text for w in group).strip(),
                words=tuple(group),
                confidence=round(sum(w.probability for w in group) / len(group), 4),
            )
        )
    return tuple(utterances)


def timing_problems(utterances: Sequence[Utterance]) -> tuple[str, ...]:
    """Broken timing invariants of a call's utterances, as warnings for its ``calls`` row.

    Checked: no word longer than ``MAX_WORD``; no utterance of zero length; every word inside
    its utterance's span; no utterance spanning a whole utterance of another channel inside
    one of its pauses. Utterances are built from one channel's (or one separated speaker's)
    words, so none mixes channels.
    """
    problems: list[str] = []
    for u in utterances:
        long_words = [w for w in u.words if w.end - w.start > MAX_WORD]
        if long_words:
            w = long_words[0]
            problems.append(
                f"timing: {u.utterance_id} has a word of {w.end - w.start:.1f} s "
                f"({w.text!r} at {w.start:.2f} s)"
            )
        if u.end <= u.start:
            problems.append(f"timing: {u.utterance_id} has zero length at {u.start:.2f} s")
        if any(w.start < u.start or w.end > u.end for w in u.words):
            problems.append(f"timing: {u.utterance_id} has words outside its span")
        pauses = [(a.end, b.start) for a, b in pairwise(u.words) if b.start > a.end]
        for other in utterances:
            same_speaker = (other.channel, other.role) == (u.channel, u.role)
            if same_speaker or not (u.start < other.start < u.end):
                continue
            if any(s <= other.start and other.end <= e for s, e in pauses):
                problems.append(
                    f"timing: {u.utterance_id} spans {other.utterance_id} of the other party"
                )
    return tuple(problems)


def _speech_seconds(channel: ChannelTranscript | None) -> float | None:
    if channel is None:
        return None
    return round(sum(r.end - r.start for r in channel.regions), 3)


def summarize_call(
    spec: CallSpec,
    header: CallHeader | None,
    transcript: CallTranscript | None,
    status: str,
    asr_backend: str,
    asr_model: str,
) -> CallSummary:
    """The ``calls`` row of one call, processed or not."""
    channels = transcript.channels if transcript else ()
    utterances = transcript.utterances if transcript else ()
    processing = (header.processing_seconds if header else 0.0) + sum(
        c.processing_seconds for c in channels
    )
    return CallSummary(
        call_id=spec.call_id,
        audio=spec.audio,
        agent_id=spec.agent_id,
        started_at=spec.started_at,
        queue=spec.queue,
        language=spec.language,
        status=status,
        duration=header.duration if header else None,
        num_channels=header.num_channels if header else None,
        source_sample_rate=header.source_sample_rate if header else None,
        source_format=header.source_format if header else None,
        agent_channel=spec.agent_channel,
        customer_channel=spec.customer_channel,
        num_utterances=len(utterances),
        num_words=sum(len(u.words) for u in utterances),
        agent_speech=_speech_seconds(transcript.channel_of(AGENT)) if transcript else None,
        customer_speech=_speech_seconds(transcript.channel_of(CUSTOMER)) if transcript else None,
        warnings=header.warnings if header else (),
        asr_backend=asr_backend,
        asr_model=asr_model,
        processing_seconds=round(processing, 3),
        pipeline_version=__version__,
    )


class AssembleFn(beam.DoFn):
    """Join a call's header, channel transcripts and failures into utterances and a summary."""

    def __init__(self, config: UtteranceConfig, asr_backend: str, asr_model: str):
        super().__init__()
        self.config = config
        self.asr_backend = asr_backend
        self.asr_model = asr_model
        self.calls_done = Metrics.counter("callscope", "calls_done")
        self.calls_failed = Metrics.counter("callscope", "calls_failed")

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        call_id, parts = element
        specs, headers = parts["specs"], parts["headers"]
        channels = sorted(parts["channels"], key=lambda c: c.channel)
        if not specs:  # a failure of a call that was never listed cannot happen; be explicit
            raise ValueError(f"{call_id}: results for a call that is not in the input")
        spec = specs[0]
        header = headers[0] if headers else None
        failed = bool(parts["dead"]) or header is None or len(channels) != header.num_channels
        if failed:
            self.calls_failed.inc()
            stages = sorted({d.stage for d in parts["dead"]}) or ["assemble"]
            logger.info("call %s: failed in %s (see dead_letter)", call_id, ", ".join(stages))
            yield TaggedOutput(
                CALLS,
                summarize_call(spec, header, None, "failed", self.asr_backend, self.asr_model),
            )
            return
        assert header is not None
        utterances = build_utterances(call_id, channels, self.config)
        problems = timing_problems(utterances)
        if problems:
            header = replace(header, warnings=header.warnings + problems)
        transcript = CallTranscript(header=header, channels=tuple(channels), utterances=utterances)
        status = "warning" if header.warnings else "ok"
        summary = summarize_call(spec, header, transcript, status, self.asr_backend, self.asr_model)
        self.calls_done.inc()
        logger.info(
            "call %s: %.1f s of audio, %d utterances, %.1f s of processing",
            call_id, header.duration, len(transcript.utterances), summary.processing_seconds,
        )
        yield transcript
        yield TaggedOutput(CALLS, summary)


class AssembleCalls(beam.PTransform):
    """Join per-call parts by ``call_id``.

    Input: a dict of PCollections ``specs`` (CallSpec), ``headers`` (CallHeader), ``channels``
    (ChannelTranscript) and ``dead`` (DeadLetter). Output: CallTranscript (main) and
    CallSummary (``calls``) for every listed call, failed ones included.
    """

    def __init__(self, config: UtteranceConfig, asr_backend: str, asr_model: str):
        super().__init__()
        self.config = config
        self.asr_backend = asr_backend
        self.asr_model = asr_model

    def expand(self, parts: dict[str, beam.PCollection]) -> beam.pvalue.DoOutputsTuple:
        keyed = {
            name: pcoll | f"Key{name.title()}" >> beam.Map(lambda x: (x.call_id, x))
            for name, pcoll in parts.items()
        }
        return (
            keyed
            | "GroupByCall" >> beam.CoGroupByKey()
            | "BuildUtterances"
            >> beam.ParDo(AssembleFn(self.config, self.asr_backend, self.asr_model)).with_outputs(
                CALLS, main="transcripts"
            )
        )


def previous_turns(utterances: Sequence[Utterance], max_utterances: int = 3) -> dict[str, str]:
    """Text of the other party's previous turn for every utterance (``""`` if none).

    The previous turn is what the other party said since this speaker last spoke (at most
    ``max_utterances`` of their utterances), or else their last utterance before this one:
    what a restatement restates and an answer answers.
    """
    context: dict[str, str] = {}
    ordered = sorted(utterances, key=lambda u: (u.start, u.utterance_id))
    for i, utterance in enumerate(ordered):
        turn: list[Utterance] = []
        for earlier in reversed(ordered[:i]):
            if earlier.role == utterance.role:
                if turn:
                    break
                continue
            turn.append(earlier)
            if len(turn) == max_utterances:
                break
        context[utterance.utterance_id] = " ".join(u.text for u in reversed(turn))
    return context
