"""Typed records that cross stage boundaries.

Every record is a frozen dataclass. Times are ``start``/``end`` in seconds from the start of
the call (``Seconds``); foreign keys are ``<entity>_id``; ids are readable
(``call-0001/u0007``). The Parquet schema of each record written to disk lives in
:mod:`pipeline.schemas`.

The data model follows lhotse's three layers: a call (the recording), its per-channel speech
regions and words, and the utterances (labelled spans) built from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

Seconds = float

AGENT = "agent"
CUSTOMER = "customer"
UNKNOWN = "unknown"
ROLES = (AGENT, CUSTOMER, UNKNOWN)

T = TypeVar("T")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**data)


def printable(text: str) -> str:
    """``text`` as valid Unicode, the same way on every run.

    A file name that is not UTF-8 arrives as lone surrogates (Python's ``surrogateescape``)
    and a JSON string may hold an escaped lone surrogate; neither can be written to Parquet
    or used as a Beam key. Escaped bytes become ``\\xNN``, other surrogates ``\\uNNNN``.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(
            f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
            else f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF
            else c
            for c in text
        )


@dataclass(frozen=True)
class CallSpec:
    """One call to process: a manifest row after validation.

    Attributes:
        call_id: Unique, readable id of the call (from the manifest or the file name).
        audio: Path or URI of the recording.
        agent_id: Id of the agent who took the call, if known.
        started_at: ISO-8601 start time of the call, if known.
        queue: Queue or skill the call came through, if known.
        language: Language code of the call.
        agent_channel: Channel index of the agent in a stereo recording.
        customer_channel: Channel index of the customer in a stereo recording.
        first_speaker: Role of whoever speaks first on a mono recording (``agent`` or
            ``customer``), forcing the role detection; None lets the pipeline decide.
    """

    call_id: str
    audio: str
    agent_id: str | None = None
    started_at: str | None = None
    queue: str | None = None
    language: str = "en"
    agent_channel: int = 0
    customer_channel: int = 1
    first_speaker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallSpec:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class CallAudio:
    """Decoded, validated audio of one call: the boundary shape every later stage sees.

    Attributes:
        spec: The call's manifest row.
        samples: float32 array of shape ``(channels, frames)`` at the model rate, in [-1, 1].
        sample_rate: Rate of ``samples`` (16 kHz, what Silero VAD and Whisper take).
        source_sample_rate: Rate of the file as recorded.
        source_format: Container/codec as reported by the decoder, e.g. ``WAV/ULAW``.
        duration: Length of the call in seconds.
        warnings: Problems that did not stop processing (mono file, silent channel, ...).
    """

    spec: CallSpec
    samples: np.ndarray = field(repr=False, compare=False)
    sample_rate: int
    source_sample_rate: int
    source_format: str
    duration: Seconds
    warnings: tuple[str, ...] = ()

    @property
    def call_id(self) -> str:
        return self.spec.call_id

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    def role_of(self, channel: int) -> str:
        """Speaker role recorded on ``channel`` (``unknown`` for mono calls)."""
        if self.num_channels == 1:
            return UNKNOWN
        if channel == self.spec.agent_channel:
            return AGENT
        if channel == self.spec.customer_channel:
            return CUSTOMER
        return UNKNOWN

    def header(self, processing_seconds: float = 0.0) -> CallHeader:
        """The call's metadata without its samples."""
        return CallHeader(
            spec=self.spec,
            duration=self.duration,
            num_channels=self.num_channels,
            sample_rate=self.sample_rate,
            source_sample_rate=self.source_sample_rate,
            source_format=self.source_format,
            warnings=self.warnings,
            processing_seconds=processing_seconds,
        )

    def channel(self, index: int) -> ChannelAudio:
        """One channel of the call."""
        return ChannelAudio(
            call_id=self.call_id,
            channel=index,
            role=self.role_of(index),
            samples=self.samples[index],
            sample_rate=self.sample_rate,
        )


@dataclass(frozen=True)
class CallHeader:
    """What is known of a decoded call besides its samples."""

    spec: CallSpec
    duration: Seconds
    num_channels: int
    sample_rate: int
    source_sample_rate: int
    source_format: str
    warnings: tuple[str, ...] = ()
    processing_seconds: float = 0.0

    @property
    def call_id(self) -> str:
        return self.spec.call_id


@dataclass(frozen=True)
class ChannelAudio:
    """One channel of a decoded call, the unit of VAD, acoustics and ASR work.

    ``regions`` and ``acoustics`` are filled in by the VAD and acoustics stages, which
    return new objects (``dataclasses.replace``).
    """

    call_id: str
    channel: int
    role: str
    samples: np.ndarray = field(repr=False, compare=False)
    sample_rate: int
    regions: tuple[SpeechRegion, ...] = ()
    acoustics: Any = None
    processing_seconds: float = 0.0

    @property
    def duration(self) -> Seconds:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class SpeechRegion:
    """A span of speech on one channel found by the VAD."""

    start: Seconds
    end: Seconds

    @property
    def duration(self) -> Seconds:
        return self.end - self.start


@dataclass(frozen=True)
class Word:
    """A recognised word with its time span and the recogniser's confidence."""

    start: Seconds
    end: Seconds
    text: str
    probability: float


@dataclass(frozen=True)
class Utterance:
    """Words of one speaker grouped into one turn-like unit.

    Attributes:
        utterance_id: ``<call_id>/u<NNNN>``, numbered in time order across both channels.
        call_id: The call.
        role: ``agent``, ``customer`` or ``unknown``.
        channel: Channel index in the recording.
        start: Start of the first word.
        end: End of the last word.
        text: The words joined with spaces.
        words: The words.
        confidence: Mean word probability.
    """

    utterance_id: str
    call_id: str
    role: str
    channel: int
    start: Seconds
    end: Seconds
    text: str
    words: tuple[Word, ...]
    confidence: float

    @property
    def duration(self) -> Seconds:
        return self.end - self.start


@dataclass(frozen=True)
class DeadLetter:
    """A failure that kept (part of) a call from being processed.

    Attributes:
        call_id: The call, or the file name when no id could be made.
        stage: Stage that failed, e.g. ``decode``, ``asr``.
        error_type: Exception class name or a short code (``EmptyFile``).
        message: What was wrong, for a person.
        audio: Path or URI of the recording.
    """

    call_id: str
    stage: str
    error_type: str
    message: str
    audio: str = ""


@dataclass(frozen=True)
class CallSummary:
    """One row per call: what was processed and how it went.

    ``status`` is ``ok``, ``warning`` (processed, with warnings) or ``failed`` (see
    ``dead_letter``).
    """

    call_id: str
    audio: str
    agent_id: str | None
    started_at: str | None
    queue: str | None
    language: str
    status: str
    duration: Seconds | None
    num_channels: int | None
    source_sample_rate: int | None
    source_format: str | None
    agent_channel: int
    customer_channel: int
    num_utterances: int
    num_words: int
    agent_speech: Seconds | None
    customer_speech: Seconds | None
    warnings: tuple[str, ...]
    asr_backend: str
    asr_model: str
    processing_seconds: float
    pipeline_version: str
    # Mono calls: speakers found and how roles were assigned (None on stereo calls, whose
    # roles come from the channel map).
    num_speakers: int | None = None
    role_method: str | None = None
    role_confidence: float | None = None


@dataclass(frozen=True)
class ChannelTranscript:
    """What the per-channel stages (VAD, ASR, acoustics) found on one channel.

    Attributes:
        call_id: The call.
        channel: Channel index.
        role: Speaker role on the channel.
        regions: Speech regions from the VAD, in time order.
        words: Recognised words, in time order.
        acoustics: Frame-level acoustic features (``pipeline.acoustics.ChannelAcoustics``),
            or None when not computed.
    """

    call_id: str
    channel: int
    role: str
    regions: tuple[SpeechRegion, ...]
    words: tuple[Word, ...]
    acoustics: Any = None
    processing_seconds: float = 0.0


@dataclass(frozen=True)
class CallTranscript:
    """A call after ASR: its metadata, per-channel results and utterances in time order."""

    header: CallHeader
    channels: tuple[ChannelTranscript, ...]
    utterances: tuple[Utterance, ...]

    @property
    def call_id(self) -> str:
        return self.header.spec.call_id

    @property
    def spec(self) -> CallSpec:
        return self.header.spec

    @property
    def duration(self) -> Seconds:
        return self.header.duration

    def channel_of(self, role: str) -> ChannelTranscript | None:
        """The channel transcript of ``role``, or None when the call has none."""
        for channel in self.channels:
            if channel.role == role:
                return channel
        return None


# --- diarization (mono calls) ---


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of one speaker's speech on a channel that carries several voices.

    Attributes:
        speaker: Speaker index within the call, 0 for whoever spoke first.
        start: Start of the stretch.
        end: End of the stretch.
        uncertain: The voice matched two speakers about equally well (overlapped speech,
            a short or noisy stretch): the speaker is a best guess.
    """

    speaker: int
    start: Seconds
    end: Seconds
    uncertain: bool = False


@dataclass(frozen=True)
class ChannelDiarization:
    """Who spoke when on one channel (``pipeline.diarization``).

    Attributes:
        call_id: The call.
        channel: Channel index.
        num_speakers: Speakers found (1 to ``DiarizationConfig.max_speakers``).
        turns: Speaker turns in time order, inside the channel's speech regions.
        model: ``name@version`` of the speaker-embedding model.
        processing_seconds: Time spent on the channel.
    """

    call_id: str
    channel: int
    num_speakers: int
    turns: tuple[SpeakerTurn, ...]
    model: str
    processing_seconds: float = 0.0


@dataclass(frozen=True)
class SpeakerRoles:
    """Which speaker of a diarized channel is the agent.

    Attributes:
        roles: Role of each speaker index (``agent``, ``customer``, ``unknown``).
        method: How: ``manifest`` (forced), ``text`` (greeting, identification or offer of
            help in the first turns), ``first_speaker``, or ``single_speaker``.
        confidence: Probability-like confidence in [0.5, 1] of the agent choice; None when
            forced by the manifest.
    """

    roles: tuple[str, ...]
    method: str
    confidence: float | None


# --- dynamics ---


@dataclass(frozen=True)
class Event:
    """A timed conversation-dynamics event of a call.

    Attributes:
        call_id: The call.
        event_id: ``<call_id>/e<NNNN>``, numbered in time order.
        type: ``interruption``, ``backchannel``, ``non_talk``, ``hold``, ``venting``,
            ``typing``, ``fast_pace`` or ``monologue``.
        actor: Role that caused the event (``agent``, ``customer``), or ``both``/``unknown``.
        start: Start of the event.
        end: End of the event.
        attributes: JSON object with the type's details (see ``pipeline.dynamics``).
    """

    call_id: str
    event_id: str
    type: str
    actor: str
    start: Seconds
    end: Seconds
    attributes: str = "{}"

    @property
    def duration(self) -> Seconds:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class UtteranceAcoustics:
    """Loudness and pace of one utterance.

    Attributes:
        utterance_id: The utterance.
        call_id: The call.
        role: Speaker role.
        loudness_dbfs: Power-mean level over the utterance in dBFS, or None without audio
            features.
        loudness: The level on a 0-100 scale (``DynamicsConfig.loudness_scale_*``).
        words_per_minute: Speech rate, or None for utterances too short to measure.
        pitch_hz: Median F0 of the utterance, or None when unvoiced or not analysed.
    """

    utterance_id: str
    call_id: str
    role: str
    loudness_dbfs: float | None
    loudness: float | None
    words_per_minute: float | None
    pitch_hz: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UtteranceAcoustics:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class LoudnessSecond:
    """Loudness of one channel over one second of the call.

    Attributes:
        call_id: The call.
        role: Speaker role of the channel.
        second: Index of the second (covers ``[second, second + 1)``).
        loudness_dbfs: Power-mean level of the second in dBFS.
        loudness: The level on a 0-100 scale.
        speech: Share of the second inside the channel's speech regions.
    """

    call_id: str
    role: str
    second: int
    loudness_dbfs: float
    loudness: float
    speech: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoudnessSecond:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class CallMetrics:
    """One row per call: the call-level conversation-dynamics metrics.

    Durations are seconds; shares are in [0, 1]; a metric that cannot be computed (mono call,
    no speech, silent channel) is None. Events behind the counts are in the ``events`` table.
    """

    call_id: str
    duration: Seconds
    # Interruptions and backchannels.
    interruptions: int | None
    agent_interruptions: int | None
    customer_interruptions: int | None
    interruption_seconds: Seconds | None
    agent_interruption_seconds: Seconds | None
    agent_backchannels: int | None
    customer_backchannels: int | None
    overlap_seconds: Seconds | None
    # Non-talk time (both channels silent).
    non_talk_count: int
    non_talk_seconds: Seconds
    non_talk_longest: Seconds
    non_talk_share: float | None
    # Holds.
    holds: int | None
    hold_seconds: Seconds | None
    holds_unannounced: int | None
    holds_without_permission: int | None
    holds_without_agreement: int | None
    holds_over_limit_without_update: int | None
    hold_updates: int | None
    # Venting.
    venting_windows: int | None
    venting_seconds: Seconds | None
    venting_interrupted_by_agent: int | None
    # Pace.
    agent_words_per_minute: float | None
    customer_words_per_minute: float | None
    agent_fast_utterances: int | None
    agent_pace_flag: bool | None
    # Talk share, latency, monologue.
    agent_talk_seconds: Seconds | None
    customer_talk_seconds: Seconds | None
    agent_talk_share: float | None
    customer_talk_share: float | None
    agent_talk_ratio: float | None
    response_latency_mean: Seconds | None
    response_latency_median: Seconds | None
    response_latency_count: int | None
    longest_agent_monologue: Seconds | None
    # Typing.
    typing_seconds: Seconds | None
    typing_over_customer_seconds: Seconds | None
    # Loudness.
    agent_loudness_dbfs: float | None
    customer_loudness_dbfs: float | None
    agent_loudness: float | None
    customer_loudness: float | None
    customer_loudness_max_dbfs: float | None
    agent_noise_floor_dbfs: float | None
    customer_noise_floor_dbfs: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallMetrics:
        return _from_dict(cls, data)


# --- consistency ---


@dataclass(frozen=True)
class QAPair:
    """A customer question and the agent's answer that follows it in one call.

    Attributes:
        qa_id: Id of the question utterance (``call-0001/u0007``): one pair per question.
        call_id: The call.
        agent_id: Agent who answered, from the calls table (None when unknown).
        started_at: ISO-8601 start of the call, if known.
        question_utterance_id: The customer's question utterance.
        question_text: The question itself: the question sentences of that utterance.
        question_start: Start of the question utterance.
        question_end: End of the question utterance.
        answer_utterance_ids: The agent utterances that answer it, in time order.
        answer_text: Their text, joined with spaces.
        answer_start: Start of the first answer utterance.
        answer_end: End of the last answer utterance.
    """

    qa_id: str
    call_id: str
    agent_id: str | None
    started_at: str | None
    question_utterance_id: str
    question_text: str
    question_start: Seconds
    question_end: Seconds
    answer_utterance_ids: tuple[str, ...]
    answer_text: str
    answer_start: Seconds
    answer_end: Seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QAPair:
        data = dict(data)
        data["answer_utterance_ids"] = tuple(data["answer_utterance_ids"])
        return _from_dict(cls, data)


@dataclass(frozen=True)
class ConsistencyFinding:
    """One answer variant of a question group whose answers disagree.

    Every variant of an inconsistent group is a row: the majority (``is_majority``) gives
    the context, the others are the findings. With a knowledge base, an answer that
    contradicts the approved one is an outlier even when it is the majority.

    Attributes:
        finding_id: ``<group_id>/v<N>``.
        group_id: The question group.
        canonical_question: A readable question that stands for the group.
        variant: 0 for the majority variant, 1.. for the others (largest first).
        is_majority: Whether this is the variant most agents gave (and the knowledge base,
            if any, does not contradict).
        kinds: How this variant contradicts the reference: ``money``, ``percent``,
            ``duration``, ``clock``, ``date``, ``polarity``, ``option:<family>``,
            ``semantic``, ``knowledge_base``; empty for the majority.
        severity: ``high``, ``medium``, ``low``; ``none`` for the majority.
        reference: What the variant was compared with: ``majority`` or ``knowledge_base``.
        stated: The facts this variant states, for a person ("$9.99").
        expected: The reference's facts on the same dimensions ("$4.99").
        num_answers: Answers in this variant.
        agent_ids: Agents who gave it.
        call_ids: Calls it was given in.
        question_utterance_ids: Evidence: the questions.
        answer_utterance_ids: Evidence: the answers.
        answer_texts: Evidence: answer texts (one per QA pair, same order as the ids).
        kb_entry_id: The matching knowledge-base entry, if any.
        kb_answer: Its approved answer.
    """

    finding_id: str
    group_id: str
    canonical_question: str
    variant: int
    is_majority: bool
    kinds: tuple[str, ...]
    severity: str
    reference: str
    stated: str
    expected: str
    num_answers: int
    agent_ids: tuple[str, ...]
    call_ids: tuple[str, ...]
    question_utterance_ids: tuple[str, ...]
    answer_utterance_ids: tuple[str, ...]
    answer_texts: tuple[str, ...]
    kb_entry_id: str | None = None
    kb_answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConsistencyFinding:
        data = dict(data)
        for name in (
            "kinds", "agent_ids", "call_ids", "question_utterance_ids",
            "answer_utterance_ids", "answer_texts",
        ):  # fmt: skip
            data[name] = tuple(data[name])
        return _from_dict(cls, data)


# --- classifier ---


@dataclass(frozen=True)
class ClassifierInput:
    """One utterance to label, with the previous turn of the other party.

    Attributes:
        utterance_id: The utterance.
        call_id: The call.
        role: ``agent``, ``customer`` or ``unknown`` (scored as both).
        text: The utterance text ("" is valid and scores low).
        context: Text of the previous turn of the other party, "" when there is none.
    """

    utterance_id: str
    call_id: str
    role: str
    text: str
    context: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierInput:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class UtteranceLabels:
    """Classifier result of one utterance (``pipeline.classifier``).

    Attributes:
        utterance_id: The utterance.
        call_id: The call.
        role: Speaker role the utterance was scored as.
        label_names: The label of each position of ``scores``/``flags`` (the model's order).
        scores: Probability per label in [0, 1]; the other party's labels are 0.
        flags: ``score >= threshold`` per label (thresholds from the model's labels.json).
        truncated: Text or context was longer than the model's 128 tokens and was cut.
        model_name: Name of the classifier model.
        model_version: Version of the classifier model.
    """

    utterance_id: str
    call_id: str
    role: str
    label_names: tuple[str, ...]
    scores: tuple[float, ...]
    flags: tuple[bool, ...]
    truncated: bool
    model_name: str
    model_version: str

    def __post_init__(self) -> None:
        if not len(self.label_names) == len(self.scores) == len(self.flags):
            raise ValueError(
                f"{self.utterance_id}: label_names, scores and flags differ in length")

    @property
    def labels(self) -> tuple[str, ...]:
        """Names of the labels whose flag is set."""
        return tuple(n for n, f in zip(self.label_names, self.flags, strict=True) if f)

    def score(self, label: str) -> float:
        """Score of ``label`` (ValueError for an unknown label)."""
        try:
            return self.scores[self.label_names.index(label)]
        except ValueError:
            raise ValueError(f"unknown label {label!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UtteranceLabels:
        data = dict(data)
        for key in ("label_names", "scores", "flags"):
            if key in data:
                data[key] = tuple(data[key])
        return _from_dict(cls, data)
