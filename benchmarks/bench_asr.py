"""Whisper stage alone: batched window decoding against one window at a time, side by side.

Runs the pipeline's own ASR backend (Silero VAD regions, chunks packed into 30 s windows,
faster-whisper's ``BatchedInferencePipeline``, greedy) on every channel of the input, with
``batch_size`` 1 and 8 in alternating rounds in one process (model loaded once per setting),
and reports channel-seconds of audio per wall second and word error rate (jiwer) against
the generator's ground truth::

    python benchmarks/bench_asr.py samples/manifest.jsonl --out benchmarks/results/asr.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.asr import AsrConfig  # noqa: E402
from pipeline.asr.whisper import WhisperBackend  # noqa: E402
from pipeline.audio import load_call  # noqa: E402
from pipeline.evaluation import word_error_rate  # noqa: E402
from pipeline.manifest import resolve_input  # noqa: E402
from pipeline.vad import SileroVad  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default="samples/manifest.jsonl")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    specs, _ = resolve_input(args.input)
    vad = SileroVad()
    channels = []
    for spec in specs:
        call = load_call(spec)
        with open(os.path.splitext(spec.audio)[0] + ".json", encoding="utf-8") as f:
            truth = json.load(f)
        for ch in range(call.num_channels):
            samples = call.samples[ch]
            role = "agent" if ch == spec.agent_channel else "customer"
            reference = " ".join(t["text"] for t in truth["turns"] if t["speaker"] == role)
            channels.append((samples, vad(samples), reference))
    seconds = sum(len(s) / 16000 for s, _, _ in channels)
    backends = {b: WhisperBackend(AsrConfig(batch_size=b, cpu_threads=args.threads))
                for b in (1, 8)}
    walls: dict[int, list[float]] = {b: [] for b in backends}
    texts: dict[int, list[str]] = {}
    for _ in range(args.rounds):
        for b, backend in backends.items():
            started = time.perf_counter()
            texts[b] = [" ".join(w.text for w in backend.transcribe(s, 16000, r))
                        for s, r, _ in channels]
            walls[b].append(time.perf_counter() - started)
    reference = " ".join(ref for _, _, ref in channels)
    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "input": args.input, "channel_seconds": round(seconds, 1), "threads": args.threads,
        "settings": {
            f"batch_{b}": {"wall_seconds": [round(w, 2) for w in walls[b]],
                           "channel_seconds_per_wall_second": round(seconds / min(walls[b]), 1),
                           "wer": round(word_error_rate(reference, " ".join(texts[b])), 4)}
            for b in backends
        },
    }
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
