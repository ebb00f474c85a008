"""Human labels of real utterances: reading annotator files, agreement, merging.

Annotators write lines ``{"id", "labels": [...]}`` (GUIDELINES.md, real-text rules). The
repository keeps ids and labels only (``annotations/*.jsonl``); the text is reloaded from the
corpora with :mod:`models.utterance_classifier.real_text`.

Usage (merge the annotators' files into the repository)::

    python -m models.utterance_classifier.real_labels merge /work/ann/labels_1.jsonl \
        /work/ann/labels_2.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from models.utterance_classifier.labels import AGENT_LABELS, CUSTOMER_LABELS, LABELS

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ANNOTATION_DIR = HERE / "annotations"
SAMPLE_PATH = ANNOTATION_DIR / "sample.jsonl"
MERGED_PATH = ANNOTATION_DIR / "labels.jsonl"
AGREEMENT_PATH = ANNOTATION_DIR / "agreement.json"
ROLE_LABELS = {"agent": frozenset(AGENT_LABELS), "customer": frozenset(CUSTOMER_LABELS)}


@dataclass(frozen=True)
class SampleEntry:
    """One sampled utterance of ``annotations/sample.jsonl`` (ids only, no text)."""

    utterance_id: str
    split: str
    shards: tuple[int, ...]
    sampled_by: str


def read_sample(path: Path = SAMPLE_PATH) -> dict[str, SampleEntry]:
    """The frozen annotation sample: id -> split, shards and how it was sampled."""
    out = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            out[row["id"]] = SampleEntry(
                row["id"], row["split"], tuple(row["shards"]), row["sampled_by"]
            )
    return out


def read_labels(path: Path, roles: dict[str, str] | None = None) -> dict[str, frozenset[str]]:
    """An annotator's (or the merged) label file: id -> labels.

    Tolerates a file that is still being written: an incomplete last line is skipped.
    Unknown label names raise; with ``roles`` (id -> role), labels of the other role are
    dropped with a warning (guideline: labels belong to one role).

    Raises:
        ValueError: a complete line is not valid JSON or names an unknown label.
    """
    out: dict[str, frozenset[str]] = {}
    if not path.is_file():
        return out
    lines = path.read_text().split("\n")
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if k == len(lines) - 1:  # partial last line of a file being appended to
                continue
            raise ValueError(f"{path}:{k + 1}: not JSON: {e}") from e
        labels = set(row.get("labels") or [])
        unknown = labels - set(LABELS)
        if unknown:
            raise ValueError(f"{path}:{k + 1}: unknown labels {sorted(unknown)}")
        if roles is not None and row["id"] in roles:
            allowed = ROLE_LABELS[roles[row["id"]]]
            if labels - allowed:
                logger.warning("%s: %s: dropped other-role labels %s", path.name, row["id"],
                               sorted(labels - allowed))
            labels &= allowed
        out[row["id"]] = frozenset(labels)
    return out


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Cohen's kappa of two binary annotations (None when undefined: chance agreement 1)."""
    n = len(a)
    if n == 0:
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def agreement(
    first: dict[str, frozenset[str]], second: dict[str, frozenset[str]], roles: dict[str, str]
) -> dict[str, object]:
    """Per-label Cohen's kappa and positive counts on the items both annotators labelled.

    Each label is scored on the overlap items of its own role only.
    """
    both = sorted(set(first) & set(second))
    per_label: dict[str, dict[str, float | int | None]] = {}
    for label in LABELS:
        role = "agent" if label in AGENT_LABELS else "customer"
        ids = [i for i in both if roles[i] == role]
        a = [label in first[i] for i in ids]
        b = [label in second[i] for i in ids]
        per_label[label] = {
            "items": len(ids),
            "positives_1": sum(a),
            "positives_2": sum(b),
            "both": sum(x and y for x, y in zip(a, b, strict=True)),
            "kappa": cohen_kappa(a, b),
        }
    exact = sum(first[i] == second[i] for i in both)
    kappas = [v["kappa"] for v in per_label.values() if v["kappa"] is not None]
    return {
        "overlap_items": len(both),
        "exact_match": exact / len(both) if both else None,
        "mean_kappa": sum(kappas) / len(kappas) if kappas else None,  # type: ignore[arg-type]
        "labels": per_label,
    }


MERGE_RULE = "union"
"""How a label is decided on a double-annotated item where the annotators disagree.

``union``: a label either annotator gave is kept. Both annotators read every item and the
measured disagreements are mostly one annotator overlooking a secondary act of a long turn
(a thanks or please inside a tweet, an offer of help after an answer), not one annotator
inventing a label; see the model card.
"""


def merge(
    first: dict[str, frozenset[str]], second: dict[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """Single-annotated items as they are, double-annotated ones by ``MERGE_RULE``."""
    out = dict(first)
    for i, labels in second.items():
        out[i] = out[i] | labels if i in out else labels
    return out


def write_labels(labels: dict[str, frozenset[str]], path: Path) -> None:
    """Ids + labels only, sorted by id (no text: the corpora are third-party)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in sorted(labels):
            f.write(json.dumps({"id": i, "labels": sorted(labels[i])}) + "\n")


def roles_of(ids: Iterable[str], corpora_dir: Path | None = None) -> dict[str, str]:
    """Role of each id, from the corpora (the sample manifest stores no role)."""
    from models.utterance_classifier.real_text import load_by_ids

    return {i: u.role for i, u in load_by_ids(set(ids), corpora_dir).items()}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description="merge annotator label files")
    parser.add_argument("command", choices=["merge"])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--corpora", type=Path, default=None)
    parser.add_argument(
        "--corrections-2",
        type=Path,
        default=None,
        help="ids + labels replacing annotator 2's lines (their own final self-check); "
        "agreement is computed before corrections",
    )
    args = parser.parse_args(argv)
    sample = read_sample()
    roles = roles_of(sample, args.corpora)
    first = {k: v for k, v in read_labels(args.first, roles).items() if k in sample}
    second = {k: v for k, v in read_labels(args.second, roles).items() if k in sample}
    write_labels(first, ANNOTATION_DIR / "labels_annotator1.jsonl")
    write_labels(second, ANNOTATION_DIR / "labels_annotator2.jsonl")
    report = agreement(first, second, roles)
    corrected = 0
    if args.corrections_2:
        for i, labels in read_labels(args.corrections_2, roles).items():
            corrected += second.get(i) != labels
            second[i] = labels
    report["annotator2_self_corrections"] = corrected
    report["mean_kappa_after_corrections"] = agreement(first, second, roles)["mean_kappa"]
    merged = merge(first, second)
    report["annotated_1"] = len(first)
    report["annotated_2"] = len(second)
    report["merged_items"] = len(merged)
    report["merge_rule"] = MERGE_RULE
    write_labels(merged, MERGED_PATH)
    AGREEMENT_PATH.write_text(json.dumps(report, indent=2) + "\n")
    logger.info(
        "merged %d items (%d + %d, overlap %d); mean kappa %s",
        len(merged), len(first), len(second), report["overlap_items"], report["mean_kappa"],
    )


if __name__ == "__main__":
    main()
