"""Scorecard checks from labels and dynamics (pure function, then in the full pipeline)."""

from __future__ import annotations

import json
from dataclasses import fields

from pipeline.records import (
    CallHeader,
    CallMetrics,
    CallSpec,
    CallTranscript,
    Event,
    Utterance,
    Word,
)
from pipeline.scorecard import CHECKS, score_call


def _utterance(n: int, role: str, start: float, text: str) -> Utterance:
    words = tuple(Word(start + i * 0.3, start + i * 0.3 + 0.25, w, 0.9)
                  for i, w in enumerate(text.split()))
    return Utterance(f"c1/u{n:04d}", "c1", role, 0 if role == "agent" else 1, start,
                     words[-1].end, text, words, 0.9)


def _call(utterances) -> CallTranscript:
    spec = CallSpec("c1", "/c1.flac", agent_id="a-7", queue="billing")
    header = CallHeader(spec, 120.0, 2, 16000, 8000, "FLAC/PCM_16")
    return CallTranscript(header, (), tuple(utterances))


def _metrics(**values) -> CallMetrics:
    base = {f.name: None for f in fields(CallMetrics)}
    base.update(call_id="c1", duration=120.0, non_talk_count=0, non_talk_seconds=0.0,
                non_talk_longest=0.0)
    base.update(values)
    return CallMetrics(**base)


UTTERANCES = [
    _utterance(1, "agent", 0.5, "Thank you for calling Acme, this is Dana, how can I help?"),
    _utterance(2, "customer", 5.0, "You charged me twice and I am really angry about it."),
    _utterance(3, "agent", 25.0, "I can tell you are really upset, I am sorry we did that."),
    _utterance(4, "agent", 30.0, "The billing system messed up again, not my fault."),
    _utterance(5, "agent", 40.0, "I will refund the charge today and email you a receipt."),
    _utterance(6, "customer", 50.0, "Thanks, that is great."),
]
LABELS = {
    "c1/u0001": ["greeting", "identification", "offer_help"],
    "c1/u0002": ["complaint", "upset"],
    "c1/u0003": ["empathy", "apology"],
    "c1/u0004": ["blame"],
    "c1/u0005": ["next_steps"],
    "c1/u0006": ["satisfaction"],
}
VENTING = Event("c1", "c1/e0001", "venting", "customer", 5.0, 24.0,
                json.dumps({"agent_response_utterance_id": "c1/u0003"}))


def _results(card) -> dict[str, str]:
    return {c.check: c.result for c in card.checks}


def test_checks_follow_labels_and_dynamics():
    metrics = _metrics(agent_interruptions=1, holds=1, holds_without_permission=0,
                       holds_over_limit_without_update=1, typing_over_customer_seconds=0.5,
                       agent_pace_flag=False, venting_windows=1)
    card = score_call(_call(UTTERANCES), metrics, [VENTING], LABELS, "clf-1")
    checks = _results(card)
    assert list(checks) == list(CHECKS)
    assert checks["greeting"] == checks["identification"] == checks["offer_help"] == "pass"
    assert checks["empathy_after_venting"] == "pass" and card.venting_acknowledged == 1
    assert checks["apology_for_complaint"] == "pass"
    assert checks["no_blame"] == "fail" and card.blame_statements == 1
    assert checks["no_interruptions"] == "fail"
    assert checks["hold_permission"] == "pass" and checks["hold_updates"] == "fail"
    assert checks["no_typing_over_customer"] == "pass"
    assert checks["next_steps"] == "pass"
    assert checks["thanks"] == "fail" and checks["courtesy"] == "fail"
    assert card.customer_satisfied and card.customer_upset and not card.supervisor_requested
    assert set(card.failed_checks) == {"no_blame", "no_interruptions", "hold_updates",
                                       "thanks", "courtesy", "paraphrase"}
    assert card.checks_applicable == len(CHECKS)
    assert all(c.reason is None for c in card.checks)
    # Weighted: interruptions and hold updates weigh more than the other failed checks.
    assert 50 < card.score < 70
    assert card.agent_id == "a-7" and card.label_model == "clf-1"


def test_a_rushed_utterance_fails_pace_even_under_the_average_limit():
    rushed = Event("c1", "c1/e0002", "fast_pace", "agent", 40.0, 44.0, "{}")
    metrics = _metrics(agent_pace_flag=False)
    calm = score_call(_call(UTTERANCES), metrics, [VENTING], LABELS)
    hurried = score_call(_call(UTTERANCES), metrics, [VENTING, rushed], LABELS)
    assert calm.result("pace") == "pass"
    assert hurried.result("pace") == "fail" and hurried.rushed_utterances == 1


def test_checks_without_occasion_are_not_applicable_with_a_reason():
    card = score_call(_call(UTTERANCES[:1]), _metrics(holds=0, agent_interruptions=0,
                                                     venting_windows=0),
                      [], {"c1/u0001": ["greeting"]})
    reasons = {c.check: c.reason for c in card.checks if c.result == "not_applicable"}
    assert reasons["empathy_after_venting"] == "customer did not vent"
    assert reasons["hold_permission"] == reasons["hold_updates"] == "no hold"
    assert reasons["apology_for_complaint"] == "no complaint"
    assert reasons["paraphrase"] == "no customer speech to restate"
    assert card.result("greeting") == "pass" and card.result("thanks") == "fail"


def test_missing_labels_are_not_applicable_never_not_said():
    # The classifier batch holding u0003-u0005 failed: their labels are missing, not empty.
    metrics = _metrics(agent_interruptions=0, holds=0, venting_windows=1, agent_pace_flag=False)
    partial = {u: v for u, v in LABELS.items() if u in ("c1/u0001", "c1/u0002", "c1/u0006")}
    card = score_call(_call(UTTERANCES), metrics, [VENTING], partial)
    full = score_call(_call(UTTERANCES), metrics, [VENTING], LABELS)
    for check in ("greeting", "thanks", "no_blame", "no_jargon", "next_steps",
                  "empathy_after_venting", "apology_for_complaint"):
        assert card.result(check) == "not_applicable", check
    assert all("labels missing for 3 of 4 agent utterances" in c.reason
               for c in card.checks if c.check in ("no_blame", "greeting"))
    assert card.blame_statements is None and card.apologies is None
    assert card.complaints == 1  # customer utterances were all labelled
    assert card.result("no_interruptions") == "pass"  # dynamics need no labels
    assert card.checks_applicable < full.checks_applicable


def test_unknown_roles_score_nothing_and_count_nothing():
    mono = [Utterance(u.utterance_id, u.call_id, "unknown", 0, u.start, u.end, u.text, u.words,
                      u.confidence) for u in UTTERANCES]
    card = score_call(_call(mono), None, [], LABELS)
    assert card.score is None and card.checks_applicable == 0
    assert {c.reason for c in card.checks} >= {"speaker roles unknown",
                                               "no dynamics measured for this call"}
    assert card.complaints is None and card.customer_upset is None


def test_call_without_agent_speech_scores_nothing_about_the_agent():
    card = score_call(_call(UTTERANCES[1:2]), None, [], {})
    assert card.score is None and card.checks_applicable == 0
