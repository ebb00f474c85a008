"""Export resemblyzer's pretrained voice encoder to ONNX and check the run-time path against it.

Build step (needs the ``train`` extra plus resemblyzer, never needed at run time)::

    pip install torch==2.13.0 resemblyzer==0.1.4 librosa onnx
    python -m models.speaker.export

Writes next to this file ``voice_encoder.onnx`` (about 6 MB; not committed: rebuild it with
this command) and ``export_report.json``: the licence, the source weights' sha256, and the
largest differences of (a) the numpy mel front end (``pipeline.speaker_embedding``) against
resemblyzer's librosa one and (b) ONNX against torch embeddings, on generated fixture calls.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from pipeline.audio import resample
from pipeline.speaker_embedding import (
    MODEL_FILE,
    MODEL_NAME,
    MODEL_VERSION,
    N_MELS,
    VoiceEncoder,
    mel_spectrogram,
    normalize_volume,
)

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OPSET = 17
# Tolerances of the checks (relative to the largest value of each compared array).
MAX_MEL_REL_DIFF = 1e-4
MAX_EMBEDDING_ABS_DIFF = 1e-4
CHECK_AUDIO = sorted((ROOT / "tests" / "fixtures" / "dynamics").glob("dyn-00[0-2].flac"))


class _Graph(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.encoder(mels)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(out_dir: Path = HERE) -> dict[str, object]:
    import resemblyzer
    from resemblyzer import VoiceEncoder as TorchEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram

    torch_encoder = TorchEncoder(device="cpu", verbose=False).eval()
    onnx_path = out_dir / MODEL_FILE
    example = torch.zeros(2, 150, N_MELS)
    torch.onnx.export(
        _Graph(torch_encoder), (example,), str(onnx_path),
        input_names=["mels"], output_names=["embedding"],
        dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=OPSET, dynamo=False, do_constant_folding=True)

    encoder = VoiceEncoder(str(out_dir))
    mel_diff = 0.0
    emb_diff = 0.0
    windows = 0
    for path in CHECK_AUDIO:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        mono = resample(audio.mean(axis=1), rate)
        mono = normalize_volume(mono)
        ours = mel_spectrogram(mono)
        theirs = wav_to_mel_spectrogram(mono)
        if ours.shape != theirs.shape:
            raise ValueError(f"{path.name}: mel shapes differ {ours.shape} vs {theirs.shape}")
        mel_diff = max(mel_diff, float(np.abs(ours - theirs).max() / theirs.max()))
        # 1.5 s windows every 5 s of the call: ONNX on our mels vs torch on librosa's.
        starts = range(0, len(ours) - 150, 500)
        ours_w = np.stack([ours[s : s + 150] for s in starts])
        theirs_w = np.stack([theirs[s : s + 150] for s in starts])
        with torch.no_grad():
            ref = torch_encoder(torch.from_numpy(theirs_w)).numpy()
        emb_diff = max(emb_diff, float(np.abs(encoder.embed_mels(ours_w) - ref).max()))
        windows += len(ours_w)
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    report: dict[str, object] = {
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "source": "PyPI resemblyzer==0.1.4, resemblyzer/pretrained.pt",
        "source_sha256": _sha256(weights),
        "licence": "Apache-2.0 (resemblyzer's LICENSE file and PyPI classifier)",
        "architecture": "LSTM(40->256, 3 layers) -> Linear(256) -> ReLU -> L2 norm",
        "input": "mels: float32 (batch, frames, 40) mel power, 25 ms window, 10 ms hop",
        "output": "embedding: float32 (batch, 256), L2-normalised",
        "opset": OPSET,
        "onnx_bytes": onnx_path.stat().st_size,
        "onnx_sha256": _sha256(onnx_path),
        "check_audio": [p.name for p in CHECK_AUDIO],
        "check_windows": windows,
        "mel_max_rel_diff_numpy_vs_librosa": mel_diff,
        "embedding_max_abs_diff_onnx_numpy_vs_torch_librosa": emb_diff,
        "tolerances": {"mel_rel": MAX_MEL_REL_DIFF, "embedding_abs": MAX_EMBEDDING_ABS_DIFF},
    }
    if mel_diff > MAX_MEL_REL_DIFF or emb_diff > MAX_EMBEDDING_ABS_DIFF:
        raise ValueError(f"export check failed: {report}")
    (out_dir / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(export(), indent=2))
