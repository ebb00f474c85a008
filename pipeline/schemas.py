"""Parquet schemas of every table callscope writes: the one place they are defined.

Each table has a pyarrow schema and a function that turns its record into a row. The schema
version is stored in every file's metadata (``callscope.schema_version``); bump it when a
column changes meaning or type, and add columns rather than renaming them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pyarrow as pa

from pipeline.records import CallSummary, DeadLetter, Utterance, printable

SCHEMA_VERSION = "1"

WORD_TYPE = pa.struct(
    [
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("text", pa.string()),
        ("probability", pa.float32()),
    ]
)


# Table name -> (schema, key): the key is the columns that identify a row, the natural key
# a warehouse deduplicates or merges on. It is stored in each file's metadata too.
TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {}


def register(name: str, schema: pa.Schema, key: tuple[str, ...]) -> pa.Schema:
    """Add a table to :data:`TABLES` and return its schema with callscope's metadata."""
    missing = set(key) - set(schema.names)
    if missing:
        raise ValueError(f"table {name}: key columns {sorted(missing)} are not in the schema")
    versioned = schema.with_metadata(
        {
            "callscope.schema_version": SCHEMA_VERSION,
            "callscope.table": name,
            "callscope.key": ",".join(key),
        }
    )
    TABLES[name] = (versioned, key)
    return versioned


CALLS = register(
    "calls",
    pa.schema(
        [
            ("call_id", pa.string()),
            ("audio", pa.string()),
            ("agent_id", pa.string()),
            ("started_at", pa.string()),
            ("queue", pa.string()),
            ("language", pa.string()),
            ("status", pa.string()),
            ("duration", pa.float64()),
            ("num_channels", pa.int32()),
            ("source_sample_rate", pa.int32()),
            ("source_format", pa.string()),
            ("agent_channel", pa.int32()),
            ("customer_channel", pa.int32()),
            ("num_utterances", pa.int32()),
            ("num_words", pa.int32()),
            ("agent_speech", pa.float64()),
            ("customer_speech", pa.float64()),
            ("warnings", pa.list_(pa.string())),
            ("asr_backend", pa.string()),
            ("asr_model", pa.string()),
            ("processing_seconds", pa.float64()),
            ("pipeline_version", pa.string()),
            # Mono calls (pipeline.diarization); NULL on stereo calls.
            ("num_speakers", pa.int32()),
            ("role_method", pa.string()),
            ("role_confidence", pa.float64()),
        ]
    ),
    ("call_id",),
)

UTTERANCES = register(
    "utterances",
    pa.schema(
        [
            ("call_id", pa.string()),
            ("utterance_id", pa.string()),
            ("role", pa.string()),
            ("channel", pa.int32()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("text", pa.string()),
            ("confidence", pa.float32()),
            ("num_words", pa.int32()),
            ("words", pa.list_(WORD_TYPE)),
        ]
    ),
    ("utterance_id",),
)

DEAD_LETTER = register(
    "dead_letter",
    pa.schema(
        [
            ("call_id", pa.string()),
            ("stage", pa.string()),
            ("error_type", pa.string()),
            ("message", pa.string()),
            ("audio", pa.string()),
        ]
    ),
    ("call_id", "stage", "error_type", "message"),
)


def call_row(summary: CallSummary) -> dict[str, Any]:
    row = asdict(summary)
    row["audio"] = printable(summary.audio)  # a file name that is not UTF-8
    row["warnings"] = [printable(w) for w in summary.warnings]
    return row


def utterance_row(utterance: Utterance) -> dict[str, Any]:
    return {
        "call_id": utterance.call_id,
        "utterance_id": utterance.utterance_id,
        "role": utterance.role,
        "channel": utterance.channel,
        "start": utterance.start,
        "end": utterance.end,
        "text": utterance.text,
        "confidence": utterance.confidence,
        "num_words": len(utterance.words),
        "words": [asdict(w) for w in utterance.words],
    }


def dead_letter_row(dead: DeadLetter) -> dict[str, Any]:
    # Paths and messages may quote a file name that is not UTF-8.
    return {k: printable(v) for k, v in asdict(dead).items()}


def record_row(record: Any) -> dict[str, Any]:
    """The row of a flat record whose fields are the table's columns."""
    return asdict(record)


# --- consistency ---

CONSISTENCY_QA_PAIRS = register(
    "consistency_qa_pairs",
    pa.schema(
        [
            ("qa_id", pa.string()),
            ("call_id", pa.string()),
            ("agent_id", pa.string()),
            ("started_at", pa.string()),
            ("question_utterance_id", pa.string()),
            ("question_text", pa.string()),
            ("question_start", pa.float64()),
            ("question_end", pa.float64()),
            ("answer_utterance_ids", pa.list_(pa.string())),
            ("answer_text", pa.string()),
            ("answer_start", pa.float64()),
            ("answer_end", pa.float64()),
            ("group_id", pa.string()),
            ("index_version", pa.int32()),
            ("facts", pa.string()),  # JSON of pipeline.knowledge.AnswerFacts
            ("question_embedding", pa.list_(pa.float32())),
            ("answer_embedding", pa.list_(pa.float32())),
        ]
    ),
    ("qa_id",),
)

QUESTION_GROUPS = register(
    "question_groups",
    pa.schema(
        [
            ("group_id", pa.string()),
            ("canonical_question", pa.string()),
            ("num_questions", pa.int64()),
            ("num_calls", pa.int64()),
            ("num_agents", pa.int64()),
            ("index_version", pa.int32()),
            ("created_version", pa.int32()),
            ("centroid", pa.list_(pa.float32())),
            ("embedding_model", pa.string()),
        ]
    ),
    ("group_id",),
)

CONSISTENCY_FINDINGS = register(
    "consistency_findings",
    pa.schema(
        [
            ("finding_id", pa.string()),
            ("group_id", pa.string()),
            ("canonical_question", pa.string()),
            ("variant", pa.int32()),
            ("is_majority", pa.bool_()),
            ("kinds", pa.list_(pa.string())),
            ("severity", pa.string()),
            ("reference", pa.string()),
            ("stated", pa.string()),
            ("expected", pa.string()),
            ("num_answers", pa.int32()),
            ("agent_ids", pa.list_(pa.string())),
            ("call_ids", pa.list_(pa.string())),
            ("question_utterance_ids", pa.list_(pa.string())),
            ("answer_utterance_ids", pa.list_(pa.string())),
            ("answer_texts", pa.list_(pa.string())),
            ("kb_entry_id", pa.string()),
            ("kb_answer", pa.string()),
        ]
    ),
    ("finding_id",),
)


# --- dynamics ---


def _dynamics_schema(record: type, overrides: dict[str, pa.DataType]) -> pa.Schema:
    """Columns of a dynamics record in field order; float64 unless overridden."""
    from dataclasses import fields as _fields

    return pa.schema([(f.name, overrides.get(f.name, pa.float64())) for f in _fields(record)])


def _dynamics_tables() -> dict[str, pa.Schema]:
    from pipeline.records import CallMetrics, Event, LoudnessSecond, UtteranceAcoustics

    ints = {
        f: pa.int32()
        for f in (
            "interruptions agent_interruptions customer_interruptions agent_backchannels "
            "customer_backchannels non_talk_count holds holds_unannounced "
            "holds_without_permission holds_without_agreement holds_over_limit_without_update "
            "hold_updates venting_windows venting_interrupted_by_agent agent_fast_utterances "
            "response_latency_count second"
        ).split()
    }
    strings = {
        f: pa.string() for f in "call_id event_id type actor attributes utterance_id role".split()
    }
    other = {"agent_pace_flag": pa.bool_()}
    types = {**ints, **strings, **other}
    return {
        "events": register("events", _dynamics_schema(Event, types), ("event_id",)),
        "call_metrics": register(
            "call_metrics", _dynamics_schema(CallMetrics, types), ("call_id",)
        ),
        "utterance_metrics": register(
            "utterance_metrics", _dynamics_schema(UtteranceAcoustics, types), ("utterance_id",)
        ),
        "loudness_seconds": register(
            "loudness_seconds",
            _dynamics_schema(LoudnessSecond, types),
            ("call_id", "role", "second"),
        ),
    }


_DYNAMICS = _dynamics_tables()
EVENTS = _DYNAMICS["events"]
CALL_METRICS = _DYNAMICS["call_metrics"]
UTTERANCE_METRICS = _DYNAMICS["utterance_metrics"]
LOUDNESS_SECONDS = _DYNAMICS["loudness_seconds"]


# --- classifier ---


def _classifier_table() -> pa.Schema:
    from models.utterance_classifier.labels import LABELS

    columns = [("call_id", pa.string()), ("utterance_id", pa.string()), ("role", pa.string())]
    columns += [(f"score_{label}", pa.float32()) for label in LABELS]
    columns += [(label, pa.bool_()) for label in LABELS]
    columns += [("labels", pa.list_(pa.string())), ("truncated", pa.bool_()),
                ("model_name", pa.string()), ("model_version", pa.string())]
    return register("utterance_labels", pa.schema(columns), ("utterance_id",))


UTTERANCE_LABELS = _classifier_table()


def utterance_labels_row(record: Any) -> dict[str, Any]:
    """Row of :data:`UTTERANCE_LABELS` for a ``pipeline.records.UtteranceLabels``.

    One ``score_<label>`` float and one ``<label>`` boolean column per label, so SQL can
    say ``WHERE empathy`` or ``AVG(score_empathy)``.
    """
    row: dict[str, Any] = {"call_id": record.call_id, "utterance_id": record.utterance_id,
                           "role": record.role}
    for name, score, flag in zip(record.label_names, record.scores, record.flags, strict=True):
        row[f"score_{name}"] = score
        row[name] = flag
    row.update(labels=list(record.labels), truncated=record.truncated,
               model_name=record.model_name, model_version=record.model_version)
    return row


# --- scorecard ---

SCORECARDS = register(
    "scorecards",
    pa.schema(
        [
            ("call_id", pa.string()),
            ("agent_id", pa.string()),
            ("queue", pa.string()),
            ("started_at", pa.string()),
            ("score", pa.float64()),
            ("checks_passed", pa.int32()),
            ("checks_applicable", pa.int32()),
            ("failed_checks", pa.list_(pa.string())),
            (
                "checks",
                pa.list_(pa.struct([("check", pa.string()), ("result", pa.string()),
                                    ("reason", pa.string())])),
            ),
            ("greeting", pa.bool_()),
            ("identification", pa.bool_()),
            ("offer_help", pa.bool_()),
            ("thanks", pa.bool_()),
            ("courtesy_count", pa.int32()),
            ("agent_interruptions", pa.int32()),
            ("venting_windows", pa.int32()),
            ("venting_acknowledged", pa.int32()),
            ("complaints", pa.int32()),
            ("apologies", pa.int32()),
            ("blame_statements", pa.int32()),
            ("overwhelm_statements", pa.int32()),
            ("jargon_statements", pa.int32()),
            ("rushing_statements", pa.int32()),
            ("paraphrases", pa.int32()),
            ("holds", pa.int32()),
            ("holds_without_permission", pa.int32()),
            ("holds_over_limit_without_update", pa.int32()),
            ("typing_over_customer_seconds", pa.float64()),
            ("agent_pace_flag", pa.bool_()),
            ("rushed_utterances", pa.int32()),
            ("next_steps", pa.bool_()),
            ("customer_upset", pa.bool_()),
            ("supervisor_requested", pa.bool_()),
            ("customer_satisfied", pa.bool_()),
            ("label_model", pa.string()),
        ]
    ),
    ("call_id",),
)


# --- PII redaction (pipeline.pii): where and what kind, never the value ---

PII_REDACTIONS = register(
    "pii_redactions",
    pa.schema(
        [
            ("redaction_id", pa.string()),
            ("call_id", pa.string()),
            ("utterance_id", pa.string()),
            ("entity_type", pa.string()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("first_word", pa.int32()),
            ("num_words", pa.int32()),
            ("detector", pa.string()),
            ("score", pa.float32()),
        ]
    ),
    ("redaction_id",),
)
