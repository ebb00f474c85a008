"""Festival text-to-speech rendering of single turns, cached on disk.

Each turn is rendered with ``text2wave``, resampled to 8 kHz (and optionally
sped up) with ``sox``, trimmed to its speech and cached by a hash of
(voice, text, tempo) so reruns only render new text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
"""Telephony sample rate of every generated call (narrowband)."""

VOICES: dict[str, str] = {
    # Female HMM voice; about 7 % WER with Whisper tiny.en at 8 kHz.
    "slt": "(voice_cmu_us_slt_arctic_hts)",
    # Male diphone voice; about 15 % WER, the harder of the two.
    "kal": "(voice_kal_diphone)",
}

TRIM_THRESHOLD_DB = -40.0
"""Frames quieter than this relative to the loudest 10 ms frame count as silence when trimming."""

TRIM_PAD_S = 0.02
"""Silence kept around the trimmed speech, so onsets are not clipped."""


def default_cache_dir() -> Path:
    """Returns the turn cache directory (``$XDG_CACHE_HOME/callscope/callgen``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callscope" / "callgen"


@dataclass
class TurnRenderer:
    """Renders text to 8 kHz float32 mono audio with Festival, with a disk cache.

    Attributes:
        cache_dir: Where rendered turns are cached as 8 kHz 16-bit WAV.
        rendered: Number of turns rendered by Festival (cache misses) so far.
    """

    cache_dir: Path = field(default_factory=default_cache_dir)
    rendered: int = 0

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def render(self, voice: str, text: str, tempo: float = 1.0) -> np.ndarray:
        """Returns the trimmed speech of ``text`` spoken by ``voice``.

        Args:
            voice: A key of ``VOICES`` ("slt" or "kal").
            text: What to say.
            tempo: Speed factor applied with sox ``tempo`` (1.0 = unchanged).

        Returns:
            Float32 samples at ``SAMPLE_RATE``, peak-normalised to 0.5.

        Raises:
            ValueError: For an unknown voice or empty text.
            RuntimeError: When Festival or sox is missing or fails.
        """
        if voice not in VOICES:
            raise ValueError(f"unknown voice {voice!r}; expected one of {sorted(VOICES)}")
        if not text.strip():
            raise ValueError("cannot render empty text")
        key = hashlib.sha1(f"{voice}\x00{tempo:.3f}\x00{text}".encode()).hexdigest()
        path = self.cache_dir / f"{key}.wav"
        if not path.exists():
            self._render_to(voice, text, tempo, path)
            self.rendered += 1
        audio, sr = sf.read(path, dtype="float32")
        if sr != SAMPLE_RATE:
            raise RuntimeError(f"cached turn {path} has rate {sr}, expected {SAMPLE_RATE}")
        return _normalise(_trim(audio))

    def _render_to(self, voice: str, text: str, tempo: float, path: Path) -> None:
        for tool in ("text2wave", "sox"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"rendering calls requires {tool!r} (apt: festival, sox)")
        with tempfile.TemporaryDirectory() as tmp:
            txt = Path(tmp) / "turn.txt"
            raw = Path(tmp) / "raw.wav"
            txt.write_text(text + "\n", encoding="utf-8")
            subprocess.run(
                ["text2wave", "-eval", VOICES[voice], "-o", str(raw), str(txt)],
                check=True,
                capture_output=True,
            )
            effects = ["rate", "-v", str(SAMPLE_RATE)]
            if abs(tempo - 1.0) > 1e-3:
                effects = ["tempo", "-s", f"{tempo:.3f}", *effects]
            tmp_out = Path(tmp) / "out.wav"
            subprocess.run(
                ["sox", str(raw), "-b", "16", "-c", "1", str(tmp_out), *effects],
                check=True,
                capture_output=True,
            )
            shutil.move(str(tmp_out), path)
        logger.debug("rendered %s turn %r", voice, text[:40])


def _trim(audio: np.ndarray) -> np.ndarray:
    frame = SAMPLE_RATE // 100
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (TRIM_THRESHOLD_DB / 20))
    pad = int(TRIM_PAD_S * SAMPLE_RATE)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]


def _normalise(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) or 1.0
    return (audio * (0.5 / peak)).astype(np.float32)
