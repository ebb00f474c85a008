"""The callscope Beam pipeline: recordings in, Parquet tables out.

Stages, each a labelled PTransform::

    ListCalls -> Decode -> DetectSpeech -> Transcribe -> Assemble -> Write*
                 (per call)  (per channel)   (per channel)  (per call)

Per-channel work is spread over workers (two channels of a call can run in parallel);
models load once per worker in ``DoFn.setup``. Every failure becomes a ``dead_letter`` row and
every listed call a ``calls`` row, processed or not.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline import __version__
from pipeline.acoustics import AcousticsConfig, MeasureAcoustics
from pipeline.asr import AsrConfig
from pipeline.asr.transcribe import Transcribe
from pipeline.audio import HEADERS, AudioConfig, DecodeCalls
from pipeline.classifier import ClassifierConfig, LabelUtterances
from pipeline.deadletter import DEAD_LETTER
from pipeline.diarization import AssignSpeakers, DiarizationConfig, DiarizeChannels, RoleConfig
from pipeline.dynamics import ComputeDynamics, DynamicsConfig
from pipeline.manifest import ListInputs, check_input
from pipeline.pii import PiiConfig, RedactPii
from pipeline.publish import RUN_JSON, StagedOutput, write_text
from pipeline.records import CallSpec, CallTranscript, ClassifierInput, DeadLetter
from pipeline.schemas import (
    TABLES,
    call_row,
    dead_letter_row,
    record_row,
    utterance_labels_row,
    utterance_row,
)
from pipeline.scorecard import ScoreCalls, ScorecardConfig
from pipeline.sinks import WriteTable, read_table
from pipeline.utterances import (
    CALLS,
    AssembleCalls,
    UtteranceConfig,
    previous_turns,
    summarize_call,
)
from pipeline.vad import DetectSpeech, VadConfig

logger = logging.getLogger(__name__)

# The local default: Beam's portable FnApiRunner. Plain DirectRunner first tries the Prism
# runner, which downloads a binary (no network here); FnApiRunner never does.
DEFAULT_RUNNER = "FnApiRunner"


@dataclass(frozen=True)
class RunConfig:
    """Every stage's configuration for one run (each part documents its defaults)."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    acoustics: AcousticsConfig = field(default_factory=AcousticsConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    utterances: UtteranceConfig = field(default_factory=UtteranceConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    scorecard: ScorecardConfig = field(default_factory=ScorecardConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    diarization: DiarizationConfig = field(default_factory=DiarizationConfig)
    roles: RoleConfig = field(default_factory=RoleConfig)
    output_shards: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def asr_model_name(config: AsrConfig) -> str:
    """The model name recorded on every ``calls`` row."""
    if config.backend == "riva":
        return f"riva@{config.riva_uri}"
    if config.model:
        return config.model
    from pipeline.asr.whisper import BUNDLED_MODEL_NAME

    return BUNDLED_MODEL_NAME


class TranscribeCalls(beam.PTransform):
    """CallSpec -> CallTranscript (``transcripts``), CallSummary (``calls``), DeadLetter."""

    def __init__(self, config: RunConfig):
        super().__init__()
        self.config = config

    def expand(self, specs: beam.PCollection) -> dict[str, beam.PCollection]:
        decoded = specs | "Decode" >> DecodeCalls(self.config.audio)
        speech = decoded.channels | "DetectSpeech" >> DetectSpeech(self.config.vad)
        acoustics = speech.channels | "MeasureAcoustics" >> MeasureAcoustics(self.config.acoustics)
        words = acoustics.channels | "Transcribe" >> Transcribe(self.config.asr)
        # Mono calls: who spoke when. A failure here leaves the call with unknown roles.
        diarized = speech.channels | "Diarize" >> DiarizeChannels(self.config.diarization)
        dead = (
            decoded[DEAD_LETTER],
            speech[DEAD_LETTER],
            acoustics[DEAD_LETTER],
            words[DEAD_LETTER],
        ) | "StageFailures" >> beam.Flatten()
        assembled = {
            "specs": specs,
            "headers": decoded[HEADERS],
            "channels": words.transcripts,
            "dead": dead,
        } | "Assemble" >> AssembleCalls(
            self.config.utterances, self.config.asr.backend, asr_model_name(self.config.asr)
        )
        speakers = {
            "transcripts": assembled.transcripts,
            "calls": assembled[CALLS],
            "diarizations": diarized.diarizations,
        } | "AssignSpeakers" >> AssignSpeakers(
            self.config.roles, self.config.classifier, self.config.utterances
        )
        return {
            "transcripts": speakers.transcripts,
            "calls": speakers[CALLS],
            "dead_letter": (dead, diarized[DEAD_LETTER]) | "WithDiarizeFailures" >> beam.Flatten(),
        }


class AnalyzeCalls(beam.PTransform):
    """CallTranscript -> utterance labels, dynamics tables, scorecards and failures.

    The classifier labels every utterance (with the other party's previous turn as
    context); dynamics runs on each transcript with its labels (hold requests and updates);
    scorecards join labels, metrics and events per call.
    """

    def __init__(self, config: RunConfig):
        super().__init__()
        self.config = config

    def expand(self, transcripts: beam.PCollection) -> dict[str, beam.PCollection]:
        config = self.config
        labelled = (
            transcripts
            | "ClassifierInputs" >> beam.FlatMap(classifier_inputs)
            | "LabelUtterances" >> LabelUtterances(config.classifier)
        )
        labels_by_call = labelled["labels"] | "LabelsByCall" >> beam.Map(
            lambda r: (r.call_id, (r.utterance_id, r.labels))
        )
        with_labels = (
            {
                "transcripts": transcripts
                | "KeyTranscripts" >> beam.Map(lambda t: (t.call_id, t)),
                "labels": labels_by_call,
            }
            | "JoinLabels" >> beam.CoGroupByKey()
            | "TranscriptWithLabels" >> beam.FlatMap(_transcript_with_labels)
        )
        dynamics = with_labels | "Dynamics" >> ComputeDynamics(config.dynamics)
        scorecards = {
            "transcripts": transcripts,
            "metrics": dynamics[ComputeDynamics.CALL_METRICS],
            "events": dynamics[ComputeDynamics.EVENTS],
            "labels": labels_by_call,
        } | "Scorecards" >> ScoreCalls(config.scorecard, label_model_name(config.classifier))
        dead = (
            labelled["dead_letter"],
            dynamics[ComputeDynamics.DEAD_LETTER],
            scorecards[DEAD_LETTER],
        ) | "AnalysisFailures" >> beam.Flatten()
        return {
            "utterance_labels": labelled["labels"],
            "events": dynamics[ComputeDynamics.EVENTS],
            "call_metrics": dynamics[ComputeDynamics.CALL_METRICS],
            "utterance_metrics": dynamics[ComputeDynamics.UTTERANCE_METRICS],
            "loudness_seconds": dynamics[ComputeDynamics.LOUDNESS_SECONDS],
            "scorecards": scorecards.scorecards,
            "dead_letter": dead,
        }


# Table -> the function that turns its records into rows (schemas in pipeline.schemas).
ROW_OF: dict[str, Callable[[Any], dict[str, Any]]] = {
    "calls": call_row,
    "utterances": utterance_row,
    "utterance_labels": utterance_labels_row,
    "scorecards": record_row,
    "events": record_row,
    "call_metrics": record_row,
    "utterance_metrics": record_row,
    "loudness_seconds": record_row,
    "pii_redactions": record_row,
    "dead_letter": dead_letter_row,
}
TABLES_WRITTEN = tuple(ROW_OF)


def build(
    p: beam.Pipeline,
    specs: Sequence[CallSpec] | str,
    input_dead: Sequence[DeadLetter],
    out_dir: str,
    config: RunConfig,
) -> dict[str, beam.PCollection]:
    """Add the whole callscope pipeline to ``p``; return one collection per table.

    ``specs`` is either the calls resolved on the driver, or the input path itself, which
    workers then list (:class:`~pipeline.manifest.ListInputs`: no per-call state on the
    driver).
    """
    if isinstance(specs, str):
        listed = p | "ListInputs" >> ListInputs(specs)
        listed_specs, rejected = listed.specs, listed[ListInputs.REJECTED]
    else:
        listed_specs = p | "ListCalls" >> beam.Create(list(specs))
        rejected = p | "InputFailures" >> beam.Create(list(input_dead))
    # Spread calls over workers before the heavy per-call work.
    calls = listed_specs | "SpreadCalls" >> beam.Reshuffle()
    transcribed = calls | "TranscribeCalls" >> TranscribeCalls(config)
    # --- PII redaction (pipeline/pii.py): everything below sees redacted transcripts only;
    # a call whose redaction fails becomes a failed call with a dead letter, never unredacted.
    redacted = transcribed | "RedactPii" >> RedactPii(config.pii)
    # --- end of PII redaction
    analyzed = redacted["transcripts"] | "AnalyzeCalls" >> AnalyzeCalls(config)
    backend, model = config.asr.backend, asr_model_name(config.asr)
    tables = {
        # An input rejected before decoding (a bad manifest line) still gets its calls row.
        "calls": (
            redacted["calls"],
            rejected
            | "RejectedCalls"
            >> beam.Map(
                lambda d: summarize_call(
                    CallSpec(d.call_id, d.audio), None, None, "failed", backend, model
                )
            ),
        )
        | "AllCalls" >> beam.Flatten(),
        "utterances": redacted["transcripts"]
        | "Utterances" >> beam.FlatMap(lambda t: t.utterances),
        "pii_redactions": redacted["pii_redactions"],
        **{name: pcoll for name, pcoll in analyzed.items() if name != "dead_letter"},
        "dead_letter": (
            transcribed["dead_letter"],
            redacted["dead_letter"],
            analyzed["dead_letter"],
            rejected,
        )
        | "AllFailures" >> beam.Flatten(),
    }
    for name, records in tables.items():
        label = "Write" + name.title().replace("_", "")
        _ = records | label >> WriteTable(out_dir, name, ROW_OF[name], config.output_shards)
    return tables


def label_model_name(config: ClassifierConfig) -> str:
    """``name@version`` of the utterance classifier, recorded on every scorecard."""
    with open(os.path.join(config.model_dir, "labels.json"), encoding="utf-8") as f:
        meta = json.load(f)
    return f"{meta['model_name']}@{meta['model_version']}"


def classifier_inputs(call: CallTranscript) -> list[ClassifierInput]:
    """One classifier input per utterance, with the other party's previous turn."""
    context = previous_turns(call.utterances)
    return [
        ClassifierInput(u.utterance_id, u.call_id, u.role, u.text, context[u.utterance_id])
        for u in call.utterances
    ]


def _transcript_with_labels(
    element: tuple[str, dict[str, list[Any]]],
) -> list[tuple[CallTranscript, dict[str, tuple[str, ...]]]]:
    _, parts = element
    return [(t, dict(parts["labels"])) for t in parts["transcripts"]]




def pipeline_options(beam_args: Sequence[str] | None = None) -> PipelineOptions:
    """Beam options from ``beam_args``, with callscope's local defaults filled in.

    Without ``--runner`` the run uses FnApiRunner in multi-process mode with one worker per
    core (two single-threaded workers beat one two-threaded worker on 2 cores).
    """
    options = PipelineOptions(list(beam_args or []))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
        direct = options.view_as(DirectOptions)
        if direct.direct_num_workers == 1 and "--direct_num_workers" not in str(beam_args):
            direct.direct_num_workers = os.cpu_count() or 1
        if direct.direct_running_mode == "in_memory" and direct.direct_num_workers > 1:
            direct.direct_running_mode = "multi_processing"
    return options


@dataclass(frozen=True)
class RunResult:
    """What a run wrote and how long it took."""

    out_dir: str
    calls: int
    calls_ok: int
    calls_failed: int
    utterances: int
    dead_letters: int
    audio_seconds: float
    wall_seconds: float
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(
    input_path: str,
    out_dir: str,
    config: RunConfig | None = None,
    beam_args: Sequence[str] | None = None,
    test_pipeline: beam.Pipeline | None = None,
    wait: bool = False,
) -> RunResult:
    """Process every call of ``input_path`` and write the tables under ``out_dir``.

    The input is listed by the pipeline's workers (:func:`run_specs` takes calls resolved
    on the driver instead).
    """
    check_input(input_path)
    return run_specs(input_path, [], out_dir, config, beam_args, test_pipeline, wait=wait)


def run_specs(
    specs: Sequence[CallSpec] | str,
    input_dead: Sequence[DeadLetter],
    out_dir: str,
    config: RunConfig | None = None,
    beam_args: Sequence[str] | None = None,
    test_pipeline: beam.Pipeline | None = None,
    wait: bool = False,
    before_publish: Callable[[str], None] | None = None,
) -> RunResult:
    """:func:`run` for calls already resolved (``pipeline.manifest.resolve_input``).

    The tables are written to a staging folder and replace the earlier ones in ``out_dir``
    only once the whole run (and ``before_publish``) succeeded (:mod:`pipeline.publish`).

    Args:
        wait: Wait for another run that holds ``out_dir`` instead of raising
            :class:`pipeline.publish.OutputBusyError`.
        before_publish: Called with the staging folder after the pipeline wrote its tables
            there and before they are published (the CLI adds the consistency tables).
    """
    config = config or RunConfig()
    started = time.perf_counter()
    if not isinstance(specs, str):
        logger.info("%d calls to process, %d input problems", len(specs), len(input_dead))
    options = test_pipeline.options if test_pipeline else pipeline_options(beam_args)
    # The driver reads and publishes through FileSystems too: give it the job's options
    # (an S3 endpoint, credentials) before it touches the output folder.
    FileSystems.set_options(options)
    with StagedOutput(out_dir, wait=wait) as staged:
        p = test_pipeline or beam.Pipeline(options=options)
        build(p, specs, input_dead, staged.path, config)
        result = p.run()
        result.wait_until_finish()
        summary = _summarize(staged.path, config, time.perf_counter() - started)
        if before_publish is not None:
            before_publish(staged.path)
        write_text(
            FileSystems.join(staged.path, RUN_JSON),
            json.dumps(
                {"pipeline_version": __version__, "run_id": staged.run_id,
                 "result": {**summary.to_dict(), "out_dir": out_dir},
                 "config": config.to_dict()},
                indent=2,
            ),
        )
        staged.publish(list(TABLES))
    return replace(summary, out_dir=out_dir, run_id=staged.run_id)


def _summarize(out_dir: str, config: RunConfig, wall: float) -> RunResult:
    calls = read_table(out_dir, "calls")
    statuses = calls.column("status").to_pylist()
    durations = [d for d in calls.column("duration").to_pylist() if d]
    return RunResult(
        out_dir=out_dir,
        calls=calls.num_rows,
        calls_ok=sum(s != "failed" for s in statuses),
        calls_failed=sum(s == "failed" for s in statuses),
        utterances=read_table(out_dir, "utterances").num_rows,
        dead_letters=read_table(out_dir, "dead_letter").num_rows,
        audio_seconds=round(sum(durations), 3),
        wall_seconds=round(wall, 3),
    )
