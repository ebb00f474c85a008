"""Question grouping on real intent-paraphrase sets: ARI, purity, groups mixing intents.

Each utterance of an intent set is one "question"; a good grouping puts one intent's
paraphrases together and different intents apart. Sets (text loaded from the corpora folder,
never from the repository):

- dev (thresholds are chosen here): NatCS insurance (``natcs_intents/development``), CLINC150
  ``val`` (in-scope);
- test (reported once, chose nothing): NatCS banking and finance, CLINC150 ``test``
  (in-scope), HWU64 fold-1 ``test``.

Embeddings are the utterance classifier's MiniLM sentence embedding
(``pipeline.classifier.embed_texts``), cached per text under ``--cache``.

Usage::

    .venv/bin/python benchmarks/eval_grouping.py --corpora ../shared/corpora [--split dev|test]
        [--grid] [--join 0.8 --link 0.5] [--no-slots] [--baseline]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from math import comb
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.grouping import GroupingConfig, group_questions, mask_entities  # noqa: E402

DEV = ("natcs_insurance", "clinc_val")
TEST = ("natcs_banking", "natcs_finance", "clinc_test", "hwu64_test")


def default_corpora() -> str:
    return os.environ.get("CALLSCOPE_CORPORA") or str(ROOT.parent / "shared" / "corpora")


def load_set(corpora: str, name: str) -> list[tuple[str, str]]:
    """(text, intent) pairs of one named set."""
    c = Path(corpora)
    if name.startswith("natcs_"):
        folder = {"natcs_insurance": "development", "natcs_banking": "test-banking",
                  "natcs_finance": "test-finance"}[name]  # fmt: skip
        path = c / "natcs_intents" / folder / "test-utterances.jsonl.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [(r["utterance"], r["intent"]) for r in map(json.loads, f)]
    if name.startswith("clinc_"):
        with gzip.open(c / "clinc150" / "data_full.json.gz", "rt", encoding="utf-8") as f:
            data = json.load(f)
        return [(t, i) for t, i in data[name.split("_", 1)[1]]]
    if name == "hwu64_test":
        path = c / "hwu64" / "NLU-Data-Home-Domain-KFold_1.csv.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = list(csv.DictReader(io.StringIO(f.read()), delimiter=";"))
        return [
            (r["answer_from_anno"], f"{r['scenario']}_{r['intent']}")
            for r in rows
            if r["split"] == "test"
        ]
    raise ValueError(f"unknown set {name!r}")


def embed_cached(texts: Sequence[str], cache: str) -> np.ndarray:
    """MiniLM embeddings of ``texts``, computed once per distinct text and kept in ``cache``."""
    os.makedirs(cache, exist_ok=True)
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    store = Path(cache) / "minilm.npz"
    known: dict[str, np.ndarray] = {}
    if store.exists():
        with np.load(store) as z:
            known = {k: z[k] for k in z.files}
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if missing:
        from pipeline.classifier import embed_texts

        vecs = embed_texts([t for _, t in missing])
        known.update({k: v for (k, _), v in zip(missing, vecs, strict=True)})
        np.savez(store, **known)
    return np.stack([known[k] for k in keys]).astype(np.float32)


def ari(labels: Sequence[str], clusters: Sequence[str]) -> float:
    """Adjusted Rand index (Hubert and Arabie) of two labelings."""
    n = len(labels)
    cont = Counter(zip(labels, clusters, strict=True))
    sum_ij = sum(comb(v, 2) for v in cont.values())
    sum_a = sum(comb(v, 2) for v in Counter(labels).values())
    sum_b = sum(comb(v, 2) for v in Counter(clusters).values())
    expected = sum_a * sum_b / comb(n, 2)
    top = (sum_a + sum_b) / 2
    return 1.0 if top == expected else (sum_ij - expected) / (top - expected)


def score(labels: Sequence[str], clusters: Sequence[str]) -> dict[str, float]:
    by_group: dict[str, list[str]] = defaultdict(list)
    for lab, g in zip(labels, clusters, strict=True):
        by_group[g].append(lab)
    majority = sum(Counter(v).most_common(1)[0][1] for v in by_group.values())
    mixing = [len(set(v)) for v in by_group.values()]
    return {
        "n": len(labels),
        "intents": len(set(labels)),
        "groups": len(by_group),
        "ari": round(ari(labels, clusters), 3),
        "purity": round(majority / len(labels), 3),
        "groups_mixing_gt3": sum(m > 3 for m in mixing),
        "max_intents_in_group": max(mixing),
        "largest_group": max(len(v) for v in by_group.values()),
    }


def baseline_leader(vectors: np.ndarray, threshold: float = 0.62) -> list[str]:
    """The old running-centroid leader clustering (question vectors only), for comparison."""
    cents: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    out = []
    for v in vectors:
        if cents:
            sims = np.stack(cents) @ v
            j = int(sims.argmax())
            if sims[j] >= threshold:
                sums[j] = sums[j] + v
                cents[j] = sums[j] / np.linalg.norm(sums[j])
                out.append(str(j))
                continue
        sums.append(v.copy())
        cents.append(v.copy())
        out.append(str(len(cents) - 1))
    return out


def evaluate(name: str, corpora: str, cache: str, config: GroupingConfig) -> dict[str, float]:
    rows = load_set(corpora, name)
    texts = [t for t, _ in rows]
    # As in the stage: entity names are masked for the embedding, slots read the full text.
    vectors = embed_cached([mask_entities(t) for t in texts], cache)
    t0 = time.perf_counter()
    ids, _ = group_questions(vectors, texts, config)
    result = score([i for _, i in rows], ids)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default=default_corpora())
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                    "callscope", "eval_grouping"))
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--join", type=float, default=GroupingConfig.join_threshold)
    ap.add_argument("--link", type=float, default=GroupingConfig.link_threshold)
    ap.add_argument("--no-slots", action="store_true")
    ap.add_argument("--grid", action="store_true", help="threshold grid (dev sets only)")
    ap.add_argument("--baseline", action="store_true", help="also the old leader clustering")
    args = ap.parse_args(argv)
    names = DEV if args.split == "dev" else TEST
    if args.grid:
        if args.split != "dev":
            ap.error("--grid chooses thresholds: dev sets only")
        for join in (0.7, 0.75, 0.8, 0.85, 0.9):
            for link_t in (0.35, 0.4, 0.45, 0.5, 0.55):
                cfg = GroupingConfig(join_threshold=join, link_threshold=link_t,
                                     respect_slots=not args.no_slots)
                res = {n: evaluate(n, args.corpora, args.cache, cfg) for n in names}
                print(json.dumps({"join": join, "link": link_t,
                                  **{n: {k: r[k] for k in ("ari", "purity", "groups",
                                                           "groups_mixing_gt3")}
                                     for n, r in res.items()}}))
        return 0
    cfg = GroupingConfig(join_threshold=args.join, link_threshold=args.link,
                         respect_slots=not args.no_slots)
    for name in names:
        res = evaluate(name, args.corpora, args.cache, cfg)
        print(json.dumps({"set": name, "join": cfg.join_threshold, "link": cfg.link_threshold,
                          "slots": cfg.respect_slots, **res}))
        if args.baseline:
            rows = load_set(args.corpora, name)
            vectors = embed_cached([mask_entities(t) for t, _ in rows], args.cache)
            print(json.dumps({"set": name, "method": "old leader clustering 0.62",
                              **score([i for _, i in rows], baseline_leader(vectors))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
