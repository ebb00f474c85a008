"""NVIDIA Riva speech recognition over gRPC (the ``riva`` backend).

Each VAD speech chunk of a channel is sent as one offline ``Recognize`` request of 16-bit
little-endian PCM. Riva reports word times in milliseconds from the start of the request audio
(``WordInfo.start_time``/``end_time`` are ``int32`` ms in ``riva_asr.proto``); they are
converted to seconds and shifted onto the channel's timeline.

Transient failures (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) are retried with exponential
backoff; any other status fails at once, with the server's message and URI in the error.

For development without a GPU, :mod:`pipeline.asr.riva_loopback` serves the same gRPC API on
the loopback interface with faster-whisper behind it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from pipeline.asr import AsrConfig
from pipeline.asr.chunking import place_words, speech_chunks
from pipeline.records import SpeechRegion, Word

__all__ = ["RivaBackend", "RivaError", "riva_language_code", "to_pcm16"]

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = 0.5
"""Wait before the first retry; doubled for each further retry (0.5 s, 1 s, 2 s, ...)."""

RETRY_BACKOFF_MAX_S = 8.0
"""Longest wait between two retries."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""gRPC message limit of the client channel. A 28 s chunk is about 0.9 MB of PCM16, but the
gRPC default of 4 MB would cap ``max_chunk`` at about 2 minutes."""

# Riva wants a BCP-47 tag with a region; the pipeline's config carries Whisper-style codes.
_LANGUAGE_CODES = {
    "en": "en-US",
    "es": "es-US",
    "de": "de-DE",
    "fr": "fr-FR",
    "it": "it-IT",
    "pt": "pt-BR",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "ru": "ru-RU",
    "zh": "zh-CN",
    "hi": "hi-IN",
    "ar": "ar-AR",
}


class RivaError(RuntimeError):
    """A Riva request failed; the message names the server URI and the gRPC status."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def riva_language_code(language: str) -> str:
    """Map a language code such as ``en`` to the BCP-47 tag Riva expects (``en-US``).

    Tags that already carry a region (``en-GB``) are passed through.
    """
    if not language:
        raise ValueError("language must not be empty")
    if "-" in language:
        return language
    try:
        return _LANGUAGE_CODES[language.lower()]
    except KeyError:
        raise ValueError(
            f"no Riva language tag known for {language!r}: pass a BCP-47 tag such as 'en-US'"
        ) from None


def to_pcm16(samples: np.ndarray) -> bytes:
    """Encode float audio in [-1, 1] as 16-bit little-endian PCM (Riva's ``LINEAR_PCM``)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (np.round(clipped * 32767.0)).astype("<i2").tobytes()


def _import_riva() -> tuple[Any, Any]:
    """``riva.client`` and its ``riva_asr_pb2`` module, imported on first use."""
    try:
        import riva.client
        from riva.client.proto import riva_asr_pb2
    except ImportError as e:
        raise RuntimeError(
            "the 'riva' ASR backend requires nvidia-riva-client: pip install nvidia-riva-client"
        ) from e
    return riva.client, riva_asr_pb2


def _word_confidence(value: float) -> float:
    """Riva word confidence as a probability in [0, 1].

    Riva's Conformer/Parakeet models report a probability in [0, 1]; the proto allows a
    natural-log probability (negative), which is mapped back with ``exp``.
    """
    if value < 0.0:
        value = math.exp(value)
    return float(min(1.0, max(0.0, value)))


class RivaBackend:
    """Recognise speech with an NVIDIA Riva server.

    The constructor opens a lazy gRPC channel and does not touch the network; the first
    request connects. The backend holds a gRPC channel, so build it on the worker (in
    ``DoFn.setup()``), not in the pipeline graph.

    Attributes:
        name: ``riva``.
        model_name: ``riva@<uri>``, or ``riva:<model>@<uri>`` when a server model is named.
        uri: ``host:port`` of the server.
    """

    name = "riva"

    def __init__(self, config: AsrConfig, *, model: str = "") -> None:
        """Build a client for ``config.riva_uri``.

        Args:
            config: ASR options; uses ``riva_uri``, ``riva_use_ssl``, ``riva_timeout``,
                ``riva_max_retries``, ``language``, ``region_padding`` and ``max_chunk``.
            model: Riva model to request (``RecognitionConfig.model``); empty lets the server
                choose from language and sample rate.

        Raises:
            ValueError: If an option is out of range.
            RuntimeError: If nvidia-riva-client is not installed.
        """
        if not config.riva_uri or ":" not in config.riva_uri:
            raise ValueError(f"riva_uri must be host:port, got {config.riva_uri!r}")
        if config.riva_timeout <= 0:
            raise ValueError(f"riva_timeout must be positive, got {config.riva_timeout}")
        if config.riva_max_retries < 0:
            raise ValueError(f"riva_max_retries must be >= 0, got {config.riva_max_retries}")
        if config.max_chunk <= 0:
            raise ValueError(f"max_chunk must be positive, got {config.max_chunk}")
        self.config = config
        self.uri = config.riva_uri
        self.model = model
        self.language_code = riva_language_code(config.language)
        self.model_name = f"riva:{model}@{self.uri}" if model else f"riva@{self.uri}"
        self._riva, self._proto = _import_riva()
        self._auth = self._riva.Auth(
            uri=self.uri,
            use_ssl=config.riva_use_ssl,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self._service = self._riva.ASRService(self._auth)

    def close(self) -> None:
        """Close the gRPC channel."""
        self._auth.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recognition_config(self, sample_rate: int) -> Any:
        """The ``RecognitionConfig`` sent with every request at ``sample_rate``."""
        return self._riva.RecognitionConfig(
            encoding=self._riva.AudioEncoding.LINEAR_PCM,
            sample_rate_hertz=sample_rate,
            language_code=self.language_code,
            max_alternatives=1,
            enable_automatic_punctuation=True,
            enable_word_time_offsets=True,
            audio_channel_count=1,
            model=self.model,
        )

    def transcribe(
        self, samples: np.ndarray, sample_rate: int, regions: Sequence[SpeechRegion]
    ) -> list[Word]:
        """Recognise the speech in ``regions`` of ``samples``.

        Args:
            samples: Mono float32 audio in [-1, 1].
            sample_rate: Rate of ``samples`` (16000 in the pipeline; the server resamples
                other rates it supports).
            regions: Speech regions from the VAD; audio outside them is not sent.

        Returns:
            Words in time order, times in seconds from the start of ``samples``, with Riva's
            word confidence as ``probability``.

        Raises:
            ValueError: If ``samples`` is not mono or ``sample_rate`` is not positive.
            RivaError: If the server cannot be reached after the retries, or rejects a
                request.
        """
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples of shape (frames,), got {samples.shape}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        duration = len(samples) / sample_rate
        chunks = speech_chunks(
            regions,
            duration,
            padding=self.config.region_padding,
            max_chunk=self.config.max_chunk,
        )
        config = self.recognition_config(sample_rate)
        words: list[Word] = []
        for chunk in chunks:
            audio = to_pcm16(samples[int(chunk.start * sample_rate) : int(chunk.end * sample_rate)])
            response = self._recognize(audio, config)
            words.extend(
                Word(w.start + chunk.start, w.end + chunk.start, w.text, w.probability)
                for w in self._response_words(response)
            )
        logger.debug("riva: %d chunks, %d words from %s", len(chunks), len(words), self.uri)
        return place_words(words, chunks) if chunks else []

    def server_models(self) -> list[str]:
        """Names of the ASR models the server offers (``GetRivaSpeechRecognitionConfig``).

        Raises:
            RivaError: If the server cannot be reached or does not answer.
        """
        response = self._call(
            "GetRivaSpeechRecognitionConfig",
            lambda: self._service.stub.GetRivaSpeechRecognitionConfig(
                self._proto.RivaSpeechRecognitionConfigRequest(),
                metadata=self._auth.get_auth_metadata(),
                timeout=self.config.riva_timeout,
            ),
        )
        return [c.model_name for c in response.model_config]

    def _recognize(self, audio: bytes, config: Any) -> Any:
        # ASRService.offline_recognize takes no deadline, so call its stub the same way it
        # does, with the configured timeout added.
        request = self._proto.RecognizeRequest(config=config, audio=audio)
        return self._call(
            "Recognize",
            lambda: self._service.stub.Recognize(
                request, metadata=self._auth.get_auth_metadata(), timeout=self.config.riva_timeout
            ),
        )

    def _call(self, method: str, send: Any) -> Any:
        import grpc

        retryable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
        attempts = self.config.riva_max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return send()
            except grpc.RpcError as e:
                code = e.code() if callable(getattr(e, "code", None)) else None
                details = e.details() if callable(getattr(e, "details", None)) else str(e)
                code_name = code.name if code is not None else "UNKNOWN"
                if code not in retryable:
                    raise RivaError(
                        f"Riva server at {self.uri} rejected {method} ({code_name}): {details}",
                        code_name,
                    ) from e
                if attempt == attempts:
                    hint = (
                        "is the server running and reachable?"
                        if code == grpc.StatusCode.UNAVAILABLE
                        else f"no answer within riva_timeout={self.config.riva_timeout:g} s"
                    )
                    raise RivaError(
                        f"Riva server at {self.uri} could not serve {method} ({code_name}) "
                        f"after {attempts} attempt(s): {hint} Last error: {details}",
                        code_name,
                    ) from e
                wait = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** (attempt - 1))
                logger.warning(
                    "Riva %s at %s failed (%s), retry %d/%d in %.1f s",
                    method,
                    self.uri,
                    code_name,
                    attempt,
                    attempts - 1,
                    wait,
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _response_words(response: Any) -> list[Word]:
        """Words of the top alternative of every result, times in seconds of the request."""
        words: list[Word] = []
        for result in response.results:
            if not result.alternatives:
                continue
            for info in result.alternatives[0].words:
                text = info.word.strip()
                if not text:
                    continue
                start = info.start_time / 1000.0
                end = max(start, info.end_time / 1000.0)
                words.append(Word(start, end, text, _word_confidence(info.confidence)))
        return words
