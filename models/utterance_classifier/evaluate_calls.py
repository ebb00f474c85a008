"""In-domain evaluation on the generated calls' ground-truth turns (never used in training).

Run (runtime venv, no torch):
``/work/main/.venv/bin/python -m models.utterance_classifier.evaluate_calls``

The call generator writes, next to each generated call, a JSON file whose ``turns`` carry
the intended labels of every turn (``samples/calls``, ``tests/fixtures/dynamics``,
``tests/fixtures/consistency``). This script classifies each turn's ground-truth *text*
(not ASR output: it measures the classifier, not the ASR) with the previous turn of the
other party as context, exactly as the pipeline feeds it, and writes per-label precision,
recall and F1 to ``calls_eval_report.json`` for the fp32 and int8 models.

Ground-truth labels that are not in the speaker's label inventory (the generator tags some
agent turns ``question`` and some customer turns ``thanks``) cannot be predicted by design;
they are counted in the report (``ignored_labels``) and left out of the scores.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from models.utterance_classifier.labels import AGENT_LABELS, CUSTOMER_LABELS, LABELS

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REPORT_PATH = HERE / "calls_eval_report.json"
CALL_DIRS = ("samples/calls", "tests/fixtures/dynamics", "tests/fixtures/consistency")
# Backchannels ("Mm-hm.") of the other party are not what an agent restates or answers;
# the previous *main* turn is used as context (the pipeline's utterance grouping also
# tends to attach short backchannels to the surrounding turn).
SKIP_AS_CONTEXT = frozenset({"backchannel"})
ROLE_LABELS = {"agent": frozenset(AGENT_LABELS), "customer": frozenset(CUSTOMER_LABELS)}


@dataclass(frozen=True)
class CallTurn:
    """One ground-truth turn of a generated call, with its classifier context."""

    turn_id: str
    call_id: str
    role: str
    kind: str
    text: str
    context: str
    labels: tuple[str, ...]
    ignored_labels: tuple[str, ...]


def load_call_turns(repo: Path = REPO, dirs: tuple[str, ...] = CALL_DIRS) -> list[CallTurn]:
    """Turns of every ground-truth call JSON under ``dirs``, in call order.

    Raises:
        ValueError: a file has no ``turns`` or a turn has an unknown speaker.
    """
    out: list[CallTurn] = []
    for d in dirs:
        for path in sorted((repo / d).glob("*.json")):
            call = json.loads(path.read_text())
            if "turns" not in call:
                raise ValueError(f"{path}: no 'turns' (not a generator ground-truth file)")
            last_main = {"agent": "", "customer": ""}
            for t in call["turns"]:
                role = t["speaker"]
                if role not in ROLE_LABELS:
                    raise ValueError(f"{path}: turn {t['turn_id']} has speaker {role!r}")
                other = "customer" if role == "agent" else "agent"
                labels = tuple(lab for lab in LABELS if lab in t["labels"]
                               and lab in ROLE_LABELS[role])
                ignored = tuple(sorted(lab for lab in t["labels"] if lab not in ROLE_LABELS[role]))
                out.append(CallTurn(t["turn_id"], call["call_id"], role, t.get("kind", "main"),
                                    t["text"], last_main[other], labels, ignored))
                if t.get("kind", "main") not in SKIP_AS_CONTEXT:
                    last_main[role] = t["text"]
    return out


def score(turns: list[CallTurn], flagged: list[set[str]]) -> dict[str, dict[str, float]]:
    """Per-label P/R/F1/support (speaker's own labels only) plus micro/macro F1."""
    out: dict[str, dict[str, float]] = {}
    tot: Counter[str] = Counter()
    for lab in LABELS:
        c: Counter[tuple[bool, bool]] = Counter()
        for t, f in zip(turns, flagged, strict=True):
            if lab not in ROLE_LABELS[t.role]:
                continue
            c[(lab in t.labels, lab in f)] += 1
        tp, fp, fn = c[(True, True)], c[(False, True)], c[(True, False)]
        tot.update({"tp": tp, "fp": fp, "fn": fn})
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[lab] = {"precision": p, "recall": r, "f1": f1, "support": tp + fn,
                    "predicted": tp + fp}
    supported = [lab for lab in LABELS if out[lab]["support"]]
    out["_summary"] = {
        "micro_f1": 2 * tot["tp"] / (2 * tot["tp"] + tot["fp"] + tot["fn"]) if tot["tp"] else 0.0,
        "macro_f1_supported": sum(out[lab]["f1"] for lab in supported) / len(supported),
    }
    return out


def evaluate(model_file: str, turns: list[CallTurn], model_dir: Path = HERE) -> dict:
    """Classify the turns with one model file; returns metrics and the per-turn errors."""
    from pipeline.classifier import ClassifierConfig, UtteranceClassifier

    clf = UtteranceClassifier(ClassifierConfig(model_dir=str(model_dir), model_file=model_file,
                                               intra_op_threads=2))
    preds = clf.predict([(t.role, t.text, t.context) for t in turns])
    flagged = [{lab for lab, p in pr.probabilities.items() if p >= clf.thresholds[lab]}
               for pr in preds]
    errors = []
    for t, f in zip(turns, flagged, strict=True):
        missed = sorted(set(t.labels) - f)
        extra = sorted(f - set(t.labels))
        if missed or extra:
            errors.append({"turn_id": t.turn_id, "role": t.role, "text": t.text,
                           "context": t.context, "missed": missed, "extra": extra})
    return {"metrics": score(turns, flagged), "errors": errors}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=HERE)
    parser.add_argument("--report", type=Path, default=REPORT_PATH)
    args = parser.parse_args(argv)
    turns = load_call_turns()
    ignored = Counter(f"{t.role}:{lab}" for t in turns for lab in t.ignored_labels)
    report: dict[str, object] = {
        "turns": len(turns), "calls": len({t.call_id for t in turns}),
        "sources": list(CALL_DIRS), "ignored_labels": dict(sorted(ignored.items())),
    }
    for name in ("model.onnx", "model.int8.onnx"):
        res = evaluate(name, turns, args.model_dir)
        key = "fp32" if name == "model.onnx" else "int8"
        report[key] = res["metrics"]
        report[f"{key}_errors"] = res["errors"]
        m = res["metrics"]
        logger.info("%s: micro F1 %.3f, macro F1 (labels with support) %.3f", key,
                    m["_summary"]["micro_f1"], m["_summary"]["macro_f1_supported"])
        for lab in LABELS:
            if m[lab]["support"] or m[lab]["predicted"]:
                logger.info("  %-20s P %.2f R %.2f F1 %.2f (n=%d, predicted %d)", lab,
                            m[lab]["precision"], m[lab]["recall"], m[lab]["f1"],
                            m[lab]["support"], m[lab]["predicted"])
    args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
