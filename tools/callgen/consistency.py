"""Text-level multi-agent scenarios for the knowledge-consistency feature.

Customers ask the same 15 questions in paraphrased forms; agents answer. Most
agents give the approved answer (in varying words); a few agents consistently
contradict it on some questions: a different number (fee, price, days,
percentage), the opposite yes/no polarity, or a different named policy/option.

``generate_consistency_scenarios(n_calls, n_agents, seed)`` returns calls as
dicts::

    call_id    str    "kc-0003"
    agent_id   str    "agent-kc-02"
    turns      list   {turn_id "kc-0003/t001", speaker, text, start, end}
                      (synthetic times: 2.6 words/s, 0.3-1.2 s gaps)
    qa_pairs   list   {question_turn_id, answer_turn_id, group_id,
                       canonical_question, paraphrase_id, answer_variant_id,
                       correct (bool: the approved answer), value, kind
                       ("approved" | "number" | "polarity" | "policy")}

``knowledge_base.yaml`` next to this module holds the approved answers
(``write_knowledge_base`` regenerates it from ``QUESTION_GROUPS``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.callgen.render import TurnRenderer
from tools.callgen.script import CallScript, Line
from tools.callgen.timeline import layout

logger = logging.getLogger(__name__)

KNOWLEDGE_BASE_PATH = Path(__file__).with_name("knowledge_base.yaml")
COMPANY = "Northwind Store"
WORDS_PER_SECOND = 2.6  # about the speaking rate of the Festival voices used for audio
INCONSISTENT_AGENT_SHARE = 0.34  # about one agent in three contradicts the knowledge base


@dataclass(frozen=True)
class AnswerVariant:
    """One answer to a question group.

    Attributes:
        variant_id: ``GROUP/approved`` or ``GROUP/<value slug>``.
        value: The fact this answer states, normalised ("3-5 business days").
        kind: "approved", or how it contradicts: "number", "polarity", "policy".
        texts: Different wordings of the same answer.
    """

    variant_id: str
    value: str
    kind: str
    texts: tuple[str, ...]

    @property
    def correct(self) -> bool:
        return self.kind == "approved"


@dataclass(frozen=True)
class QuestionGroup:
    """A canonical question, its paraphrases, the approved answer and contradictions."""

    group_id: str
    canonical: str
    paraphrases: tuple[str, ...]
    approved: AnswerVariant
    contradictions: tuple[AnswerVariant, ...]


def _group(
    gid: str,
    canonical: str,
    paraphrases: tuple[str, ...],
    approved: tuple[str, tuple[str, ...]],
    *contradictions: tuple[str, str, str, tuple[str, ...]],
) -> QuestionGroup:
    return QuestionGroup(
        gid,
        canonical,
        (canonical, *paraphrases),
        AnswerVariant(f"{gid}/approved", approved[0], "approved", approved[1]),
        tuple(AnswerVariant(f"{gid}/{slug}", v, k, t) for slug, v, k, t in contradictions),
    )


QUESTION_GROUPS: tuple[QuestionGroup, ...] = (
    _group(
        "shipping_time",
        "How long does shipping take?",
        ("When will my order get here?", "How many days until my package arrives?",
         "How fast is standard delivery?"),
        ("3-5 business days", (
            "Standard shipping takes three to five business days.",
            "You should have it within three to five working days.",
            "It usually arrives in three to five business days.")),
        ("7-10_days", "7-10 business days", "number", (
            "Standard shipping takes seven to ten business days.",
            "Give it about seven to ten working days.")),
        ("next_day", "next day", "number",
         ("It will arrive tomorrow, we ship everything next day.",)),
    ),
    _group(
        "return_window",
        "How long do I have to return an item?",
        ("What is your return period?", "Until when can I send something back?",
         "Is it too late to return something I bought last month?"),
        ("30 days", (
            "You have thirty days from delivery to return it.",
            "Returns are accepted within thirty days of delivery.",
            "You can send it back any time within thirty days.")),
        ("14_days", "14 days", "number", (
            "You have fourteen days to return it.",
            "Returns are only accepted within fourteen days.")),
        ("60_days", "60 days", "number", ("You have sixty days to send it back.",)),
    ),
    _group(
        "restocking_fee",
        "Is there a fee for returning an item?",
        ("Do you charge anything for returns?", "Will I have to pay to send it back?",
         "Is there a restocking fee?"),
        ("no fee", (
            "No, returns are completely free, there is no restocking fee.",
            "There is no charge at all for returning an item.",
            "No, you will not pay anything to return it.")),
        ("15_percent", "15 percent restocking fee", "polarity", (
            "Yes, there is a fifteen percent restocking fee on returns.",
            "We keep fifteen percent of the price as a restocking fee.")),
    ),
    _group(
        "express_cost",
        "How much is express shipping?",
        ("What does faster delivery cost?", "How much extra is it to get it quicker?",
         "What is the price of express delivery?"),
        ("12.99 dollars", (
            "Express shipping is twelve ninety nine.",
            "It costs twelve dollars and ninety nine cents for express.",
            "Express delivery is an extra twelve ninety nine.")),
        ("20_dollars", "20 dollars", "number", (
            "Express shipping costs twenty dollars.",
            "It is an extra twenty dollars for express.")),
    ),
    _group(
        "late_fee",
        "What is the late payment fee?",
        ("How much do you charge if I pay late?", "What happens if my payment is late?",
         "Is there a penalty for paying after the due date?"),
        ("25 dollars", (
            "The late payment fee is twenty five dollars.",
            "If you pay late, we add a twenty five dollar fee.",
            "There is a fee of twenty five dollars for late payments.")),
        ("40_dollars", "40 dollars", "number", (
            "The late fee is forty dollars.",
            "We charge forty dollars when a payment is late.")),
        ("no_fee", "no fee", "polarity", ("There is no fee, you can just pay when you can.",)),
    ),
    _group(
        "international",
        "Do you ship internationally?",
        ("Can you send my order abroad?", "Do you deliver outside the country?",
         "Can I get this shipped to Canada?"),
        ("yes", (
            "Yes, we ship to over thirty countries, including Canada.",
            "We do, international shipping is available to more than thirty countries.",
            "Yes, we can deliver abroad.")),
        ("no", "no", "polarity", (
            "No, we only ship within the country.",
            "Sorry, we do not deliver outside the country.")),
    ),
    _group(
        "price_match",
        "Do you match competitor prices?",
        ("If I find it cheaper somewhere else, will you match it?",
         "Do you have a price match guarantee?", "Can you beat a lower price from another shop?"),
        ("yes, within 14 days", (
            "Yes, we match any competitor price within fourteen days of purchase.",
            "We do, if you find it cheaper within fourteen days we match the price.",
            "Yes, our price match covers fourteen days after you buy.")),
        ("no", "no", "polarity", (
            "No, we do not do price matching.",
            "Sorry, we never match other stores' prices.")),
    ),
    _group(
        "warranty",
        "How long is the warranty?",
        ("What warranty comes with it?", "How long is it covered if it breaks?",
         "Is there a guarantee on this product?"),
        ("2 years", (
            "Every product comes with a two year warranty.",
            "It is covered for two years.",
            "The warranty lasts two full years.")),
        ("1_year", "1 year", "number", (
            "The warranty is one year.",
            "It is covered for twelve months.")),
        ("90_days", "90 days", "number", ("You get a ninety day warranty.",)),
    ),
    _group(
        "cancel_shipped",
        "Can I cancel my order after it has shipped?",
        ("My order already went out, can I still cancel it?",
         "Is it possible to stop an order that is on its way?",
         "Can you cancel something that was already sent?"),
        ("no, return it instead", (
            "Once it has shipped we cannot cancel it, but you can return it for free.",
            "After shipping it cannot be cancelled, you would need to return it instead.",
            "No, a shipped order cannot be cancelled, please return it when it arrives.")),
        ("yes", "yes", "polarity", (
            "Yes, we can cancel it at any time, even after it ships.",
            "Sure, I can cancel it for you right now even though it shipped.")),
    ),
    _group(
        "refund_method",
        "How will I get my refund?",
        ("Where does the money go when you refund me?", "Do I get cash back or credit?",
         "How is the refund paid?"),
        ("original payment method", (
            "The refund goes back to your original payment method.",
            "We refund the card or account you paid with.",
            "You get the money back on the same card you used.")),
        ("store_credit", "store credit", "policy", (
            "Refunds are given as store credit.",
            "You will get a store credit voucher for the amount.")),
    ),
    _group(
        "student_discount",
        "Do you offer a student discount?",
        ("Is there a discount for students?", "I am a student, can I get a lower price?",
         "Do students get money off?"),
        ("yes, 10 percent", (
            "Yes, students get ten percent off with a valid student card.",
            "We offer a ten percent student discount.",
            "Yes, you can get ten percent off as a student.")),
        ("15_percent", "15 percent", "number", (
            "Yes, students get fifteen percent off.",
            "The student discount is fifteen percent.")),
        ("no", "no", "polarity", ("No, we do not have a student discount.",)),
    ),
    _group(
        "early_termination",
        "What does it cost to end my contract early?",
        ("Is there a fee to cancel my contract before it ends?",
         "How much do I pay if I leave early?", "Can I break my contract, and what will it cost?"),
        ("50 dollars", (
            "Ending the contract early costs a flat fee of fifty dollars.",
            "There is a fifty dollar early termination fee.",
            "You would pay fifty dollars to leave before the end of the contract.")),
        ("remaining_months", "all remaining monthly payments", "policy", (
            "You would have to pay all the remaining months of the contract.",
            "You pay off every month left on the contract.")),
        ("no_fee", "no fee", "polarity", ("There is no fee, you can leave any time.",)),
    ),
    _group(
        "data_rollover",
        "Does unused data roll over to next month?",
        ("What happens to the data I do not use?", "Can I keep my leftover data?",
         "Do I lose my unused gigabytes at the end of the month?"),
        ("yes, for one month", (
            "Yes, unused data rolls over for one month.",
            "Your leftover data carries over to the next month.",
            "You keep unused data for one extra month.")),
        ("no", "no", "polarity", (
            "No, unused data expires at the end of each month.",
            "Sorry, leftover data does not carry over.")),
    ),
    _group(
        "support_hours",
        "What are your support hours?",
        ("When can I call customer service?", "Are you open on weekends?",
         "What time does your help line close?"),
        ("8 am to 8 pm, seven days", (
            "We are available from eight in the morning to eight at night, seven days a week.",
            "Support is open eight to eight, every day including weekends.",
            "You can call us from eight am to eight pm, all week.")),
        ("9_to_5_weekdays", "9 am to 5 pm, weekdays", "number", (
            "We are open nine to five, Monday to Friday only.",
            "Support hours are nine to five on weekdays.")),
    ),
    _group(
        "installments",
        "Can I pay in installments?",
        ("Is there a payment plan?", "Can I split the cost into smaller payments?",
         "Do you offer monthly payments?"),
        ("Flex Pay, 4 payments", (
            "Yes, with our Flex Pay plan you can split it into four payments.",
            "You can use Flex Pay and pay in four interest free installments.",
            "Yes, Flex Pay lets you pay in four parts.")),
        ("easy_split", "Easy Split, 6 payments", "policy", (
            "Yes, you can use the Easy Split plan with six monthly payments.",
            "Our Easy Split option lets you pay in six installments.")),
    ),
)  # fmt: skip


def knowledge_base() -> list[dict[str, str]]:
    """Returns the approved answers: one {group_id, question, approved_answer, value} each."""
    return [
        {
            "group_id": g.group_id,
            "question": g.canonical,
            "approved_answer": g.approved.texts[0],
            "value": g.approved.value,
        }
        for g in QUESTION_GROUPS
    ]


def write_knowledge_base(path: Path = KNOWLEDGE_BASE_PATH) -> None:
    """Writes ``knowledge_base()`` as YAML (a list of mappings)."""
    import yaml

    header = "# Approved answers; generated by tools.callgen.consistency.write_knowledge_base\n"
    path.write_text(header + yaml.safe_dump(knowledge_base(), sort_keys=False, width=100))


def _pick(rng: np.random.Generator, items: tuple[Any, ...]) -> Any:
    return items[int(rng.integers(len(items)))]


def generate_consistency_scenarios(
    n_calls: int, n_agents: int, seed: int, qa_per_call: tuple[int, int] = (2, 4)
) -> list[dict[str, Any]]:
    """Generates multi-agent Q&A calls with per-pair ground truth.

    About a third of the agents (at least one when ``n_agents >= 2``) are
    inconsistent: each contradicts the approved answer on 3-5 fixed question
    groups, always with the same wrong variant, and answers the others
    correctly. Every call of an inconsistent agent asks at least one of its
    contradicted questions.

    Args:
        n_calls: Number of calls.
        n_agents: Number of agents; calls are spread round-robin.
        seed: Random seed; the output is a pure function of the arguments.
        qa_per_call: Inclusive range of question-answer pairs per call.

    Returns:
        One dict per call (see the module docstring).

    Raises:
        ValueError: For non-positive counts.
    """
    if n_calls <= 0 or n_agents <= 0:
        raise ValueError(f"n_calls and n_agents must be positive, got {n_calls}, {n_agents}")
    rng = np.random.default_rng(seed)
    agents = [f"agent-kc-{i + 1:02d}" for i in range(n_agents)]
    n_bad = max(1, round(n_agents * INCONSISTENT_AGENT_SHARE)) if n_agents >= 2 else 0
    bad_agents = set(agents[-n_bad:]) if n_bad else set()
    wrong: dict[str, dict[str, AnswerVariant]] = {}
    for agent in agents:
        wrong[agent] = {}
        if agent in bad_agents:
            for gi in rng.choice(len(QUESTION_GROUPS), int(rng.integers(3, 6)), replace=False):
                g = QUESTION_GROUPS[int(gi)]
                wrong[agent][g.group_id] = _pick(rng, g.contradictions)

    calls = []
    for c in range(n_calls):
        agent = agents[c % n_agents]
        k = int(rng.integers(qa_per_call[0], qa_per_call[1] + 1))
        order = [int(i) for i in rng.permutation(len(QUESTION_GROUPS))]
        if wrong[agent]:
            forced = _pick(rng, tuple(sorted(wrong[agent])))
            order.remove(next(i for i, g in enumerate(QUESTION_GROUPS) if g.group_id == forced))
            order.insert(int(rng.integers(k)), next(
                i for i, g in enumerate(QUESTION_GROUPS) if g.group_id == forced
            ))  # fmt: skip
        call_id = f"kc-{c:04d}"
        texts: list[tuple[str, str]] = [
            ("agent", f"Thank you for calling {COMPANY}, how can I help you?"),
            ("customer", "Hi, I have a few questions before I order."),
        ]
        pairs = []
        for j, gi in enumerate(order[:k]):
            g = QUESTION_GROUPS[gi]
            p_idx = int(rng.integers(len(g.paraphrases)))
            lead = "" if j == 0 else _pick(rng, ("Also, ", "And ", "One more thing. ", ""))
            question = lead + g.paraphrases[p_idx]
            variant = wrong[agent].get(g.group_id, g.approved)
            texts += [("customer", question), ("agent", _pick(rng, variant.texts))]
            pairs.append(
                {
                    "question_turn_id": f"{call_id}/t{len(texts) - 2:03d}",
                    "answer_turn_id": f"{call_id}/t{len(texts) - 1:03d}",
                    "group_id": g.group_id,
                    "canonical_question": g.canonical,
                    "paraphrase_id": p_idx,
                    "answer_variant_id": variant.variant_id,
                    "correct": variant.correct,
                    "value": variant.value,
                    "kind": variant.kind,
                }
            )
        texts += [
            ("customer", "Great, that is all I needed, thank you."),
            ("agent", f"You are welcome, thank you for calling {COMPANY}."),
        ]
        turns, t = [], float(rng.uniform(0.3, 0.8))
        for i, (speaker, text) in enumerate(texts):
            end = t + len(text.split()) / WORDS_PER_SECOND
            turns.append(
                {"turn_id": f"{call_id}/t{i:03d}", "speaker": speaker, "text": text,
                 "start": round(t, 3), "end": round(end, 3)}
            )  # fmt: skip
            t = end + float(rng.uniform(0.3, 1.2))
        calls.append({"call_id": call_id, "agent_id": agent, "turns": turns, "qa_pairs": pairs})
    return calls


def write_consistency_calls(out: Path, seed: int, renderer: TurnRenderer) -> None:
    """Renders 6 short consistency calls by 3 agents to ``out`` (audio + ground truth).

    The ground-truth JSON is the usual call ground truth plus ``qa_pairs`` whose
    turn ids refer to the rendered turns (times are the rendered ones).
    """
    scenarios = generate_consistency_scenarios(6, 3, seed, qa_per_call=(3, 3))
    for i, sc in enumerate(scenarios):
        agent_voice = "slt" if i % 2 == 0 else "kal"
        labels = {p["question_turn_id"]: ("question",) for p in sc["qa_pairs"]}
        script = CallScript(
            call_id=sc["call_id"],
            agent_id=sc["agent_id"],
            domain="retail",
            agent_voice=agent_voice,
            customer_voice="kal" if agent_voice == "slt" else "slt",
            events=tuple(
                Line(t["speaker"], t["text"], labels.get(t["turn_id"], ())) for t in sc["turns"]
            ),
            greeting={"company": True, "agent_name": False, "offer_help": True},
        )
        truth = layout(script, renderer, out, seed)
        rendered = [(t["speaker"], t["text"]) for t in truth["turns"]]
        if rendered != [(t["speaker"], t["text"]) for t in sc["turns"]]:
            raise RuntimeError(f"{sc['call_id']}: rendered turn order differs from the script")
        truth["qa_pairs"] = sc["qa_pairs"]
        (out / f"{sc['call_id']}.json").write_text(json.dumps(truth, indent=1) + "\n")
