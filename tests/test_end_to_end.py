"""End to end on generated multi-agent calls: audio -> Whisper -> labels -> consistency.

The six calls of ``tests/fixtures/consistency`` (three agents) carry ground truth for every
question-answer pair, two of which contradict the approved knowledge base (a yes where
the policy is no; "pay off the remainder" where the policy is a flat fee). After real
ASR, the consistency stage must flag exactly those.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pytest

from pipeline import consistency
from pipeline.run import TABLES_WRITTEN, run
from pipeline.sinks import read_table
from tests.conftest import FIXTURES, ROOT

CALLS = FIXTURES / "consistency"
KB = ROOT / "tools" / "callgen" / "knowledge_base.yaml"


@pytest.fixture(scope="module")
def kc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kc")
    result = run(str(CALLS / "manifest.jsonl"), str(out),
                 test_pipeline=beam.Pipeline(runner="FnApiRunner"))
    consistency.run_consistency(str(out / "utterances"), str(out / "calls"), str(out),
                                kb_path=str(KB))
    return out, result


def test_every_table_is_written_and_joins(kc_run):
    out, result = kc_run
    assert result.calls == result.calls_ok == 6
    utterances = read_table(out, "utterances")
    labels = read_table(out, "utterance_labels")
    assert labels.num_rows == utterances.num_rows > 0
    assert set(labels.column("utterance_id").to_pylist()) == set(
        utterances.column("utterance_id").to_pylist()
    )
    assert set(labels.column("model_name").to_pylist()) == {"callscope-utterance-classifier"}
    cards = read_table(out, "scorecards").to_pylist()
    assert sorted(c["call_id"] for c in cards) == [f"kc-000{i}" for i in range(6)]
    assert all(0 <= c["score"] <= 100 for c in cards)
    assert read_table(out, "call_metrics").num_rows == 6
    for table in TABLES_WRITTEN:
        assert (out / table).is_dir(), table


def test_contradictions_of_the_knowledge_base_are_found_after_asr(kc_run):
    out, _ = kc_run
    wrong = set()
    agents = {}
    for path in sorted(CALLS.glob("*.json")):
        truth = json.loads(path.read_text())
        agents[truth["call_id"]] = truth["agent_id"]
        wrong |= {(truth["call_id"], qa["group_id"]) for qa in truth["qa_pairs"]
                  if not qa["correct"]}
    assert wrong == {("kc-0002", "cancel_shipped"), ("kc-0005", "early_termination")}
    findings = [
        f for f in consistency.read_findings(str(out)).to_pylist() if not f["is_majority"]
    ]
    flagged = {(call_id, f["kb_entry_id"]) for f in findings for call_id in f["call_ids"]}
    assert flagged == wrong
    assert all("knowledge_base" in f["kinds"] and f["severity"] == "high" for f in findings)
    for f in findings:
        assert f["agent_ids"] == [agents[c] for c in f["call_ids"]]
