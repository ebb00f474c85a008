"""Voice activity detection per channel with the Silero VAD ONNX model.

The model is the Silero VAD v6 graph that faster-whisper ships
(``faster_whisper/assets/silero_vad_v6.onnx``), run directly with onnxruntime: no torch at
run time. It scores 32 ms frames (512 samples at 16 kHz, with 64 samples of left context);
frames are turned into speech regions with hysteresis, as in the reference Silero code.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import ChannelAudio, SpeechRegion

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class VadConfig:
    """Options of the VAD stage.

    Attributes:
        threshold: Frame probability above which speech starts (Silero's default 0.5).
        neg_threshold: Probability below which speech ends (Silero uses threshold - 0.15).
        min_speech: Shortest region kept, in seconds. 0.1 s keeps backchannels ("mm-hm"),
            which the dynamics stage must see to tell them from interruptions.
        min_silence: Silence needed to end a region, in seconds. 0.3 s separates turns
            without splitting words at short pauses.
        speech_pad: Padding added to each side of a region, in seconds.
        model_path: Silero ONNX file; empty for the one faster-whisper ships.
        use_cuda: Use onnxruntime's CUDA provider when it is available.
    """

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech: float = 0.1
    min_silence: float = 0.3
    speech_pad: float = 0.05
    model_path: str = ""
    use_cuda: bool = True


def default_model_path() -> str:
    """Path of the Silero VAD v6 ONNX file bundled with faster-whisper."""
    try:
        import faster_whisper
    except ImportError as e:
        raise RuntimeError("the VAD needs the faster-whisper package (it ships Silero)") from e
    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


class SileroVad:
    """Silero VAD on onnxruntime; load once per worker and call per channel."""

    def __init__(self, config: VadConfig | None = None):
        try:
            import onnxruntime
        except ImportError as e:
            raise RuntimeError("the VAD needs onnxruntime (or onnxruntime-gpu)") from e
        self.config = config or VadConfig()
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        available = onnxruntime.get_available_providers()
        if self.config.use_cuda and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        path = self.config.model_path or default_model_path()
        self.session = onnxruntime.InferenceSession(path, sess_options=options, providers=providers)
        logger.info("loaded Silero VAD %s on %s", path, self.session.get_providers()[0])

    def frame_probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms frame of 16 kHz mono ``samples``."""
        if samples.ndim != 1:
            raise ValueError(f"VAD takes one channel, got an array of shape {samples.shape}")
        n_frames = int(np.ceil(len(samples) / FRAME_SAMPLES))
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.zeros(n_frames * FRAME_SAMPLES, dtype=np.float32)
        padded[: len(samples)] = samples
        frames = padded.reshape(n_frames, FRAME_SAMPLES)
        context = np.zeros((n_frames, CONTEXT_SAMPLES), dtype=np.float32)
        context[1:] = frames[:-1, -CONTEXT_SAMPLES:]
        batch = np.concatenate([context, frames], axis=1)
        state_h = np.zeros((1, 1, 128), dtype=np.float32)
        state_c = np.zeros((1, 1, 128), dtype=np.float32)
        outputs = []
        # The graph carries its LSTM state across the rows of a batch; bound the batch size
        # so memory stays flat on long calls.
        for i in range(0, n_frames, 10000):
            probs, state_h, state_c = self.session.run(
                None, {"input": batch[i : i + 10000], "h": state_h, "c": state_c}
            )
            outputs.append(probs)
        return np.concatenate(outputs).astype(np.float32)

    def __call__(self, samples: np.ndarray) -> list[SpeechRegion]:
        """Speech regions of 16 kHz mono ``samples``, in time order."""
        return regions_from_probabilities(
            self.frame_probabilities(samples), len(samples) / SAMPLE_RATE, self.config
        )


def regions_from_probabilities(
    probs: np.ndarray, duration: float, config: VadConfig
) -> list[SpeechRegion]:
    """Turn frame probabilities into padded speech regions with hysteresis."""
    regions: list[tuple[float, float]] = []
    in_speech = False
    start = 0.0
    silence_since: float | None = None
    for i, p in enumerate(probs):
        t = i * FRAME_SECONDS
        if not in_speech:
            if p >= config.threshold:
                in_speech, start, silence_since = True, t, None
            continue
        if p >= config.neg_threshold:
            silence_since = None
        elif silence_since is None:
            silence_since = t
        elif t + FRAME_SECONDS - silence_since >= config.min_silence:
            regions.append((start, silence_since))
            in_speech, silence_since = False, None
    if in_speech:
        regions.append((start, silence_since if silence_since is not None else duration))

    out: list[SpeechRegion] = []
    for s, e in regions:
        if e - s < config.min_speech:
            continue
        s = max(0.0, s - config.speech_pad)
        e = min(duration, e + config.speech_pad)
        if out and s <= out[-1].end:
            out[-1] = SpeechRegion(out[-1].start, round(e, 3))
        else:
            out.append(SpeechRegion(round(s, 3), round(e, 3)))
    return out


class VadFn(StageFn):
    """Find speech regions on one channel; the model loads once per worker."""

    stage = "vad"

    def __init__(self, config: VadConfig):
        super().__init__()
        self.config = config
        self.vad: SileroVad | None = None

    def setup(self) -> None:
        self.vad = SileroVad(self.config)

    def run(self, element: ChannelAudio) -> Iterator[ChannelAudio]:
        assert self.vad is not None
        started = time.perf_counter()
        regions = tuple(self.vad(element.samples))
        elapsed = time.perf_counter() - started
        yield replace(
            element, regions=regions, processing_seconds=element.processing_seconds + elapsed
        )


class DetectSpeech(beam.PTransform):
    """ChannelAudio -> ChannelAudio with ``regions`` (main), DeadLetter (``dead_letter``)."""

    def __init__(self, config: VadConfig | None = None):
        super().__init__()
        self.config = config or VadConfig()

    def expand(self, channels: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return channels | "SileroVad" >> beam.ParDo(VadFn(self.config)).with_outputs(
            DEAD_LETTER, main="channels"
        )
