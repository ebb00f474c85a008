"""Speaker embeddings at run time: resemblyzer's voice encoder as ONNX, its front end in numpy.

The voice encoder (resemblyzer 0.1.4, Apache-2.0: a 3-layer LSTM over 40 mel bands, 256-d
L2-normalised output) is exported to ``models/speaker/voice_encoder.onnx`` by
``python -m models.speaker.export`` (torch only there). Its front end, a librosa mel power
spectrogram (25 ms Hann window, 10 ms hop, 40 Slaney mel bands, no log), is rewritten here in
numpy; the export checks both against resemblyzer within stated tolerances
(``models/speaker/export_report.json``).
"""

from __future__ import annotations

import json
import logging
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "speaker"
MODEL_FILE = "voice_encoder.onnx"
MODEL_NAME = "resemblyzer-voice-encoder"
MODEL_VERSION = "0.1.4"

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms at 16 kHz (resemblyzer hparams.mel_window_length)
HOP = 160  # 10 ms (hparams.mel_window_step)
N_MELS = 40  # hparams.mel_n_channels
EMBEDDING_DIM = 256
NORM_TARGET_DBFS = -30.0  # hparams.audio_norm_target_dBFS


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``)."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / f_sp
    log_part = hz >= min_log_hz
    mel[log_part] = min_log_mel + np.log(hz[log_part] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = np.asarray(mel, dtype=np.float64)
    hz = f_sp * mel
    log_part = mel >= min_log_mel
    hz[log_part] = min_log_hz * np.exp(logstep * (mel[log_part] - min_log_mel))
    return hz


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(40, 201) Slaney-normalised mel filter bank, as ``librosa.filters.mel`` builds it."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_points = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0],
                    N_MELS + 2))
    fdiff = np.diff(mel_points)
    ramps = np.subtract.outer(mel_points, fft_freqs)
    weights = np.zeros((N_MELS, len(fft_freqs)))
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : N_MELS + 2] - mel_points[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Mel power spectrogram, shape ``(frames, 40)``, frame ``i`` centred at ``i * 10 ms``.

    Matches ``resemblyzer.audio.wav_to_mel_spectrogram`` (librosa ``melspectrogram`` with
    ``center=True`` and zero padding).
    """
    x = np.asarray(samples, dtype=np.float32)
    pad = N_FFT // 2
    x = np.pad(x, (pad, pad), mode="constant")
    n_frames = 1 + (len(x) - N_FFT) // HOP
    if n_frames <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as scipy's
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, N_FFT), strides=(x.strides[0] * HOP, x.strides[0]), writeable=False)
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return power @ mel_filters().T


def volume_gain(samples: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> float:
    """Gain that raises (never lowers) ``samples`` to ``target_dbfs`` RMS, as resemblyzer's
    preprocessing does."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    if rms <= 0:
        return 1.0
    change = target_dbfs - 20 * np.log10(rms)
    return 1.0 if change < 0 else float(10 ** (change / 20))


def normalize_volume(samples: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """``samples`` times :func:`volume_gain`."""
    return (samples * volume_gain(samples, target_dbfs)).astype(np.float32)


class VoiceEncoder:
    """The ONNX voice encoder, loaded once per process (see :func:`shared_encoder`).

    Args:
        model_dir: Folder with ``voice_encoder.onnx`` and ``export_report.json``.
        intra_op_threads: onnxruntime intra-op threads (1: Beam workers are the unit of
            parallelism).

    Raises:
        RuntimeError: onnxruntime is missing.
        ValueError: the model file is missing (build it with ``python -m models.speaker.export``).
    """

    def __init__(self, model_dir: str = str(MODEL_DIR), intra_op_threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - environment error
            raise RuntimeError("speaker embeddings require onnxruntime") from e
        path = Path(model_dir) / MODEL_FILE
        if not path.is_file():
            raise ValueError(
                f"speaker model not found: {path} (build it: python -m models.speaker.export)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        report = Path(model_dir) / "export_report.json"
        meta = json.loads(report.read_text()) if report.is_file() else {}
        self.model_name = meta.get("model_name", MODEL_NAME)
        self.model_version = meta.get("model_version", MODEL_VERSION)

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of equal-length mel windows ``(batch, frames, 40)``."""
        if len(mels) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        (out,) = self.session.run(["embedding"], {"mels": mels.astype(np.float32)})
        return np.asarray(out, dtype=np.float32)


_SHARED: dict[tuple[str, int], VoiceEncoder] = {}
_LOCK = threading.Lock()


def shared_encoder(model_dir: str = str(MODEL_DIR), intra_op_threads: int = 1) -> VoiceEncoder:
    """One :class:`VoiceEncoder` per process and settings (Beam threads share it)."""
    key = (model_dir, intra_op_threads)
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = VoiceEncoder(model_dir, intra_op_threads)
        return _SHARED[key]
