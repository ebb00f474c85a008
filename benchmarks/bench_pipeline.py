"""Throughput of the whole callscope pipeline against a plain faster-whisper loop, side by side.

Both run in one invocation on the same files, each in its own process so that peak memory
(resident set of the process and its children: Beam's workers) is measured separately:

* ``pipeline``: ``callscope run`` with its defaults (FnApiRunner, one single-threaded worker
  per core, Silero VAD, Whisper tiny.en int8 on speech chunks, Parquet out).
* ``faster-whisper`` loops: one ``WhisperModel.transcribe`` per channel of every file, same
  model and compute type, greedy, ``vad_filter=True`` and word timestamps, at its best
  settings: one process with all cores as CTranslate2 threads, and one single-threaded
  process per core (channels spread over them).

Reports audio seconds per wall second, peak RSS and, where the generator's ground truth lies
next to the audio, word error rate (jiwer) for each; the ratio to the best loop; and the
pipeline's start-up, measured apart as its wall time on the shortest call alone::

    python benchmarks/bench_pipeline.py tests/fixtures/dynamics \
        --out benchmarks/results/pipeline-dynamics20.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.evaluation import word_error_rate  # noqa: E402
from pipeline.manifest import resolve_input  # noqa: E402
from pipeline.sinks import read_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASELINE = r"""
import json, os, sys
from multiprocessing import Pool
from faster_whisper import WhisperModel
from pipeline.asr.whisper import bundled_model_path
from pipeline.audio import load_call
from pipeline.manifest import resolve_input

processes, threads = int(sys.argv[2]), int(sys.argv[3])
model = None

def init():
    global model
    model = WhisperModel(bundled_model_path(), device="cpu", compute_type="int8",
                         cpu_threads=threads)

def work(job):
    spec, ch = job
    call = load_call(spec)
    segments, _ = model.transcribe(call.samples[ch], language="en", beam_size=1,
                                   temperature=0.0, word_timestamps=True, vad_filter=True)
    text = " ".join(w.word.strip() for s in segments for w in (s.words or []))
    return spec.call_id, ch, call.duration, text

if __name__ == "__main__":
    specs, _ = resolve_input(sys.argv[1])
    jobs = [(spec, ch) for spec in specs for ch in (0, 1)]
    with Pool(processes, initializer=init) as pool:
        results = pool.map(work, jobs, chunksize=1)
    print(json.dumps(results))
"""
"""The plain loop at its best: one ``transcribe`` per channel (greedy, VAD on, word times),
in ``processes`` worker processes of ``threads`` CTranslate2 threads each."""


def _measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run ``cmd``; return (wall seconds, peak RSS bytes of it and its children, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak, out


def _truth_texts(specs: list[Any]) -> dict[tuple[str, str], str]:
    """Reference text per (call_id, role) from the generator's JSON next to each file."""
    texts: dict[tuple[str, str], str] = {}
    for spec in specs:
        path = os.path.splitext(spec.audio)[0] + ".json"
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            truth = json.load(f)
        for role in ("agent", "customer"):
            texts[(spec.call_id, role)] = " ".join(
                t["text"] for t in truth["turns"] if t["speaker"] == role)
    return texts


def _wer(truth: dict[tuple[str, str], str], hyp: dict[tuple[str, str], str]) -> float | None:
    keys = sorted(k for k in truth if k in hyp)
    if not keys:
        return None
    return round(word_error_rate(" ".join(truth[k] for k in keys),
                                 " ".join(hyp[k] for k in keys)), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default=os.path.join(ROOT, "samples", "manifest.jsonl"))
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("beam_args", nargs="*", help="extra options for callscope run")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": ROOT}
    specs, _ = resolve_input(args.input)
    truth = _truth_texts(specs)
    cpus = os.cpu_count() or 1

    def pipeline_run(inp: str) -> tuple[float, int, dict[str, Any], dict[tuple[str, str], str]]:
        with tempfile.TemporaryDirectory() as out_dir:
            wall, peak, _ = _measure(
                [sys.executable, "-m", "pipeline.cli", "run", inp, "--out", out_dir,
                 *args.beam_args],
                env,
            )
            with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as f:
                info = json.load(f)["result"]
            texts: dict[tuple[str, str], list[str]] = {}
            if inp == args.input:
                rows = read_table(out_dir, "utterances").to_pylist()
                for r in sorted(rows, key=lambda r: (r["call_id"], r["start"])):
                    texts.setdefault((r["call_id"], r["role"]), []).append(r["text"])
        return wall, peak, info, {k: " ".join(v) for k, v in texts.items()}

    # Start-up: the same command on the shortest call alone (Beam, workers, every model).
    shortest = min(specs, key=lambda s: os.path.getsize(s.audio))
    with tempfile.TemporaryDirectory() as tiny:
        manifest = os.path.join(tiny, "one.jsonl")
        with open(manifest, "w", encoding="utf-8") as f:
            f.write(json.dumps({"call_id": shortest.call_id,
                                "audio": os.path.abspath(shortest.audio)}) + "\n")
        startup_wall, _, startup_info, _ = pipeline_run(manifest)

    pipe_wall, pipe_peak, run_info, pipe_texts = pipeline_run(args.input)
    audio = run_info["audio_seconds"]
    results: dict[str, Any] = {
        "machine": {"cpus": cpus, "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_before": os.getloadavg()},
        "input": args.input,
        "calls": run_info["calls"],
        "audio_seconds": audio,
        "pipeline": {"wall_seconds": round(pipe_wall, 2),
                     "audio_per_wall_second": round(audio / pipe_wall, 2),
                     "peak_rss_mb": round(pipe_peak / 2**20),
                     "utterances": run_info["utterances"],
                     "wer": _wer(truth, pipe_texts),
                     "startup_wall_seconds_one_short_call": round(startup_wall, 2),
                     "startup_call_audio_seconds": startup_info["audio_seconds"]},
    }
    loops = {f"loop_{p}proc_{cpus // p}thread": (p, cpus // p) for p in sorted({1, cpus})}
    for name, (processes, threads) in loops.items():
        wall, peak, out = _measure(
            [sys.executable, "-c", BASELINE, args.input, str(processes), str(threads)], env)
        rows = json.loads(out)
        seconds = {call_id: duration for call_id, _, duration, _ in rows}
        texts = {}
        for call_id, ch, _, text in rows:
            spec = next(s for s in specs if s.call_id == call_id)
            role = "agent" if ch == spec.agent_channel else "customer"
            texts[(call_id, role)] = text
        results[name] = {"wall_seconds": round(wall, 2),
                         "audio_per_wall_second": round(sum(seconds.values()) / wall, 2),
                         "peak_rss_mb": round(peak / 2**20), "wer": _wer(truth, texts)}
    best = max(loops, key=lambda n: results[n]["audio_per_wall_second"])
    results["best_loop"] = best
    results["ratio_pipeline_to_best_loop"] = round(
        results["pipeline"]["audio_per_wall_second"] / results[best]["audio_per_wall_second"], 2
    )
    print(f"{'':22}{'audio s / wall s':>18}{'wall s':>10}{'peak RSS MB':>14}{'WER':>8}")
    for name in ("pipeline", *loops):
        r = results[name]
        print(f"{name:22}{r['audio_per_wall_second']:>18}{r['wall_seconds']:>10}"
              f"{r['peak_rss_mb']:>14}{r['wer']!s:>8}")
    print(f"ratio pipeline / best loop ({best}): {results['ratio_pipeline_to_best_loop']}  "
          f"({audio:.0f} s of audio, {results['calls']} calls); pipeline start-up "
          f"{startup_wall:.1f} s wall for one {startup_info['audio_seconds']:.0f} s call")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
