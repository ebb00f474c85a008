"""Mono recordings: who spoke when (speaker separation) and which speaker is the agent.

A channel that carries both parties (a mono recording; the ``unknown`` role) is diarized:

1. speaker embeddings (resemblyzer's voice encoder, ONNX, :mod:`pipeline.speaker_embedding`)
   over windows of the VAD's speech regions (1.5 s windows every 0.75 s; a shorter region is
   one window of its own);
2. the windows are clustered (agglomerative, average linkage on cosine distance, then a few
   spherical k-means steps) into 2 speakers, 3 when a third well-separated voice holds enough
   speech (a transfer), 1 when the two clusters are the same voice;
3. every 10 ms frame of speech takes the speaker whose centroid the windows covering it match
   best; frames where two speakers match about equally (overlapped speech, short or noisy
   stretches) are marked ``uncertain``.

Roles (:func:`detect_roles`): the agent is the speaker whose first turns carry the
classifier's opening labels (greeting, identification, offer of help); without that evidence,
whoever speaks first after the ring; the manifest's ``first_speaker`` forces the choice. Words
are then given to speakers (:func:`split_by_speaker`) and the transcript is rebuilt as one
pseudo-channel per role, so utterances break at speaker changes and labels, dynamics and
scorecards run as on stereo; what one channel cannot show (overlap, backchannels, typing over
the customer) is left not applicable by :func:`mono_not_measurable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import (
    AGENT,
    CUSTOMER,
    UNKNOWN,
    CallSummary,
    CallTranscript,
    ChannelAudio,
    ChannelDiarization,
    ChannelTranscript,
    SpeakerRoles,
    SpeakerTurn,
    SpeechRegion,
    Word,
)
from pipeline.speaker_embedding import (
    HOP,
    MODEL_DIR,
    SAMPLE_RATE,
    mel_spectrogram,
    shared_encoder,
    volume_gain,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AssignSpeakers",
    "DiarizationConfig",
    "DiarizeChannels",
    "RoleConfig",
    "detect_roles",
    "diarize",
    "mono_not_measurable",
    "split_by_speaker",
]

FRAME = HOP / SAMPLE_RATE  # 10 ms: one mel frame
OPENING_LABELS = ("greeting", "identification", "offer_help")


@dataclass(frozen=True)
class DiarizationConfig:
    """How a channel with several voices is split into speakers.

    Attributes:
        enabled: Diarize channels whose role is unknown (mono calls).
        window: Embedding window in seconds (1.5 s: resemblyzer's partials are 1.6 s; a
            window should rarely hold two turns).
        hop: Step between windows (half a window: every frame is seen by two windows).
        min_region: Speech regions shorter than this get no window of their own and take the
            speaker of the nearest embedded frame (0.4 s: shorter voice stretches give
            unreliable embeddings).
        max_speakers: Most speakers looked for (3: customer, agent and a transfer target).
        same_speaker_similarity: Cluster centroids (of full-length windows) more alike than
            this (cosine) are one voice. 0.72: on the dev calls two different voices gave at
            most 0.66 and one voice split in two at least 0.79 (``benchmarks/MONO.md``; two
            synthetic voices of different sex, so real same-sex voices may sit closer).
        min_second_speaker_seconds: A second speaker needs at least this much speech (2 s:
            less is a noise cluster, not a party to the call).
        min_speaker_seconds: Three clusters (a transfer) are three speakers only when each
            holds at least this much speech in full-length windows and each centroid is
            unlike both others (3 s: on the dev calls 10 s merged a customer with few long
            turns into the agent when a third voice came in; 3 s kept every two-voice call
            at two, see ``benchmarks/MONO.md``).
        uncertain_margin: Frames whose best and second-best speaker similarities differ by
            less than this are ``uncertain``.
        min_turn: Runs of one speaker shorter than this inside a speech region are merged
            into the neighbouring run (0.25 s: shorter than a word; a flicker of the frame
            decision, not a turn).
        kmeans_iterations: Spherical k-means refinement steps after clustering.
        model_dir: Folder of the ONNX voice encoder.
        intra_op_threads: onnxruntime threads per worker.
    """

    enabled: bool = True
    window: float = 1.5
    hop: float = 0.75
    min_region: float = 0.4
    max_speakers: int = 3
    same_speaker_similarity: float = 0.72
    min_second_speaker_seconds: float = 2.0
    min_speaker_seconds: float = 3.0
    uncertain_margin: float = 0.02
    min_turn: float = 0.25
    kmeans_iterations: int = 5
    model_dir: str = str(MODEL_DIR)
    intra_op_threads: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.hop <= self.window:
            raise ValueError(f"need 0 < hop <= window, got {self.hop}, {self.window}")
        if not 1 <= self.max_speakers <= 3:
            raise ValueError(f"max_speakers must be 1, 2 or 3, got {self.max_speakers}")


@dataclass(frozen=True)
class RoleConfig:
    """How the agent is told from the customer on a diarized channel.

    Each speaker's agent evidence is the sum, over greeting, identification and offer of
    help, of the best classifier score among their opening utterances; the speaker who
    spoke first gets ``first_speaker_prior`` on top. The highest total is the agent.

    Attributes:
        opening_seconds: Utterances within this many seconds of a speaker's first word are
            their opening.
        opening_utterances: At most this many of a speaker's first utterances are scored (2:
            the agent's opening is its first sentence or two; later customer sentences that
            name themselves or the product drew agent-label scores on the dev calls).
            Openings are scored with the classifier's ``unknown`` role (both heads).
        first_speaker_prior: Evidence added for speaking first: the agent answers the call in
            most contact-center recordings, but an opening said by the other speaker must
            outweigh it. 0.25, chosen on the dev calls together with ``opening_utterances``
            (best sum of role accuracy on the mono mixes and on the customer-first variant,
            ``benchmarks/MONO.md``).
        single_speaker_evidence: A lone voice is the agent when its evidence reaches this
            (one label's worth); otherwise its role is unknown.
        text_margin: When the two speakers' text evidence differs by less than this, the
            text is inconclusive and the method is ``first_speaker``.
        confidence_slope: Confidence is ``1 / (1 + exp(-slope * margin))`` of the margin of
            the total evidence (1.5: 0.82 at one label's margin, 0.95 at two).
    """

    opening_seconds: float = 30.0
    opening_utterances: int = 2
    first_speaker_prior: float = 0.25
    single_speaker_evidence: float = 1.0
    text_margin: float = 0.5
    confidence_slope: float = 1.5


# --- speaker separation -----------------------------------------------------------------


def _windows(regions: Sequence[SpeechRegion], n_frames: int,
             config: DiarizationConfig) -> list[tuple[int, int]]:
    """Frame ranges ``[a, b)`` of the embedding windows over ``regions``."""
    win = int(round(config.window / FRAME))
    hop = int(round(config.hop / FRAME))
    out: list[tuple[int, int]] = []
    for region in regions:
        a = max(0, int(round(region.start / FRAME)))
        b = min(n_frames, int(round(region.end / FRAME)))
        if (b - a) * FRAME < config.min_region:
            continue
        if b - a <= win:
            out.append((a, b))
            continue
        starts = list(range(a, b - win + 1, hop))
        if starts[-1] + win < b:
            starts.append(b - win)  # the region's end gets a full window too
        out.extend((s, s + win) for s in starts)
    return out


def _embed(mels: np.ndarray, windows: Sequence[tuple[int, int]],
           config: DiarizationConfig) -> np.ndarray:
    """One embedding per window; windows of equal length share an ONNX call."""
    encoder = shared_encoder(config.model_dir, config.intra_op_threads)
    out = np.zeros((len(windows), 256), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(windows):
        by_length.setdefault(b - a, []).append(i)
    for idx in by_length.values():
        for k in range(0, len(idx), 64):
            chunk = idx[k : k + 64]
            batch = np.stack([mels[windows[i][0] : windows[i][1]] for i in chunk])
            out[chunk] = encoder.embed_mels(batch)
    return out


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _cluster(embeddings: np.ndarray, k: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and unit centroids of ``k`` clusters (AHC, then spherical k-means)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(embeddings) <= k:
        labels = np.arange(len(embeddings))
    else:
        tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
        labels = fcluster(tree, t=k, criterion="maxclust") - 1
    centroids = _normalize_rows(np.stack(
        [embeddings[labels == c].mean(axis=0) for c in np.unique(labels)]))
    for _ in range(iterations):
        new = np.argmax(embeddings @ centroids.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        present = np.unique(labels)
        centroids = _normalize_rows(np.stack([embeddings[labels == c].mean(axis=0)
                                              for c in present]))
        labels = np.searchsorted(present, labels)
    return labels, centroids


def _choose_speakers(embeddings: np.ndarray, seconds: np.ndarray,
                     config: DiarizationConfig) -> np.ndarray:
    """Centroids of the speakers found (1 to ``max_speakers``).

    The decision uses full-length windows when there are enough of them: short windows
    (a cough, a click, a word between pauses) form small outlier clusters that a one-voice
    channel would otherwise split into.
    """
    full = seconds >= config.window - 1e-6
    if full.sum() >= 4:
        embeddings, seconds = embeddings[full], seconds[full]
    seconds = seconds * min(1.0, config.hop / config.window)  # windows overlap: speech time
    one = _normalize_rows(embeddings.mean(axis=0, keepdims=True))
    if config.max_speakers == 1 or len(embeddings) < 2:
        return one
    labels2, c2 = _cluster(embeddings, 2, config.kmeans_iterations)
    if (len(c2) < 2 or float(c2[0] @ c2[1]) > config.same_speaker_similarity
            or min(float(seconds[labels2 == c].sum()) for c in range(2))
            < config.min_second_speaker_seconds):
        return one
    if config.max_speakers < 3 or len(embeddings) < 3:
        return c2
    labels3, c3 = _cluster(embeddings, 3, config.kmeans_iterations)
    if len(c3) < 3:
        return c2
    sims = c3 @ c3.T
    for c in range(3):
        if max(sims[c, o] for o in range(3) if o != c) > config.same_speaker_similarity:
            return c2
        if float(seconds[labels3 == c].sum()) < config.min_speaker_seconds:
            return c2
    return c3


def _frame_scores(windows: Sequence[tuple[int, int]], sims: np.ndarray,
                  n_frames: int) -> np.ndarray:
    """Mean similarity to each centroid over the windows covering each frame (NaN: none)."""
    total = np.zeros((n_frames, sims.shape[1]))
    count = np.zeros(n_frames)
    for (a, b), s in zip(windows, sims, strict=True):
        total[a:b] += s
        count[a:b] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count[:, None]


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, end, value)`` of the runs of equal values."""
    if len(values) == 0:
        return []
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(values)]])
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, ends, strict=True)]


def _smooth(labels: np.ndarray, min_frames: int) -> np.ndarray:
    """Merge runs shorter than ``min_frames`` into the longer neighbour."""
    labels = labels.copy()
    for _ in range(3):
        runs = _runs(labels)
        changed = False
        for i, (a, b, _) in enumerate(runs):
            if b - a >= min_frames or len(runs) == 1:
                continue
            left = runs[i - 1] if i > 0 else None
            right = runs[i + 1] if i + 1 < len(runs) else None
            pick = max((r for r in (left, right) if r), key=lambda r: r[1] - r[0])
            labels[a:b] = pick[2]
            changed = True
        if not changed:
            break
    return labels


def diarize(
    samples: np.ndarray,
    regions: Sequence[SpeechRegion],
    config: DiarizationConfig | None = None,
) -> tuple[int, tuple[SpeakerTurn, ...]]:
    """Speaker turns of one channel of 16 kHz ``samples`` with VAD ``regions``.

    Returns:
        The number of speakers and the turns, speakers numbered by first appearance.
    """
    config = config or DiarizationConfig()
    if not regions:
        return 0, ()
    speech = np.concatenate([samples[int(r.start * SAMPLE_RATE) : int(r.end * SAMPLE_RATE)]
                             for r in regions])
    # The level of the speech, not of the silences around it, is brought to resemblyzer's.
    mels = mel_spectrogram(samples * volume_gain(speech))
    n_frames = len(mels)
    windows = _windows(regions, n_frames, config)
    if not windows:  # only very short regions: one voice as far as can be told
        windows = [(int(r.start / FRAME), max(int(r.end / FRAME), int(r.start / FRAME) + 1))
                   for r in regions]
    embeddings = _embed(mels, windows, config)
    seconds = np.array([(b - a) * FRAME for a, b in windows])
    centroids = _choose_speakers(embeddings, seconds, config)
    scores = _frame_scores(windows, embeddings @ centroids.T, n_frames)

    speech_mask = np.zeros(n_frames, dtype=bool)
    for r in regions:
        speech_mask[int(r.start / FRAME) : int(np.ceil(r.end / FRAME))] = True
    covered = ~np.isnan(scores[:, 0])
    if not covered.any():
        return 0, ()
    best = np.argmax(np.nan_to_num(scores, nan=-np.inf), axis=1)
    ordered = np.sort(np.nan_to_num(scores, nan=0.0), axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if scores.shape[1] > 1 else np.ones(n_frames)
    # Speech frames no window covers take the nearest covered frame's speaker.
    idx = np.flatnonzero(covered)
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(n_frames)), 0, len(idx) - 1)]
    prev = idx[np.clip(np.searchsorted(idx, np.arange(n_frames)) - 1, 0, len(idx) - 1)]
    nearer = np.where(np.abs(prev - np.arange(n_frames)) < np.abs(nearest - np.arange(n_frames)),
                      prev, nearest)
    best = np.where(covered, best, best[nearer])
    uncertain = np.where(covered, margin < config.uncertain_margin, True)

    min_frames = max(1, int(round(config.min_turn / FRAME)))
    turns: list[tuple[float, float, int, bool]] = []
    for r in regions:
        a = int(r.start / FRAME)
        b = min(n_frames, max(a + 1, int(np.ceil(r.end / FRAME))))
        if a >= n_frames:
            continue
        labels = _smooth(best[a:b], min_frames)
        for s, e, spk in _runs(labels):
            start = max(r.start, (a + s) * FRAME)
            end = min(r.end, (a + e) * FRAME)
            if end <= start:
                continue
            unsure = bool(np.mean(uncertain[a + s : a + e]) > 0.5)
            turns.append((start, end, spk, unsure))
    # Speakers numbered by first appearance; speakers with no turn left are dropped.
    order: dict[int, int] = {}
    for _, _, spk, _ in sorted(turns):
        order.setdefault(spk, len(order))
    return len(order), tuple(
        SpeakerTurn(order[spk], round(start, 3), round(end, 3), unsure)
        for start, end, spk, unsure in sorted(turns)
    )


def speaker_of(turns: Sequence[SpeakerTurn], start: float, end: float) -> int:
    """Speaker with the most time in ``[start, end]``, else of the nearest turn."""
    best, best_overlap = -1, 0.0
    totals: dict[int, float] = {}
    for t in turns:
        overlap = min(end, t.end) - max(start, t.start)
        if overlap > 0:
            totals[t.speaker] = totals.get(t.speaker, 0.0) + overlap
    for spk, total in totals.items():
        if total > best_overlap:
            best, best_overlap = spk, total
    if best >= 0:
        return best
    mid = (start + end) / 2
    nearest = min(turns, key=lambda t: min(abs(mid - t.start), abs(mid - t.end)))
    return nearest.speaker


def split_by_speaker(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> list[int]:
    """The speaker of every word (see :func:`speaker_of`)."""
    if not turns:
        return [0] * len(words)
    return [speaker_of(turns, w.start, w.end) for w in words]


# --- roles --------------------------------------------------------------------------------


def detect_roles(
    num_speakers: int,
    openings: Sequence[Sequence[dict[str, float]]],
    talk_seconds: Sequence[float],
    first_speaker_role: str | None = None,
    config: RoleConfig | None = None,
) -> SpeakerRoles:
    """Which speaker is the agent.

    Args:
        num_speakers: Speakers found; speaker 0 spoke first.
        openings: Per speaker, the classifier scores (scored as ``unknown``) of their
            opening utterances.
        talk_seconds: Per speaker, seconds of speech (a tie-break of the text evidence).
        first_speaker_role: The manifest's ``first_speaker`` (``agent``/``customer``).
        config: Thresholds.

    Returns:
        Roles per speaker with the method and confidence.
    """
    config = config or RoleConfig()
    if num_speakers == 0:
        return SpeakerRoles((), "single_speaker", None)
    if first_speaker_role in (AGENT, CUSTOMER):
        other = CUSTOMER if first_speaker_role == AGENT else AGENT
        # With a transfer the third voice is another agent.
        roles = [first_speaker_role] + [other] * (num_speakers - 1)
        if num_speakers == 3:
            roles = [first_speaker_role] + (
                [AGENT, AGENT] if first_speaker_role == CUSTOMER else [CUSTOMER, AGENT])
        return SpeakerRoles(tuple(roles[:num_speakers]), "manifest", None)
    evidence = [
        sum(max((s.get(label, 0.0) for s in scores), default=0.0) for label in OPENING_LABELS)
        for scores in openings
    ]
    if num_speakers == 1:
        agent_like = evidence[0] >= config.single_speaker_evidence
        confidence = 1.0 / (1.0 + np.exp(-config.confidence_slope * evidence[0]))
        return SpeakerRoles((AGENT if agent_like else UNKNOWN,), "single_speaker",
                            round(float(confidence), 3) if agent_like else None)
    total = [e + (config.first_speaker_prior if s == 0 else 0.0) for s, e in enumerate(evidence)]
    ranked = sorted(range(num_speakers), key=lambda s: -total[s])
    agent, runner_up = ranked[0], ranked[1]
    by_text = max(range(num_speakers), key=lambda s: evidence[s])
    text_margin = evidence[by_text] - max(e for s, e in enumerate(evidence) if s != by_text)
    # The text decided unless the agent is the first speaker and the text alone was
    # inconclusive or pointed elsewhere.
    text_decided = by_text == agent and text_margin >= config.text_margin
    method = "first_speaker" if agent == 0 and not text_decided else "text"
    confidence = 1.0 / (1.0 + np.exp(-config.confidence_slope * (total[agent] - total[runner_up])))
    roles = [CUSTOMER] * num_speakers
    roles[agent] = AGENT
    if num_speakers == 3:
        # The customer stays for the whole call: of the two others, the one with less
        # agent evidence and more talk is the customer; the remaining voice is an agent too.
        others = [s for s in range(3) if s != agent]
        customer = min(others, key=lambda s: (evidence[s], -talk_seconds[s]))
        roles = [AGENT] * 3
        roles[customer] = CUSTOMER
    return SpeakerRoles(tuple(roles), method, round(float(confidence), 3))


# --- Beam ---------------------------------------------------------------------------------


class DiarizeFn(StageFn):
    """Diarize one channel whose role is unknown; the voice encoder loads once per worker."""

    stage = "diarize"

    def __init__(self, config: DiarizationConfig):
        super().__init__()
        self.config = config

    def setup(self) -> None:
        try:
            shared_encoder(self.config.model_dir, self.config.intra_op_threads)
        except ValueError as e:  # no model: every mono call gets a dead letter saying so
            logger.warning("%s", e)

    def run(self, element: ChannelAudio) -> Iterator[ChannelDiarization]:
        started = time.perf_counter()
        num_speakers, turns = diarize(element.samples, element.regions, self.config)
        encoder = shared_encoder(self.config.model_dir, self.config.intra_op_threads)
        yield ChannelDiarization(
            call_id=element.call_id,
            channel=element.channel,
            num_speakers=num_speakers,
            turns=turns,
            model=f"{encoder.model_name}@{encoder.model_version}",
            processing_seconds=round(time.perf_counter() - started, 3),
        )


class DiarizeChannels(beam.PTransform):
    """ChannelAudio with regions -> ChannelDiarization (main, channels of unknown role only),
    DeadLetter (``dead_letter``)."""

    def __init__(self, config: DiarizationConfig | None = None):
        super().__init__()
        self.config = config or DiarizationConfig()

    def expand(self, channels: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        enabled = self.config.enabled
        return (
            channels
            | "UnknownRoleChannels" >> beam.Filter(lambda c: enabled and c.role == UNKNOWN)
            | "SpeakerTurns" >> beam.ParDo(DiarizeFn(self.config)).with_outputs(
                DEAD_LETTER, main="diarizations")
        )


def _speaker_channels(
    channel: ChannelTranscript, diarization: ChannelDiarization, roles: SpeakerRoles
) -> tuple[ChannelTranscript, ...]:
    """One pseudo-channel per role: its turns as regions and its words."""
    speakers = split_by_speaker(channel.words, diarization.turns)
    out: list[ChannelTranscript] = []
    for role in dict.fromkeys(roles.roles):
        mine = {s for s, r in enumerate(roles.roles) if r == role}
        out.append(ChannelTranscript(
            call_id=channel.call_id,
            channel=channel.channel,
            role=role,
            regions=tuple(SpeechRegion(t.start, t.end) for t in diarization.turns
                          if t.speaker in mine),
            words=tuple(w for w, s in zip(channel.words, speakers, strict=True) if s in mine),
            acoustics=channel.acoustics,
            processing_seconds=channel.processing_seconds if not out else 0.0,
        ))
    return tuple(out)


def speaker_runs(words: Sequence[Word], speakers: Sequence[int]) -> list[tuple[int, list[Word]]]:
    """Consecutive words of one speaker: utterances never cross a speaker change."""
    runs: list[tuple[int, list[Word]]] = []
    for word, spk in zip(words, speakers, strict=True):
        if runs and runs[-1][0] == spk:
            runs[-1][1].append(word)
        else:
            runs.append((spk, [word]))
    return runs


class AssignSpeakersFn(beam.DoFn):
    """Give a diarized call's words to speakers, find the agent, rebuild the utterances.

    The classifier scores each speaker's opening utterances (loaded once per worker, only
    when a diarized call arrives). Calls without a diarization pass through unchanged.
    """

    def __init__(self, roles: RoleConfig, classifier: Any, utterances: Any):
        super().__init__()
        self.roles = roles
        self.classifier_config = classifier
        self.utterance_config = utterances
        self.diarized = Metrics.counter("callscope", "calls_diarized")

    def _opening_scores(self, call_id: str, runs: list[tuple[int, list[Word]]],
                        num_speakers: int) -> list[list[dict[str, float]]]:
        from pipeline.classifier import _shared_classifier
        from pipeline.utterances import group_words

        first: dict[int, float] = {}
        texts: list[tuple[int, str]] = []
        for spk, words in runs:
            first.setdefault(spk, words[0].start)
            if words[0].start - first[spk] > self.roles.opening_seconds:
                continue
            for group in group_words(words, self.utterance_config):
                if sum(1 for s, _ in texts if s == spk) < self.roles.opening_utterances:
                    texts.append((spk, " ".join(w.text for w in group)))
        scores: list[list[dict[str, float]]] = [[] for _ in range(num_speakers)]
        if not texts:
            return scores
        model = _shared_classifier(self.classifier_config.model_dir,
                                   self.classifier_config.model_file)
        predictions = model.predict([(UNKNOWN, text, "") for _, text in texts])
        for (spk, _), pred in zip(texts, predictions, strict=True):
            scores[spk].append(pred.probabilities)
        return scores

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        from pipeline.utterances import build_utterances, summarize_call

        _, parts = element
        summaries = parts["calls"]
        transcripts = parts["transcripts"]
        diarizations = parts["diarizations"]
        if not transcripts or not diarizations:
            yield from transcripts
            for s in summaries:
                yield TaggedOutput("calls", s)
            return
        transcript = transcripts[0]
        diarization = diarizations[0]
        channel = transcript.channels[diarization.channel]
        speakers = split_by_speaker(channel.words, diarization.turns)
        runs = speaker_runs(channel.words, speakers)
        n = diarization.num_speakers
        talk = [sum(t.end - t.start for t in diarization.turns if t.speaker == s)
                for s in range(n)]
        roles = detect_roles(n, self._opening_scores(transcript.call_id, runs, n), talk,
                             transcript.spec.first_speaker, self.roles)
        if not roles.roles:  # no speech: nothing to assign
            yield transcript
            for s in summaries:
                yield TaggedOutput("calls", replace(s, num_speakers=0))
            return
        channels = _speaker_channels(channel, diarization, roles)
        # Utterances: each run of one speaker grouped on its own, numbered in time order.
        run_channels = [
            replace(channel, role=roles.roles[spk], words=tuple(words))
            for spk, words in runs
        ]
        utterances = build_utterances(transcript.call_id, run_channels, self.utterance_config)
        rebuilt = CallTranscript(header=transcript.header, channels=channels,
                                 utterances=utterances)
        self.diarized.inc()
        yield rebuilt
        for s in summaries:
            yield TaggedOutput("calls", _with_roles(s, rebuilt, diarization, roles,
                                                    summarize_call))


def _with_roles(summary: CallSummary, transcript: CallTranscript,
                diarization: ChannelDiarization, roles: SpeakerRoles, summarize: Any) -> Any:
    def speech(role: str) -> float | None:
        ch = transcript.channel_of(role)
        return round(sum(r.end - r.start for r in ch.regions), 3) if ch else None

    return replace(
        summary,
        num_utterances=len(transcript.utterances),
        num_words=sum(len(u.words) for u in transcript.utterances),
        agent_speech=speech(AGENT),
        customer_speech=speech(CUSTOMER),
        processing_seconds=round(summary.processing_seconds + diarization.processing_seconds, 3),
        num_speakers=diarization.num_speakers,
        role_method=roles.method,
        role_confidence=roles.confidence,
    )


class AssignSpeakers(beam.PTransform):
    """Join transcripts, ``calls`` rows and diarizations by call; rebuild the diarized calls.

    Input: dict of ``transcripts`` (CallTranscript), ``calls`` (CallSummary) and
    ``diarizations`` (ChannelDiarization). Output: transcripts (main) and ``calls``.
    """

    def __init__(self, roles: RoleConfig, classifier: Any, utterances: Any):
        super().__init__()
        self.fn_args = (roles, classifier, utterances)

    def expand(self, parts: dict[str, beam.PCollection]) -> beam.pvalue.DoOutputsTuple:
        keyed = {
            name: pcoll | f"Key{name.title()}" >> beam.Map(lambda x: (x.call_id, x))
            for name, pcoll in parts.items()
        }
        return (
            keyed
            | "GroupByCall" >> beam.CoGroupByKey()
            | "SpeakersAndRoles" >> beam.ParDo(AssignSpeakersFn(*self.fn_args)).with_outputs(
                "calls", main="transcripts")
        )


# --- what one channel cannot show ----------------------------------------------------------

MONO_NOT_MEASURABLE = (
    "interruptions", "agent_interruptions", "customer_interruptions", "interruption_seconds",
    "agent_interruption_seconds", "agent_backchannels", "customer_backchannels",
    "overlap_seconds", "venting_interrupted_by_agent", "typing_seconds",
    "typing_over_customer_seconds", "agent_noise_floor_dbfs", "customer_noise_floor_dbfs",
)
"""CallMetrics fields a single channel cannot measure: speakers are never apart in time on
one channel's turns (no overlap, so no interruption or backchannel), and typing, noise floor
and music belong to whichever party's microphone picked them up."""
MONO_DROPPED_EVENTS = frozenset({"interruption", "backchannel", "typing"})


def mono_not_measurable(result: Any) -> Any:
    """A :class:`~pipeline.dynamics.DynamicsResult` of a mono call with what one channel
    cannot show set to None (not applicable), its events dropped, and the per-second loudness
    given once, as the mixed channel (role ``unknown``)."""
    metrics = replace(result.metrics, **dict.fromkeys(MONO_NOT_MEASURABLE))
    kept = [e for e in result.events if e.type not in MONO_DROPPED_EVENTS]
    events = tuple(replace(e, event_id=f"{e.call_id}/e{i:04d}") for i, e in enumerate(kept, 1))
    seconds: dict[int, Any] = {}
    for row in result.seconds:
        if row.second in seconds:
            seconds[row.second] = replace(
                seconds[row.second], speech=round(seconds[row.second].speech + row.speech, 2))
        else:
            seconds[row.second] = replace(row, role=UNKNOWN)
    return replace(result, metrics=metrics, events=events,
                   seconds=tuple(seconds[s] for s in sorted(seconds)))
