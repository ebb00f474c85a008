"""Throughput and memory of the ONNX utterance classifier on CPU.

Each model variant runs in its own worker process, as a Beam worker would: it loads the
classifier (1 intra-op thread by default), warms up, then labels the same utterances (test
split of the corpus, with their contexts) through ``UtteranceClassifier.label`` (what
``LabelUtterances`` calls) at batch sizes 1, 8, 32, 64. Variants: ``pair-int8`` (2.x labels:
the fine-tuned pair graph, one ONNX call per utterance), ``v1.1-int8`` and ``v1.1-fp32``
(the 1.1.0 graph's own scores, one row per call). Reported: utterances/second per batch size
and the worker's peak RSS.

Run: ``.venv/bin/python benchmarks/bench_classifier.py --out /tmp/bench_classifier.json``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 8, 32, 64)
MODELS: dict[str, dict[str, Any]] = {
    "pair-int8": {},
    "v1.1-int8": {"pair_model": False},
    "v1.1-fp32": {"pair_model": False, "model_file": "model.onnx"},
}
"""Variant name -> ClassifierConfig overrides."""


def load_utterances(n: int) -> list[tuple[str, str, str]]:
    """``n`` test-split utterances with their contexts, in corpus order."""
    path = ROOT / "models" / "utterance_classifier" / "corpus.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    test = [(r["role"], r["text"], r["context"]) for r in rows if r["split"] == "test"]
    return test[:n]


def worker(variant: str, threads: int, n: int, min_seconds: float) -> dict[str, object]:
    """Runs in the child process: one model, all batch sizes."""
    from pipeline.classifier import ClassifierConfig, UtteranceClassifier
    from pipeline.records import ClassifierInput

    clf = UtteranceClassifier(ClassifierConfig(intra_op_threads=threads, use_cuda=False,
                                               **MODELS[variant]))
    data = [ClassifierInput(f"b/u{i:04d}", "b", role, text, context)
            for i, (role, text, context) in enumerate(load_utterances(n))]
    clf.label(data[:64])  # warm-up
    results = {}
    for bs in BATCH_SIZES:
        done, start = 0, time.perf_counter()
        while True:
            for s in range(0, len(data), bs):
                clf.label(data[s : s + bs])
            done += len(data)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        results[str(bs)] = round(done / elapsed, 1)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"model_file": clf.model_path.name, "model_version": clf.model_version,
            "utterances_per_second": results,
            "peak_rss_mb": round(peak_kb / 1024, 1), "providers": list(clf.providers)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results path")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per worker")
    parser.add_argument("--n", type=int, default=256, help="utterances per pass")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="repeat passes until this long per batch size")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.n, args.min_seconds)))
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = load_utterances(args.n)
    mean_chars = sum(len(t) for _, t, _ in data) / len(data)
    models: dict[str, dict[str, Any]] = {}
    report: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cpus": __import__("os").cpu_count()},
        "threads_per_worker": args.threads, "utterances": len(data),
        "mean_text_chars": round(mean_chars, 1), "models": models,
    }
    for name in MODELS:
        out = subprocess.run(
            [sys.executable, __file__, "--out", str(args.out), "--threads", str(args.threads),
             "--n", str(args.n), "--min-seconds", str(args.min_seconds),
             "--worker", name],
            check=True, capture_output=True, text=True)
        models[name] = json.loads(out.stdout.strip().splitlines()[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    header = "model      " + "".join(f"  bs={bs:<5}" for bs in BATCH_SIZES) + "  peak RSS MB"
    print(f"utterances/second, {args.threads} intra-op thread(s) per worker, "
          f"{len(data)} test utterances (+context), mean {mean_chars:.0f} chars")
    print(header)
    for name, res in models.items():
        ups = res["utterances_per_second"]
        print(f"{name:<10} " + "".join(f"  {ups[str(bs)]:<8}" for bs in BATCH_SIZES)
              + f"  {res['peak_rss_mb']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
