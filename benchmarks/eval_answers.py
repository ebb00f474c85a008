"""Planted conflicts in real FAQ answers: precision and recall of the consistency stage.

Material: DSTC9 Track 1 (``corpora/dstc9_track1``). Each FAQ snippet (an entity's question
and answer) that at least ``--min-responses`` human agent responses are grounded in (labels
with exactly one knowledge item) becomes one question asked in several calls: one call per
answer, the snippet's own answer from one agent and each grounded response from another.
The responses say the same thing in other words (agreeing answers). In about half of the
questions one answer is edited to contradict the others: a money amount, a currency, a
number (time, duration, percentage), yes/no, or an option (payment method, channel). The
repository stores only ids and the edit (``benchmarks/data/planted_conflicts.jsonl``: snippet
ids, which answer, the few characters replaced and their replacement); the text is read from
the corpora folder.

Scoring (findings of ``run_consistency``, no knowledge base):

- a planted conflict is *found* when a non-majority finding holds the edited answer;
- a finding is *true* when its question has a planted conflict and it holds the edited
  answer or is a side of a ``disagreement`` there; every other finding is *false*
  (a finding on agreeing answers);
- precision = true findings / findings; recall = found / planted.

Usage::

    .venv/bin/python benchmarks/eval_answers.py --build   # (re)write the edit specs
    .venv/bin/python benchmarks/eval_answers.py [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.consistency import is_yes_no_question  # noqa: E402
from pipeline.knowledge import DEFAULT_OPTIONS, extract_facts  # noqa: E402

SPECS = ROOT / "benchmarks" / "data" / "planted_conflicts.jsonl"
LABEL_FILES = {"val": "data/val/labels.json.gz", "test": "data_eval/test/labels.json.gz"}


def default_corpora() -> str:
    return os.environ.get("CALLSCOPE_CORPORA") or str(ROOT.parent / "shared" / "corpora")


def load_dstc9(corpora: str) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    base = Path(corpora) / "dstc9_track1"
    with gzip.open(base / "data_eval" / "knowledge.json.gz", "rt", encoding="utf-8") as f:
        knowledge = json.load(f)
    labels = {}
    for split, rel in LABEL_FILES.items():
        with gzip.open(base / rel, "rt", encoding="utf-8") as f:
            labels[split] = json.load(f)
    return knowledge, labels


def grounded_responses(labels: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Snippet key ``domain/entity/doc`` -> answer refs ``label:<split>:<index>``."""
    out: dict[str, list[str]] = defaultdict(list)
    for split, items in labels.items():
        for n, item in enumerate(items):
            know = item.get("knowledge") or []
            if item.get("target") and len(know) == 1 and item.get("response"):
                k = know[0]
                out[f"{k['domain']}/{k['entity_id']}/{k['doc_id']}"].append(f"label:{split}:{n}")
    return out


def snippet(knowledge: dict[str, Any], key: str) -> tuple[str, str, str | None]:
    """(title, body, entity name) of a snippet key."""
    domain, entity, doc = key.split("/")
    ent = knowledge[domain][entity]
    d = ent["docs"][doc]
    return d["title"], d["body"], ent.get("name")


def answer_text(ref: str, knowledge: dict[str, Any], labels: dict[str, Any], key: str) -> str:
    if ref == "body":
        return snippet(knowledge, key)[1]
    _, split, n = ref.split(":")
    return str(labels[split][int(n)]["response"])


def question_text(title: str, name: str | None) -> str:
    """The customer's question: the FAQ title, naming the entity when there is one."""
    if not name:
        return title
    return f"{title.rstrip(' ?.')} at {name.title()}?"


# --- edits ---------------------------------------------------------------------------------

_MONEY = re.compile(
    r"([$\u00a3\u20ac])\s?(\d+(?:\.\d\d)?)|\b(\d+(?:\.\d\d)?) (pounds|dollars|euros)\b"
)
_NUMBER = re.compile(
    r"\b(\d{1,3})(?=\s?(?::\d\d\s?)?(?:am|pm|a\.m\.|p\.m\.|minutes?|hours?|days?|weeks?|"
    r"months?|years?|percent|%|miles?|kilometers?|km|people|guests|persons)\b)",
    re.IGNORECASE,
)
_YES_NO_SWAPS = (
    (r"^Yes\b", "No"), (r"^No\b", "Yes"), (r"\bis not available\b", "is available"),
    (r"\bare not available\b", "are available"), (r"\bis available\b", "is not available"),
    (r"\bare available\b", "are not available"), (r"\bare not allowed\b", "are allowed"),
    (r"\bis not allowed\b", "is allowed"), (r"\bare allowed\b", "are not allowed"),
    (r"\bis allowed\b", "is not allowed"), (r"\bare welcome\b", "are not welcome"),
    (r"\bis offered\b", "is not offered"), (r"\bdoes not offer\b", "offers"),
    (r"\bdoes offer\b", "does not offer"), (r"\bis free\b", "is not free"),
)  # fmt: skip
_CURRENCY_SWAP = {"$": "\u20ac", "\u00a3": "$", "\u20ac": "$", "pounds": "dollars",
                  "dollars": "euros", "euros": "pounds"}  # fmt: skip


def _option_phrases() -> list[tuple[str, str, str]]:
    return sorted(
        (("payment", opt, ph) for opt, phs in DEFAULT_OPTIONS["payment"].items() for ph in phs),
        key=lambda t: -len(t[2]),
    )


def _edit(kind: str, start: int, end: int, replace: str, text: str) -> dict[str, Any]:
    """An edit as offsets into the answer, the new words, and a hash of the old span (so
    the spec holds no corpus text and notices a changed corpus)."""
    digest = hashlib.sha1(text[start:end].encode("utf-8")).hexdigest()[:10]
    return {"kind": kind, "start": start, "end": end, "replace": replace, "span_sha1": digest}


def propose_edits(text: str, yes_no: bool) -> Iterator[dict[str, Any]]:
    """Edits that make ``text`` contradict what it said: money, currency, number, yes/no,
    option (each a replaced span of a few characters)."""
    m = _MONEY.search(text)
    if m:
        amount_group = 2 if m.group(2) else 3
        amount = m.group(amount_group)
        value = float(amount)
        new = f"{value * 2 + 5:.2f}" if "." in amount else str(int(value * 2 + 5))
        yield _edit("money", m.start(amount_group), m.end(amount_group), new, text)
        cur_group = 1 if m.group(1) else 4
        cur = m.group(cur_group)
        yield _edit("currency", m.start(cur_group), m.end(cur_group), _CURRENCY_SWAP[cur], text)
    m = _NUMBER.search(text)
    if m:
        n = int(m.group(1))
        clock = re.match(r"\s?(?::\d\d)?\s?[ap]", text[m.end() :])
        new_n = (n + 3 - 1) % 12 + 1 if clock else n * 2 + 1
        yield _edit("number", m.start(1), m.end(1), str(new_n), text)
    if yes_no:
        for pattern, repl in _YES_NO_SWAPS:
            m = re.search(pattern, text)
            if m:
                yield _edit("yes_no", m.start(), m.end(), repl, text)
                break
    # Options: a payment method replaced by another that the answer does not name, kept
    # only when the answer's set of payment options changes.
    before = extract_facts(text).values().get("option:payment")
    low = text.lower()
    for _fam, opt, phrase in _option_phrases():
        m = re.search(r"\b" + re.escape(phrase) + r"\b", low)
        if not m or before is None:
            continue
        others = sorted(DEFAULT_OPTIONS["payment"].items())
        shift = len(text) % len(others)
        for other_opt, phrases in others[shift:] + others[:shift]:
            if other_opt == opt or other_opt in before.options:
                continue
            edit = _edit("option", m.start(), m.end(), phrases[0], text)
            after = extract_facts(apply_edit(text, edit)).values().get("option:payment")
            # The edit must drop an option the answer named (a superset still agrees).
            if after is not None and not before.options <= after.options:
                yield edit
                return


def apply_edit(text: str, edit: dict[str, Any]) -> str:
    span = text[edit["start"] : edit["end"]]
    if hashlib.sha1(span.encode("utf-8")).hexdigest()[:10] != edit["span_sha1"]:
        raise ValueError(f"edit {edit} no longer applies: the corpus text differs")
    return text[: edit["start"]] + edit["replace"] + text[edit["end"] :]


KIND_QUOTA = {"money": 25, "currency": 25, "number": 25, "option": 25, "yes_no": 25}


def build(corpora: str, min_responses: int, seed: int) -> list[dict[str, Any]]:
    """Choose snippets and plant at most one edit in each; returns the spec rows (ids and
    edits only). Kinds are filled rarest first up to :data:`KIND_QUOTA` each, so money and
    currency edits (rare in these hotel/restaurant FAQs) are not crowded out by yes/no."""
    knowledge, labels = load_dstc9(corpora)
    responses = grounded_responses(labels)
    # Snippets answered in enough calls, plus those with a price and one response (prices
    # are rare in these FAQs; one against one is reported as a disagreement).
    keys = sorted(
        k for k, v in responses.items()
        if len(v) >= min_responses or _MONEY.search(snippet(knowledge, k)[1])
    )  # fmt: skip
    rng = random.Random(seed)
    rng.shuffle(keys)
    rows: list[dict[str, Any]] = []
    candidates: dict[int, dict[str, dict[str, Any]]] = {}
    for n, key in enumerate(keys):
        title, _, name = snippet(knowledge, key)
        refs = ["body", *sorted(responses[key])[:5]]
        rows.append({"snippet": key, "answers": refs, "edit": None})
        yes_no = is_yes_no_question(question_text(title, name))
        per_kind: dict[str, dict[str, Any]] = {}
        for ref in refs:
            text = answer_text(ref, knowledge, labels, key)
            for edit in propose_edits(text, yes_no):
                per_kind.setdefault(edit["kind"], {"answer": ref, **edit})
        candidates[n] = per_kind
    counts = {k: sum(k in c for c in candidates.values()) for k in KIND_QUOTA}
    for kind in sorted(KIND_QUOTA, key=lambda k: (counts[k], k != "money")):
        planted = 0
        for n in range(len(rows)):
            if planted >= KIND_QUOTA[kind]:
                break
            rare = kind in ("money", "currency")
            if rows[n]["edit"] is None and kind in candidates[n] and (rare or n % 2 == 0):
                if rare and kind == "money" and planted * 2 >= counts[kind]:
                    break  # leave half of the priced answers for currency edits
                rows[n]["edit"] = candidates[n][kind]
                planted += 1
    return rows


# --- evaluation ----------------------------------------------------------------------------


def write_tables(
    rows: Sequence[dict[str, Any]], corpora: str, out: Path
) -> dict[str, dict[str, Any]]:
    """Utterances and calls tables (one call per answer); returns call_id -> truth."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    knowledge, labels = load_dstc9(corpora)
    utterances, calls, truth = [], [], {}
    for q, row in enumerate(rows):
        title, _, name = snippet(knowledge, row["snippet"])
        question = question_text(title, name)
        edit = row["edit"]
        for a, ref in enumerate(row["answers"]):
            text = answer_text(ref, knowledge, labels, row["snippet"])
            edited = bool(edit and edit["answer"] == ref)
            if edited:
                text = apply_edit(text, edit)
            call_id = f"q{q:04d}-a{a}"
            truth[call_id] = {"question": q, "edited": edited, "planted": bool(edit),
                              "kind": edit["kind"] if edit else None}  # fmt: skip
            calls.append({"call_id": call_id, "agent_id": f"agent-{a}", "started_at": None})
            utterances += [
                {"call_id": call_id, "utterance_id": f"{call_id}/u0001", "role": "customer",
                 "start": 0.0, "end": 3.0, "text": question},
                {"call_id": call_id, "utterance_id": f"{call_id}/u0002", "role": "agent",
                 "start": 3.5, "end": 9.0, "text": text},
            ]  # fmt: skip
    for name, table in (("utterances", utterances), ("calls", calls)):
        (out / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(table), out / name / "part-0.parquet")
    return truth


def score(
    findings: Sequence[dict[str, Any]],
    truth: dict[str, dict[str, Any]],
    mixed_groups: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    outliers = [f for f in findings if not f["is_majority"]]
    planted = {t["question"] for t in truth.values() if t["planted"]}
    edited_call = {t["question"]: c for c, t in truth.items() if t["edited"]}
    found: set[int] = set()
    true_findings = 0
    false_examples = []
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    flagged_unplanted: set[int] = set()
    false_in_mixed = 0
    for f in outliers:
        questions = {truth[c]["question"] for c in f["call_ids"]}
        hit = {q for q in questions if q in planted and edited_call.get(q) in f["call_ids"]}
        found |= hit
        disagreement_side = "disagreement" in f["kinds"] and questions & planted
        if hit or disagreement_side:
            true_findings += 1
        else:
            false_in_mixed += f["group_id"] in mixed_groups
            flagged_unplanted |= questions - planted
            false_examples.append((f["kinds"], f["stated"], f["expected"],
                                   f["answer_texts"][0][:100]))  # fmt: skip
    for q in planted:
        kind = truth[edited_call[q]]["kind"]
        by_kind[kind][1] += 1
        by_kind[kind][0] += q in found
    n_questions = len({t["question"] for t in truth.values()})
    return {
        "questions": n_questions,
        "answers": len(truth),
        "planted": len(planted),
        "found": len(found),
        "recall": round(len(found) / max(len(planted), 1), 3),
        "findings": len(outliers),
        "true_findings": true_findings,
        "precision": round(true_findings / max(len(outliers), 1), 3),
        "false_findings": len(outliers) - true_findings,
        "false_findings_in_groups_mixing_questions": false_in_mixed,
        "unplanted_questions_flagged": len(flagged_unplanted),
        "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())},
        "false_examples": false_examples[:40],
    }


def evaluate(corpora: str, specs: Path, config: Any = None) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from pipeline.consistency import read_findings, run_consistency

    rows = [json.loads(line) for line in specs.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        truth = write_tables(rows, corpora, Path(tmp))
        run_consistency(f"{tmp}/utterances", f"{tmp}/calls", f"{tmp}/out", config=config)
        findings = read_findings(f"{tmp}/out").to_pylist()
        qa = pq.read_table(f"{tmp}/out/consistency_qa_pairs", columns=["group_id", "call_id"])
        groups: dict[str, set[int]] = defaultdict(set)
        for r in qa.to_pylist():
            groups[r["group_id"]].add(truth[r["call_id"]]["question"])
        mixed = frozenset(g for g, qs in groups.items() if len(qs) > 1)
        result = score(findings, truth, mixed)
        result["groups"] = len(groups)
        if os.environ.get("EVAL_SHOW_MIXED"):  # debugging aid: which questions merged
            questions = {truth[c]["question"]: c for c in truth}
            result["mixed_examples"] = [sorted(questions[q] for q in qs)
                                        for g, qs in groups.items() if len(qs) > 1][:30]
        result["groups_mixing_questions"] = sum(len(v) > 1 for v in groups.values())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default=default_corpora())
    ap.add_argument("--specs", type=Path, default=SPECS)
    ap.add_argument("--build", action="store_true", help="rewrite the edit specs")
    ap.add_argument("--min-responses", type=int, default=2)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--answer-threshold", type=float, help="override GroupingConfig's")
    ap.add_argument("--link-threshold", type=float, help="override GroupingConfig's")
    args = ap.parse_args(argv)
    if args.build:
        rows = build(args.corpora, args.min_responses, args.seed)
        args.specs.parent.mkdir(parents=True, exist_ok=True)
        args.specs.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        print(f"{len(rows)} questions, {sum(r['edit'] is not None for r in rows)} planted "
              f"-> {args.specs}")  # fmt: skip
        return 0
    from pipeline.consistency import ConsistencyConfig
    from pipeline.grouping import GroupingConfig

    overrides = {k: v for k, v in (("answer_threshold", args.answer_threshold),
                                   ("link_threshold", args.link_threshold)) if v is not None}
    config = ConsistencyConfig(grouping=GroupingConfig(**overrides))
    result = evaluate(args.corpora, args.specs, config)
    print(json.dumps({"grouping": config.grouping.__dict__, **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
