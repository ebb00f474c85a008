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


def test_checks_follow_labels_and_dynamics():
    metrics = _metrics(agent_interruptions=1, holds=1, holds_without_permission=0,
                       holds_over_limit_without_update=1, typing_over_customer_seconds=0.5,
                       agent_pace_flag=False)
    card = score_call(_call(UTTERANCES), metrics, [VENTING], LABELS, "clf-1")
    checks = json.loads(card.checks)
    assert set(checks) == set(CHECKS)
    assert checks["greeting"] and checks["identification"] and checks["offer_help"]
    assert checks["empathy_after_venting"] is True and card.venting_acknowledged == 1
    assert checks["apology_for_complaint"] is True
    assert checks["no_blame"] is False and card.blame_statements == 1
    assert checks["no_interruptions"] is False
    assert checks["hold_permission"] is True and checks["hold_updates"] is False
    assert checks["no_typing_over_customer"] is True
    assert checks["next_steps"] is True
    assert checks["thanks"] is False and checks["courtesy"] is False
    assert card.customer_satisfied and card.customer_upset and not card.supervisor_requested
    assert set(card.failed_checks) == {"no_blame", "no_interruptions", "hold_updates",
                                       "thanks", "courtesy", "paraphrase"}
    assert card.checks_applicable == len(CHECKS)
    # Weighted: interruptions and hold updates weigh more than the other failed checks.
    assert 50 < card.score < 70
    assert card.agent_id == "a-7" and card.label_model == "clf-1"


def test_a_rushed_utterance_fails_pace_even_under_the_average_limit():
    rushed = Event("c1", "c1/e0002", "fast_pace", "agent", 40.0, 44.0, "{}")
    metrics = _metrics(agent_pace_flag=False)
    calm = score_call(_call(UTTERANCES), metrics, [VENTING], LABELS)
    hurried = score_call(_call(UTTERANCES), metrics, [VENTING, rushed], LABELS)
    assert json.loads(calm.checks)["pace"] is True
    assert json.loads(hurried.checks)["pace"] is False and hurried.rushed_utterances == 1


def test_checks_without_occasion_are_not_applicable():
    card = score_call(_call(UTTERANCES[:1]), _metrics(holds=0, agent_interruptions=0), [], {})
    checks = json.loads(card.checks)
    assert checks["empathy_after_venting"] is None
    assert checks["hold_permission"] is None and checks["hold_updates"] is None
    assert checks["apology_for_complaint"] is None
    assert checks["paraphrase"] is None  # nobody to restate
    assert checks["greeting"] is False


def test_call_without_agent_speech_scores_nothing_about_the_agent():
    card = score_call(_call(UTTERANCES[1:2]), None, [], {})
    assert card.score is None and card.checks_applicable == 0
