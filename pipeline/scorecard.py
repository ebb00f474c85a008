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


@dataclass(frozen=True)
class Scorecard:
    """One row per processed call: check results, counts behind them, and the score.

    ``checks`` is a JSON object ``{check: true | false | null}`` (null: not applicable);
    ``failed_checks`` lists the failed ones for quick filtering.
    """

    call_id: str
    agent_id: str | None
    queue: str | None
    started_at: str | None
    score: float | None
    checks_passed: int
    checks_applicable: int
    failed_checks: tuple[str, ...]
    checks: str
    greeting: bool | None
    identification: bool | None
    offer_help: bool | None
    thanks: bool | None
    courtesy_count: int
    agent_interruptions: int | None
    venting_windows: int | None
    venting_acknowledged: int | None
    complaints: int
    apologies: int
    blame_statements: int
    overwhelm_statements: int
    jargon_statements: int
    rushing_statements: int
    paraphrases: int
    holds: int | None
    holds_without_permission: int | None
    holds_over_limit_without_update: int | None
    typing_over_customer_seconds: Seconds | None
    agent_pace_flag: bool | None
    rushed_utterances: int
    next_steps: bool | None
    customer_upset: bool
    supervisor_requested: bool
    customer_satisfied: bool
    label_model: str


def _count(labels: Mapping[str, frozenset[str]], ids: Iterable[str], name: str) -> int:
    return sum(name in labels.get(u, frozenset()) for u in ids)


def score_call(
    call: CallTranscript,
    metrics: CallMetrics | None,
    events: Sequence[Event],
    labels: Mapping[str, Iterable[str]],
    label_model: str = "",
    config: ScorecardConfig | None = None,
) -> Scorecard:
    """The scorecard of one call from its utterances' labels and its dynamics."""
    config = config or ScorecardConfig()
    sets = {u: frozenset(v) for u, v in labels.items()}
    agent = [u for u in call.utterances if u.role == AGENT]
    customer = [u for u in call.utterances if u.role == CUSTOMER]
    agent_ids = [u.utterance_id for u in agent]
    customer_ids = [u.utterance_id for u in customer]
    has_agent = bool(agent)
    opening = [u.utterance_id for u in agent if u.start - agent[0].start <= config.opening_window]

    def said_in(ids: list[str], name: str) -> bool | None:
        return _count(sets, ids, name) > 0 if has_agent else None

    venting = [e for e in events if e.type == "venting"]
    rushed = sum(e.type == "fast_pace" for e in events)
    acknowledged = 0
    for event in venting:
        response = json.loads(event.attributes).get("agent_response_utterance_id")
        if response and "empathy" in sets.get(response, frozenset()):
            acknowledged += 1
    complaints = _count(sets, customer_ids, "complaint")
    apologies = _count(sets, agent_ids, "apology")
    counts = {
        name: _count(sets, agent_ids, name)
        for name in ("courtesy", "blame", "overwhelm", "jargon", "rushing", "paraphrase")
    }
    holds = metrics.holds if metrics else None
    typing = metrics.typing_over_customer_seconds if metrics else None
    greeting = said_in(opening, "greeting")
    identification = said_in(opening, "identification")
    offer_help = said_in(opening, "offer_help")
    thanks = said_in(agent_ids, "thanks")
    next_steps = said_in(agent_ids, "next_steps")

    def no(count: int) -> bool | None:
        return count == 0 if has_agent else None

    checks: dict[str, bool | None] = {
        "greeting": greeting,
        "identification": identification,
        "offer_help": offer_help,
        "thanks": thanks,
        "courtesy": counts["courtesy"] > 0 if has_agent else None,
        "no_interruptions": (
            metrics.agent_interruptions == 0
            if metrics and metrics.agent_interruptions is not None else None
        ),
        "empathy_after_venting": acknowledged == len(venting) if venting else None,
        "apology_for_complaint": apologies > 0 if complaints and has_agent else None,
        "no_blame": no(counts["blame"]),
        "no_overwhelm_talk": no(counts["overwhelm"]),
        "no_jargon": no(counts["jargon"]),
        "no_rushing": no(counts["rushing"]),
        "paraphrase": counts["paraphrase"] > 0 if has_agent and customer else None,
        "hold_permission": (
            metrics.holds_without_permission == 0
            if holds and metrics and metrics.holds_without_permission is not None else None
        ),
        "hold_updates": (
            metrics.holds_over_limit_without_update == 0
            if holds and metrics and metrics.holds_over_limit_without_update is not None
            else None
        ),
        "no_typing_over_customer": typing <= config.typing_tolerance if typing is not None
        else None,
        "pace": (not metrics.agent_pace_flag and rushed == 0)
        if metrics and metrics.agent_pace_flag is not None else None,
        "next_steps": next_steps,
    }
    applicable = {k: v for k, v in checks.items() if v is not None}
    weight = {k: config.check_weights.get(k, 1.0) for k in applicable}
    total = sum(weight.values())
    passed = sum(weight[k] for k, v in applicable.items() if v)
    return Scorecard(
        call_id=call.call_id,
        agent_id=call.spec.agent_id,
        queue=call.spec.queue,
        started_at=call.spec.started_at,
        score=round(100.0 * passed / total, 1) if total else None,
        checks_passed=sum(bool(v) for v in applicable.values()),
        checks_applicable=len(applicable),
        failed_checks=tuple(k for k, v in applicable.items() if not v),
        checks=json.dumps(checks, sort_keys=True),
        greeting=greeting,
        identification=identification,
        offer_help=offer_help,
        thanks=thanks,
        courtesy_count=counts["courtesy"],
        agent_interruptions=metrics.agent_interruptions if metrics else None,
        venting_windows=len(venting) if metrics else None,
        venting_acknowledged=acknowledged if metrics else None,
        complaints=complaints,
        apologies=apologies,
        blame_statements=counts["blame"],
        overwhelm_statements=counts["overwhelm"],
        jargon_statements=counts["jargon"],
        rushing_statements=counts["rushing"],
        paraphrases=counts["paraphrase"],
        holds=holds,
        holds_without_permission=metrics.holds_without_permission if metrics else None,
        holds_over_limit_without_update=(
            metrics.holds_over_limit_without_update if metrics else None
        ),
        typing_over_customer_seconds=typing,
        agent_pace_flag=metrics.agent_pace_flag if metrics else None,
        rushed_utterances=rushed,
        next_steps=next_steps,
        customer_upset=_count(sets, customer_ids, "upset") > 0,
        supervisor_requested=_count(sets, customer_ids, "supervisor_request") > 0,
        customer_satisfied=_count(sets, customer_ids[-3:], "satisfaction") > 0,
        label_model=label_model,
    )


class ScoreFn(beam.DoFn):
    """Score one call from its co-grouped transcript, metrics, events and labels."""

    def __init__(self, config: ScorecardConfig, label_model: str):
        super().__init__()
        self.config = config
        self.label_model = label_model

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Scorecard]:
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
    ``(call_id, (utterance_id, names))``). Output: Scorecard per processed call.
    """

    def __init__(self, config: ScorecardConfig | None = None, label_model: str = ""):
        super().__init__()
        self.config = config or ScorecardConfig()
        self.label_model = label_model

    def expand(self, parts: dict[str, beam.PCollection]) -> beam.PCollection:
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
            | "Score" >> beam.ParDo(ScoreFn(self.config, self.label_model))
        )
