"""Per-call QA scorecards: the questions a supervisor asks, answered for every call.

A scorecard combines the utterance classifier's labels with the conversation-dynamics
metrics and events into named checks, each ``pass``, ``fail`` or not applicable (``None``),
and a score: the share of applicable checks passed, 0-100. The checks follow common
contact-center QA forms (greeting with company, name and offer to help; courtesy; empathy
after an upset customer vents; owning mistakes without blaming others; hold etiquette with
permission and updates within 30 s; no talking over the customer; stating next steps).
Per-agent aggregates are SQL over the ``scorecards`` table (``pipeline/sql/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import AGENT, CUSTOMER, CallMetrics, CallTranscript, Event, Seconds

# Check name -> what a pass means (shown in docs and the CLI).
CHECKS: dict[str, str] = {
    "greeting": "greeted the caller at the start",
    "identification": "named the company and/or themself at the start",
    "offer_help": "offered to help at the start",
    "thanks": "thanked the customer",
    "courtesy": "said please / used courtesy phrases",
    "no_interruptions": "did not interrupt the customer",
    "empathy_after_venting": "acknowledged the feeling after the customer vented",
    "apology_for_complaint": "apologised when the customer complained",
    "no_blame": "did not blame others, equipment or departments",
    "no_overwhelm_talk": "did not complain of being swamped or busy",
    "no_jargon": "avoided jargon and internal acronyms",
    "no_rushing": "did not hurry the customer",
    "paraphrase": "restated the customer's need",
    "hold_permission": "asked before every hold",
    "hold_updates": "never left the customer on hold over 30 s without an update",
    "no_typing_over_customer": "no audible typing while the customer spoke",
    "pace": "spoke at a calm pace (no rushed utterances, average rate under the limit)",
    "next_steps": "said what happens next",
}


@dataclass(frozen=True)
class ScorecardConfig:
    """Options of the scorecard.

    Attributes:
        opening_window: Seconds from the agent's first word in which greeting,
            identification and offer to help count as part of the opening (QA forms score
            the opening, not a greeting said halfway through the call).
        typing_tolerance: Seconds of typing over customer speech tolerated (a few keys
            while noting a number is normal).
        check_weights: Relative weight of each check in the score; 1 when not listed.
    """

    opening_window: Seconds = 30.0
    typing_tolerance: Seconds = 2.0
    check_weights: Mapping[str, float] = field(
        default_factory=lambda: {"empathy_after_venting": 2.0, "no_interruptions": 2.0,
                                 "hold_permission": 1.5, "hold_updates": 1.5}
    )


PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not_applicable"


@dataclass(frozen=True)
class CheckResult:
    """One QA check of one call.

    Attributes:
        check: Name of the check (a key of ``CHECKS``).
        result: ``pass``, ``fail`` or ``not_applicable``.
        reason: Why the check does not apply (no hold in the call, labels missing, roles
            unknown, ...); None when it applies.
    """

    check: str
    result: str
    reason: str | None = None


@dataclass(frozen=True)
class Scorecard:
    """One row per processed call: check results, counts behind them, and the score.

    ``checks`` holds every check with its result and, when not applicable, the reason;
    ``failed_checks`` lists the failed ones for quick filtering. A count that could not be
    measured (labels missing, roles unknown, no dynamics) is None, never 0.
    """

    call_id: str
    agent_id: str | None
    queue: str | None
    started_at: str | None
    score: float | None
    checks_passed: int
    checks_applicable: int
    failed_checks: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    greeting: bool | None
    identification: bool | None
    offer_help: bool | None
    thanks: bool | None
    courtesy_count: int | None
    agent_interruptions: int | None
    venting_windows: int | None
    venting_acknowledged: int | None
    complaints: int | None
    apologies: int | None
    blame_statements: int | None
    overwhelm_statements: int | None
    jargon_statements: int | None
    rushing_statements: int | None
    paraphrases: int | None
    holds: int | None
    holds_without_permission: int | None
    holds_over_limit_without_update: int | None
    typing_over_customer_seconds: Seconds | None
    agent_pace_flag: bool | None
    rushed_utterances: int | None
    next_steps: bool | None
    customer_upset: bool | None
    supervisor_requested: bool | None
    customer_satisfied: bool | None
    label_model: str

    def result(self, check: str) -> str:
        """``pass``, ``fail`` or ``not_applicable`` for ``check``."""
        return next(c.result for c in self.checks if c.check == check)


def _count(labels: Mapping[str, frozenset[str]], ids: Iterable[str], name: str) -> int:
    return sum(name in labels.get(u, frozenset()) for u in ids)


class _Check:
    """A check's outcome: True/False, or not applicable with a reason."""

    def __init__(self, value: bool | None = None, reason: str | None = None) -> None:
        if value is None and not reason:
            raise ValueError("a check that does not apply needs a reason")
        self.value = value
        self.reason = None if value is not None else reason

    def result(self, check: str) -> CheckResult:
        if self.value is None:
            return CheckResult(check, NOT_APPLICABLE, self.reason)
        return CheckResult(check, PASS if self.value else FAIL)


def _na(reason: str) -> _Check:
    return _Check(None, reason)


def score_call(
    call: CallTranscript,
    metrics: CallMetrics | None,
    events: Sequence[Event],
    labels: Mapping[str, Iterable[str]],
    label_model: str = "",
    config: ScorecardConfig | None = None,
) -> Scorecard:
    """The scorecard of one call from its utterances' labels and its dynamics.

    ``labels`` maps utterance ids to the labels that fired; an utterance missing from it was
    not labelled (its classifier batch failed), and every check and count that needs it is
    not applicable / None rather than counted as "not said".
    """
    config = config or ScorecardConfig()
    sets = {u: frozenset(v) for u, v in labels.items()}
    agent = [u for u in call.utterances if u.role == AGENT]
    customer = [u for u in call.utterances if u.role == CUSTOMER]
    agent_ids = [u.utterance_id for u in agent]
    customer_ids = [u.utterance_id for u in customer]
    opening = [u.utterance_id for u in agent if u.start - agent[0].start <= config.opening_window]
    roles_unknown = bool(call.utterances) and not agent and not customer

    def missing(ids: list[str], party: str) -> str | None:
        if roles_unknown:
            return "speaker roles unknown"
        unlabelled = [u for u in ids if u not in sets]
        if unlabelled:
            return (f"classifier labels missing for {len(unlabelled)} of {len(ids)} "
                    f"{party} utterances")
        return None

    agent_na = missing(agent_ids, "agent") or (None if agent else "no agent speech")
    customer_na = missing(customer_ids, "customer")

    def agent_count(name: str, ids: list[str] = agent_ids) -> int | None:
        return None if agent_na else _count(sets, ids, name)

    def customer_count(name: str, ids: list[str] = customer_ids) -> int | None:
        return None if customer_na else _count(sets, ids, name)

    def said(name: str, ids: list[str]) -> _Check:
        return _na(agent_na) if agent_na else _Check(_count(sets, ids, name) > 0)

    def never(name: str) -> _Check:
        return _na(agent_na) if agent_na else _Check(_count(sets, agent_ids, name) == 0)

    no_metrics = "no dynamics measured for this call"
    venting = [e for e in events if e.type == "venting"]
    rushed = sum(e.type == "fast_pace" for e in events) if metrics else None
    acknowledged = 0
    for event in venting:
        response = json.loads(event.attributes).get("agent_response_utterance_id")
        if response and "empathy" in sets.get(response, frozenset()):
            acknowledged += 1
    complaints = customer_count("complaint")
    holds = metrics.holds if metrics else None
    typing = metrics.typing_over_customer_seconds if metrics else None

    def empathy_check() -> _Check:
        if metrics is None:
            return _na(no_metrics)
        if metrics.venting_windows is None:
            return _na("venting not measurable (roles unknown or one party missing)")
        if not venting:
            return _na("customer did not vent")
        if agent_na:
            return _na(agent_na)
        return _Check(acknowledged == len(venting))

    def apology_check() -> _Check:
        if complaints is None:
            return _na(customer_na or "no customer labels")
        if complaints == 0:
            return _na("no complaint")
        return _na(agent_na) if agent_na else _Check(_count(sets, agent_ids, "apology") > 0)

    def metric_check(value: bool | None, what: str) -> _Check:
        if metrics is None:
            return _na(no_metrics)
        return _Check(value) if value is not None else _na(f"{what} not measurable on this call")

    def hold_check(value: int | None) -> _Check:
        if metrics is None:
            return _na(no_metrics)
        if holds is None:
            return _na("holds not measurable on this call")
        if holds == 0:
            return _na("no hold")
        return _Check(value == 0) if value is not None else _na("hold etiquette not measured")

    def paraphrase_check() -> _Check:
        if agent_na:
            return _na(agent_na)
        if not customer:
            return _na("no customer speech to restate")
        return _Check(_count(sets, agent_ids, "paraphrase") > 0)

    pace_value = (
        None if metrics is None or metrics.agent_pace_flag is None
        else (not metrics.agent_pace_flag and not rushed)
    )
    outcome: dict[str, _Check] = {
        "greeting": said("greeting", opening),
        "identification": said("identification", opening),
        "offer_help": said("offer_help", opening),
        "thanks": said("thanks", agent_ids),
        "courtesy": said("courtesy", agent_ids),
        "no_interruptions": metric_check(
            None if metrics is None or metrics.agent_interruptions is None
            else metrics.agent_interruptions == 0, "interruptions"),
        "empathy_after_venting": empathy_check(),
        "apology_for_complaint": apology_check(),
        "no_blame": never("blame"),
        "no_overwhelm_talk": never("overwhelm"),
        "no_jargon": never("jargon"),
        "no_rushing": never("rushing"),
        "paraphrase": paraphrase_check(),
        "hold_permission": hold_check(metrics.holds_without_permission if metrics else None),
        "hold_updates": hold_check(
            metrics.holds_over_limit_without_update if metrics else None),
        "no_typing_over_customer": metric_check(
            None if typing is None else typing <= config.typing_tolerance,
            "typing over the customer"),
        "pace": metric_check(pace_value, "pace"),
        "next_steps": said("next_steps", agent_ids),
    }
    checks = tuple(outcome[name].result(name) for name in CHECKS)
    applicable = {c.check: c.result == PASS for c in checks if c.result != NOT_APPLICABLE}
    weight = {k: config.check_weights.get(k, 1.0) for k in applicable}
    total = sum(weight.values())
    passed = sum(weight[k] for k, v in applicable.items() if v)
    return Scorecard(
        call_id=call.call_id,
        agent_id=call.spec.agent_id,
        queue=call.spec.queue,
        started_at=call.spec.started_at,
        score=round(100.0 * passed / total, 1) if total else None,
        checks_passed=sum(applicable.values()),
        checks_applicable=len(applicable),
        failed_checks=tuple(k for k, v in applicable.items() if not v),
        checks=checks,
        greeting=outcome["greeting"].value,
        identification=outcome["identification"].value,
        offer_help=outcome["offer_help"].value,
        thanks=outcome["thanks"].value,
        courtesy_count=agent_count("courtesy"),
        agent_interruptions=metrics.agent_interruptions if metrics else None,
        venting_windows=metrics.venting_windows if metrics else None,
        venting_acknowledged=acknowledged if metrics and metrics.venting_windows is not None
        and not agent_na else None,
        complaints=complaints,
        apologies=agent_count("apology"),
        blame_statements=agent_count("blame"),
        overwhelm_statements=agent_count("overwhelm"),
        jargon_statements=agent_count("jargon"),
        rushing_statements=agent_count("rushing"),
        paraphrases=agent_count("paraphrase"),
        holds=holds,
        holds_without_permission=metrics.holds_without_permission if metrics else None,
        holds_over_limit_without_update=(
            metrics.holds_over_limit_without_update if metrics else None
        ),
        typing_over_customer_seconds=typing,
        agent_pace_flag=metrics.agent_pace_flag if metrics else None,
        rushed_utterances=rushed,
        next_steps=outcome["next_steps"].value,
        customer_upset=None if customer_na else _count(sets, customer_ids, "upset") > 0,
        supervisor_requested=None if customer_na
        else _count(sets, customer_ids, "supervisor_request") > 0,
        customer_satisfied=None if customer_na
        else _count(sets, customer_ids[-3:], "satisfaction") > 0,
        label_model=label_model,
    )


class ScoreFn(StageFn):
    """Score one call from its co-grouped transcript, metrics, events and labels."""

    stage = "scorecard"

    def __init__(self, config: ScorecardConfig, label_model: str):
        super().__init__()
        self.config = config
        self.label_model = label_model

    def run(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Scorecard]:
        _, parts = element
        labels = {u: names for u, names in parts["labels"]}
        metrics = parts["metrics"][0] if parts["metrics"] else None
        events = sorted(parts["events"], key=lambda e: e.start)
        # Failed calls have no transcript (their calls row says so) and get no scorecard.
        for transcript in parts["transcripts"][:1]:
            yield score_call(transcript, metrics, events, labels, self.label_model, self.config)


class ScoreCalls(beam.PTransform):
    """Join per call and score.

    Input: dict of PCollections ``transcripts`` (CallTranscript), ``metrics`` (CallMetrics),
    ``events`` (Event), ``labels`` (``(utterance_id, label names)`` pairs keyed by call:
    ``(call_id, (utterance_id, names))``). Output: Scorecard per processed call (main),
    DeadLetter for a call whose scoring failed (``dead_letter``).
    """

    def __init__(self, config: ScorecardConfig | None = None, label_model: str = ""):
        super().__init__()
        self.config = config or ScorecardConfig()
        self.label_model = label_model

    def expand(self, parts: dict[str, beam.PCollection]) -> beam.pvalue.DoOutputsTuple:
        keyed = {
            "transcripts": parts["transcripts"]
            | "KeyTranscripts" >> beam.Map(lambda t: (t.call_id, t)),
            "metrics": parts["metrics"] | "KeyMetrics" >> beam.Map(lambda m: (m.call_id, m)),
            "events": parts["events"] | "KeyEvents" >> beam.Map(lambda e: (e.call_id, e)),
            "labels": parts["labels"],
        }
        return (
            keyed
            | "GroupByCall" >> beam.CoGroupByKey()
            | "Score"
            >> beam.ParDo(ScoreFn(self.config, self.label_model)).with_outputs(
                DEAD_LETTER, main="scorecards"
            )
        )
