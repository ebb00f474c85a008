"""Throughput of the whole callscope pipeline against a plain faster-whisper loop, side by side.

Both run in one invocation on the same files, each in its own process so that peak memory
(resident set of the process and its children: Beam's workers) is measured separately:

* ``pipeline``: ``callscope run`` with its defaults (FnApiRunner, one single-threaded worker
  per core, Silero VAD, Whisper tiny.en int8 on speech chunks, Parquet out).
* ``faster-whisper``: one ``WhisperModel.transcribe`` per channel of every file, same model
  and compute type, ``vad_filter=True`` and word timestamps, all cores for CTranslate2.

Reports audio seconds per wall second for each, their ratio, and peak RSS::

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

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASELINE = r"""
import os, sys, time
import numpy as np
from faster_whisper import WhisperModel
from pipeline.asr.whisper import bundled_model_path
from pipeline.audio import load_call
from pipeline.manifest import resolve_input

specs, _ = resolve_input(sys.argv[1])
model = WhisperModel(bundled_model_path(), device="cpu", compute_type="int8",
                     cpu_threads=os.cpu_count())
audio_seconds = words = 0
for spec in specs:
    call = load_call(spec)
    audio_seconds += call.duration
    for ch in range(call.num_channels):
        segments, _ = model.transcribe(call.samples[ch], language="en", beam_size=1,
                                       word_timestamps=True, vad_filter=True)
        words += sum(len(s.words or []) for s in segments)
print(f"{audio_seconds} {words}")
"""


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default=os.path.join(ROOT, "samples", "manifest.jsonl"))
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("beam_args", nargs="*", help="extra options for callscope run")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": ROOT}

    with tempfile.TemporaryDirectory() as out_dir:
        pipe_wall, pipe_peak, pipe_out = _measure(
            [sys.executable, "-m", "pipeline.cli", "run", args.input, "--out", out_dir,
             *args.beam_args],
            env,
        )
        with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as f:
            run_info = json.load(f)["result"]
    audio = run_info["audio_seconds"]
    base_wall, base_peak, base_out = _measure([sys.executable, "-c", BASELINE, args.input], env)
    base_audio, base_words = base_out.split()
    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "input": args.input,
        "calls": run_info["calls"],
        "audio_seconds": audio,
        "pipeline": {"wall_seconds": round(pipe_wall, 2),
                     "audio_per_wall_second": round(audio / pipe_wall, 2),
                     "peak_rss_mb": round(pipe_peak / 2**20),
                     "utterances": run_info["utterances"]},
        "faster_whisper_loop": {"wall_seconds": round(base_wall, 2),
                                "audio_per_wall_second": round(float(base_audio) / base_wall, 2),
                                "peak_rss_mb": round(base_peak / 2**20),
                                "words": int(base_words)},
    }
    results["ratio_pipeline_to_loop"] = round(
        results["pipeline"]["audio_per_wall_second"]
        / results["faster_whisper_loop"]["audio_per_wall_second"], 2
    )
    print(f"{'':22}{'audio s / wall s':>18}{'wall s':>10}{'peak RSS MB':>14}")
    for name in ("pipeline", "faster_whisper_loop"):
        r = results[name]
        print(f"{name:22}{r['audio_per_wall_second']:>18}{r['wall_seconds']:>10}"
              f"{r['peak_rss_mb']:>14}")
    print(f"ratio pipeline / loop: {results['ratio_pipeline_to_loop']}  "
          f"({audio:.0f} s of audio, {results['calls']} calls)")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
