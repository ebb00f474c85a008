"""A real Beam run (FnApiRunner) over the edge-case files: Parquet written and read back."""

from __future__ import annotations

import os
import subprocess
import sys

import apache_beam as beam
import pyarrow.parquet as pq
import pytest

from pipeline.evaluation import word_error_rate
from pipeline.run import TABLES_WRITTEN, run
from pipeline.schemas import SCHEMA_VERSION
from pipeline.sinks import read_table
from pipeline.warehouse import connect
from tests.conftest import FIXTURES, ROOT, ground_truth

BAD = FIXTURES / "bad"
FAILING = {
    "empty": "EmptyFile",
    "notes": "CorruptAudio",
    "truncated": "TruncatedAudio",
    "rate_4000": "UnsupportedSampleRate",
}


def _run(out_dir) -> object:
    return run(str(BAD), str(out_dir), test_pipeline=beam.Pipeline(runner="FnApiRunner"))


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad-run")
    result = _run(out)
    return out, result


def test_every_file_gets_a_calls_row_and_failures_a_dead_letter(bad_run):
    out, result = bad_run
    calls = {r["call_id"]: r for r in read_table(out, "calls").to_pylist()}
    assert len(calls) == 10 == result.calls
    for call_id in FAILING:
        assert calls[call_id]["status"] == "failed", call_id
    dead = read_table(out, "dead_letter").to_pylist()
    assert sorted((d["call_id"], d["stage"], d["error_type"]) for d in dead) == sorted(
        (call_id, "decode", code) for call_id, code in FAILING.items()
    )
    assert all(d["message"] for d in dead)
    assert calls["mono_8k"]["status"] == "warning"
    assert calls["silent_customer"]["warnings"] == ["channel 1 (customer) is digitally silent"]
    assert calls["bad-short-call"]["status"] == "ok"
    assert calls["bad-short-call"]["num_channels"] == 2
    assert calls["bad-short-call"]["source_sample_rate"] == 8000
    assert calls["rate_11025"]["source_sample_rate"] == 11025
    assert result.calls_failed == 4 and result.calls_ok == 6
    processed = {c for c, row in calls.items() if row["status"] != "failed"}
    for table in ("scorecards", "call_metrics"):
        assert {r["call_id"] for r in read_table(out, table).to_pylist()} == processed, table
    # The mono call is diarized: two speakers, roles from what they say; what one channel
    # cannot show (overlap, interruptions, typing) is null, not made up.
    assert calls["mono_8k"]["num_speakers"] == 2
    assert calls["mono_8k"]["role_method"] == "text"
    assert 0.5 < calls["mono_8k"]["role_confidence"] <= 1.0
    assert calls["bad-short-call"]["num_speakers"] is None
    metrics = {r["call_id"]: r for r in read_table(out, "call_metrics").to_pylist()}
    assert metrics["mono_8k"]["agent_talk_share"] > 0
    assert metrics["mono_8k"]["interruptions"] is None
    assert metrics["mono_8k"]["typing_over_customer_seconds"] is None
    assert metrics["silent_customer"]["customer_talk_seconds"] in (None, 0.0)


def test_utterances_match_the_ground_truth(bad_run):
    out, _ = bad_run
    utterances = read_table(out, "utterances").to_pylist()
    truth = ground_truth(BAD / "bad-short-call.flac")
    reference = " ".join(t["text"] for t in truth["turns"])
    for call_id in ("bad-short-call", "mulaw_8k", "alaw_8k", "rate_11025"):
        rows = sorted((u for u in utterances if u["call_id"] == call_id), key=lambda u: u["start"])
        assert rows, call_id
        assert [u["utterance_id"] for u in rows] == [f"{call_id}/u{i:04d}" for i in
                                                     range(1, len(rows) + 1)]
        hypothesis = " ".join(u["text"] for u in rows)
        assert word_error_rate(reference, hypothesis) <= 0.25, (call_id, hypothesis)
        assert {u["role"] for u in rows} == {"agent", "customer"}
        for u in rows:
            assert u["start"] <= u["end"]
            assert u["num_words"] == len(u["words"])
            assert u["words"][0]["start"] == u["start"]
    mono = sorted((u for u in utterances if u["call_id"] == "mono_8k"), key=lambda u: u["start"])
    assert mono and {u["role"] for u in mono} == {"agent", "customer"}
    assert word_error_rate(reference, " ".join(u["text"] for u in mono)) <= 0.25
    # Every mono utterance is said by the speaker the ground truth has at that time.
    for u in mono:
        speaker = max(truth["turns"], key=lambda t: min(t["end"], u["end"]) -
                      max(t["start"], u["start"]))["speaker"]
        assert u["role"] == speaker, u["text"]
    silent = [u for u in utterances if u["call_id"] == "silent_customer"]
    assert silent and {u["role"] for u in silent} == {"agent"}


def test_parquet_files_carry_the_schema_version(bad_run):
    out, _ = bad_run
    for table in ("calls", "utterances", "dead_letter"):
        files = sorted((out / table).glob("*.parquet"))
        assert len(files) == 1, files
        meta = pq.read_schema(files[0]).metadata
        assert meta[b"callscope.schema_version"] == SCHEMA_VERSION.encode()
        assert meta[b"callscope.table"] == table.encode()


def test_rerun_gives_the_same_rows(bad_run):
    out, _ = bad_run
    before = {t: _sorted_rows(out, t) for t in TABLES_WRITTEN}
    _run(out)
    after = {t: _sorted_rows(out, t) for t in TABLES_WRITTEN}
    for table in before:
        assert after[table] == before[table], table


def _sorted_rows(out, table):
    rows = read_table(out, table).to_pylist()
    for r in rows:
        r.pop("processing_seconds", None)  # wall time differs between runs by nature
    return sorted(rows, key=repr)


def test_duckdb_sees_the_tables(bad_run):
    out, _ = bad_run
    con = connect(str(out))
    failed = con.execute("SELECT count(*) FROM calls WHERE status = 'failed'").fetchall()[0][0]
    assert failed == 4
    per_role = dict(con.execute("SELECT role, count(*) FROM utterances GROUP BY role").fetchall())
    assert per_role["agent"] > 0 and per_role["customer"] > 0
    assert "unknown" not in per_role  # the mono call's speakers got roles too


def test_cli_runs_multiprocess_without_prism_and_queries(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("bad-short-call.flac", "notes.wav"):
        os.symlink(BAD / name, inputs / name)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(inputs), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "prism" not in log.lower()
    assert "2 calls (1 processed, 1 failed)" in log
    assert "[1/2] call bad-short-call" in log or "[2/2] call bad-short-call" in log
    query = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", "--out", str(out), "--format", "csv",
         "SELECT call_id, status FROM calls ORDER BY call_id"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines() == ["call_id,status", "bad-short-call,ok", "notes,failed"]
