"""Voice activity detection per channel with Silero VAD, through faster-whisper's own VAD.

faster-whisper ships the Silero VAD v6 ONNX graph and runs it on onnxruntime
(``faster_whisper.vad``): one model per process, no torch. ``get_speech_timestamps`` turns
frame probabilities into speech regions with hysteresis and splits speech longer than one
recogniser window at its longest inner silence, so every region fits a Whisper window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import ChannelAudio, SpeechRegion

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class VadConfig:
    """Options of the VAD stage (passed to ``faster_whisper.vad.VadOptions``).

    Attributes:
        threshold: Frame probability above which speech starts (Silero's default 0.5).
        neg_threshold: Probability below which speech ends (Silero uses threshold - 0.15).
        min_speech: Shortest region kept, in seconds. 0.1 s keeps backchannels ("mm-hm"),
            which the dynamics stage must see to tell them from interruptions.
        min_silence: Silence needed to end a region, in seconds. 0.3 s separates turns
            without splitting words at short pauses.
        speech_pad: Padding added to each side of a region, in seconds. Kept small: the
            dynamics stage measures pauses and overlaps on these regions; the ASR stage pads
            its own chunks (``AsrConfig.region_padding``).
        max_region: Longest region, in seconds: longer speech is split at a silence (or, with
            none, just before the limit) so that each region fits one Whisper window (30 s)
            with the ASR padding on both sides.
    """

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech: float = 0.1
    min_silence: float = 0.3
    speech_pad: float = 0.05
    max_region: float = 28.5


class SileroVad:
    """Silero VAD through faster-whisper; call per channel of 16 kHz mono audio."""

    def __init__(self, config: VadConfig | None = None):
        try:
            from faster_whisper.vad import VadOptions, get_vad_model
        except ImportError as e:
            raise RuntimeError("the VAD needs faster-whisper (it ships Silero VAD)") from e
        self.config = config or VadConfig()
        self.options = VadOptions(
            threshold=self.config.threshold,
            neg_threshold=self.config.neg_threshold,
            min_speech_duration_ms=int(round(self.config.min_speech * 1000)),
            max_speech_duration_s=self.config.max_region,
            min_silence_duration_ms=int(round(self.config.min_silence * 1000)),
            speech_pad_ms=int(round(self.config.speech_pad * 1000)),
        )
        get_vad_model()  # load the ONNX session now (once per process), not on the first call

    def __call__(self, samples: np.ndarray) -> list[SpeechRegion]:
        """Speech regions of 16 kHz mono ``samples``, in time order."""
        from faster_whisper.vad import get_speech_timestamps

        if samples.ndim != 1:
            raise ValueError(f"VAD takes one channel, got an array of shape {samples.shape}")
        if len(samples) == 0:
            return []
        stamps = get_speech_timestamps(
            np.ascontiguousarray(samples, dtype=np.float32), self.options, SAMPLE_RATE
        )
        duration = len(samples) / SAMPLE_RATE
        regions = [
            SpeechRegion(round(s["start"] / SAMPLE_RATE, 3),
                         round(min(duration, s["end"] / SAMPLE_RATE), 3))
            for s in stamps
        ]
        return [r for r in regions if r.end > r.start]


class VadFn(StageFn):
    """Find speech regions on one channel; the model loads once per process."""

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
