"""Knowledge consistency: precision/recall on generated multi-agent calls, and grouping cost.

Two parts:

- ``quality``: runs the whole Beam stage (FnApiRunner) over
  ``generate_consistency_scenarios(n_calls, n_agents, seed)`` and scores the flagged
  question/answer pairs against the generator's per-pair ground truth (a pair is a true
  finding when its answer is not the approved one), with and without the knowledge base.
- ``scale``: cost of grouping N question texts (10k and 100k by default) with the index
  algorithm of :mod:`pipeline.grouping` (micro-clusters around fixed exemplars per batch,
  merged as a combiner does, average linkage, assignment), on real MiniLM
  embeddings of generated texts (paraphrase x lead-in x filler, deduplicated before
  embedding). Reports seconds and similarity computations; all-pairs would be N^2/2.

Usage::

    .venv/bin/python benchmarks/bench_consistency.py [--part quality|scale|both]
        [--calls 600] [--agents 12] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.consistency import (  # noqa: E402
    ConsistencyConfig,
    load_embedder,
    read_findings,
    run_consistency,
)
from pipeline.grouping import (  # noqa: E402
    GroupingConfig,
    add_to_exemplars,
    assign,
    empty_exemplar_set,
    link,
    merge_exemplar_sets,
)
from tests.test_consistency import write_scenario_tables  # noqa: E402
from tools.callgen.consistency import (  # noqa: E402
    KNOWLEDGE_BASE_PATH,
    QUESTION_GROUPS,
    generate_consistency_scenarios,
)

logger = logging.getLogger(__name__)


def quality(n_calls: int, n_agents: int, seed: int, kb: bool) -> dict[str, Any]:
    calls = generate_consistency_scenarios(n_calls, n_agents, seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-consistency-"))
    try:
        wrong, right = write_scenario_tables(calls, tmp / "in")
        t0 = time.perf_counter()
        result = run_consistency(
            str(tmp / "in/utterances"), str(tmp / "in/calls"), str(tmp / "out"),
            kb_path=str(KNOWLEDGE_BASE_PATH) if kb else None,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        rows = read_findings(str(tmp / "out")).to_pylist()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    flagged = {q for r in rows if not r["is_majority"] for q in r["question_utterance_ids"]}
    tp = len(flagged & wrong)
    by_kind: dict[str, int] = {}
    for r in rows:
        if not r["is_majority"]:
            for k in r["kinds"]:
                by_kind[k] = by_kind.get(k, 0) + r["num_answers"]
    return {
        "calls": n_calls, "agents": n_agents, "seed": seed, "knowledge_base": kb,
        "qa_pairs": result.num_qa_pairs, "groups": result.num_groups,
        "true_inconsistent": len(wrong), "flagged": len(flagged), "true_positives": tp,
        "precision": round(tp / max(len(flagged), 1), 4),
        "recall": round(tp / max(len(wrong), 1), 4),
        "agreeing_flagged": len(flagged & right), "flagged_by_kind": by_kind,
        "wall_s": round(wall, 1),
    }  # fmt: skip


def question_texts(n: int, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` generated (question, answer) texts and their question-group labels."""
    rng = np.random.default_rng(seed)
    leads = ("", "Also, ", "And ", "One more thing. ", "Quick question, ", "Hi, ", "So ")
    tails = ("", " please", " by the way", " thanks", " for my order", " right now")
    qs, ans, labels = [], [], []
    for _ in range(n):
        g = int(rng.integers(len(QUESTION_GROUPS)))
        group = QUESTION_GROUPS[g]
        p = group.paraphrases[int(rng.integers(len(group.paraphrases)))]
        tail = tails[int(rng.integers(len(tails)))]
        q = leads[int(rng.integers(len(leads)))] + (p[:-1] + tail + "?" if tail else p)
        variants = (group.approved, *group.contradictions)
        v = variants[0] if rng.random() < 0.8 else variants[int(rng.integers(len(variants)))]
        qs.append(q)
        ans.append(v.texts[int(rng.integers(len(v.texts)))])
        labels.append(g)
    return qs, ans, np.asarray(labels)


def group_vectors(
    questions: np.ndarray, answers: np.ndarray, texts: list[str], batch: int = 512
) -> dict[str, Any]:
    """The stage's grouping (no index yet): micro-clusters around fixed exemplars per batch,
    merged as a combiner would, average linkage, then assignment. Counts similarity
    computations (question to exemplar, micro-cluster pairs, assignment)."""
    config = GroupingConfig()
    t0 = time.perf_counter()
    state = empty_exemplar_set()
    sims = 0
    for start in range(0, len(questions), batch):
        stop = start + batch
        part = add_to_exemplars(
            empty_exemplar_set(), questions[start:stop], texts[start:stop], config,
            answers[start:stop],
        )  # fmt: skip
        sims += (stop - start) * part.size + part.size * state.size
        state = merge_exemplar_sets([state, part], config)
    grouping = link(state, config)
    sims += state.size * state.size
    assignment = assign(grouping, questions, texts, config, answers)
    sims += len(questions) * (state.size + grouping.size)
    return {
        "seconds": time.perf_counter() - t0, "groups": grouping.size,
        "micro_clusters": state.size, "similarities": sims, "assignment": assignment,
    }  # fmt: skip


def purity(assignment: np.ndarray, labels: np.ndarray) -> float:
    """Share of questions whose group's most common true label is their own."""
    correct = 0
    for g in np.unique(assignment):
        members = labels[assignment == g]
        correct += int(np.bincount(members).max())
    return correct / len(labels)


def scale(sizes: list[int], seed: int) -> list[dict[str, Any]]:
    config = ConsistencyConfig()
    embed = load_embedder(config.embedder)
    out = []
    for n in sizes:
        qs, ans, labels = question_texts(n, seed)
        unique = sorted(set(qs) | set(ans))
        t0 = time.perf_counter()
        table = dict(zip(unique, np.asarray(embed(unique), dtype=np.float32), strict=True))
        embed_s = time.perf_counter() - t0
        q = np.stack([table[x] for x in qs])
        a = np.stack([table[x] for x in ans])
        g = group_vectors(q, a, qs)
        out.append(
            {
                "questions": n, "unique_texts_embedded": len(unique),
                "embed_s": round(embed_s, 1), "grouping_s": round(g["seconds"], 2),
                "groups": g["groups"], "micro_clusters": g["micro_clusters"],
                "similarities": g["similarities"],
                "all_pairs_similarities": n * (n - 1) // 2,
                "purity": round(purity(g["assignment"], labels), 4),
            }
        )  # fmt: skip
        logger.info("scale %s", out[-1])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("quality", "scale", "both"), default="both")
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--agents", type=int, default=12)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report: dict[str, Any] = {}
    if args.part in ("quality", "both"):
        report["quality"] = [
            quality(args.calls, args.agents, int(seed), kb)
            for seed in args.seeds.split(",")
            for kb in (False, True)
        ]
    if args.part in ("scale", "both"):
        report["scale"] = scale([int(s) for s in args.sizes.split(",")], seed=0)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
