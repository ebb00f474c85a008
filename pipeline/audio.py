"""Decoding and validating call recordings at the pipeline's boundary.

Every input is turned into one shape here, :class:`~pipeline.records.CallAudio`: float32
samples of shape ``(channels, frames)`` at 16 kHz. libsndfile (through soundfile) reads WAV
(PCM, 8 kHz mu-law and A-law telephony WAV), FLAC, OGG and MP3; anything else goes through
FFmpeg (PyAV, which faster-whisper already depends on). Problems that make a file unusable
raise :class:`AudioError` with a precise code and message; problems that still allow
processing become warnings on the call.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import TaggedOutput

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import CallAudio, CallSpec

logger = logging.getLogger(__name__)

MODEL_SAMPLE_RATE = 16000
HEADERS = "headers"


@dataclass(frozen=True)
class AudioConfig:
    """Validation limits of the decode stage.

    Attributes:
        min_sample_rate: Lowest accepted rate; 8 kHz is narrow-band telephony, the floor
            for usable speech recognition.
        max_sample_rate: Highest accepted rate.
        max_duration: Longest accepted call, in seconds. Four hours bounds a worker's
            memory (about 0.9 GB of 16 kHz float32 stereo); longer files are dead-lettered.
        silence_dbfs: A channel whose peak stays below this level is reported as silent.
    """

    min_sample_rate: int = 8000
    max_sample_rate: int = 192000
    max_duration: float = 4 * 3600.0
    silence_dbfs: float = -90.0


class AudioError(ValueError):
    """A recording that cannot be processed; ``code`` names the kind of problem."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def read_bytes(uri: str) -> bytes:
    """Read a local path or any URI that Beam's filesystems know (gs://, s3://, ...)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(uri, compression_type="uncompressed") as f:
            return f.read()
    except FileNotFoundError as e:
        raise AudioError("FileNotFound", f"{uri}: no such file") from e
    except OSError as e:
        # Beam wraps a missing file in BeamIOError (an OSError).
        raise AudioError("FileNotFound", f"{uri}: cannot open: {e}") from e


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int, str]:
    import soundfile

    with soundfile.SoundFile(io.BytesIO(data)) as f:
        fmt = f"{f.format}/{f.subtype}"
        rate = f.samplerate
        frames = f.read(dtype="float32", always_2d=True)
    return frames.T.copy(), rate, fmt


def _decode_ffmpeg(data: bytes) -> tuple[np.ndarray, int, str]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks = []
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            if array.dtype.kind == "i":
                scale = float(np.iinfo(array.dtype.type).max)  # type: ignore[type-var]
                array = array.astype(np.float32) / scale
            if frame.format.is_packed:
                array = array.reshape(-1, frame.layout.nb_channels).T
            chunks.append(array.astype(np.float32))
        fmt = f"{container.format.name}/{stream.codec_context.name}"
    if not chunks:
        raise AudioError("EmptyAudio", "the file holds no audio frames")
    return np.concatenate(chunks, axis=1), rate, fmt


def decode(data: bytes, uri: str = "") -> tuple[np.ndarray, int, str]:
    """Decode audio bytes to ``(samples[channels, frames], sample_rate, format)``."""
    if len(data) == 0:
        raise AudioError("EmptyFile", f"{uri}: the file is empty (0 bytes)")
    try:
        return _decode_soundfile(data)
    except Exception as sf_error:  # libsndfile does not know it: try FFmpeg
        try:
            return _decode_ffmpeg(data)
        except AudioError:
            raise
        except Exception:
            head = data[:16]
            kind = "text, not audio" if _looks_like_text(head) else "not a readable audio file"
            # libsndfile names the in-memory buffer by its address: keep messages stable
            # across runs so dead letters of a re-run are the same rows.
            detail = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "<data>", str(sf_error))
            raise AudioError(
                "CorruptAudio", f"{uri}: {kind} ({type(sf_error).__name__}: {detail})"
            ) from sf_error


def _looks_like_text(head: bytes) -> bool:
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def resample(samples: np.ndarray, rate: int, target: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of ``samples[..., frames]`` from ``rate`` to ``target``."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g, axis=-1).astype(np.float32)


def load_call(spec: CallSpec, config: AudioConfig | None = None) -> CallAudio:
    """Read, decode, validate and resample the recording of ``spec``.

    Raises:
        AudioError: The file is missing, empty, not audio, truncated beyond use, at an
            unsupported rate, too long, or its channel map does not fit the file.
    """
    config = config or AudioConfig()
    data = read_bytes(spec.audio)
    samples, rate, fmt = decode(data, spec.audio)
    warnings: list[str] = []

    if not config.min_sample_rate <= rate <= config.max_sample_rate:
        raise AudioError(
            "UnsupportedSampleRate",
            f"{spec.audio}: sample rate {rate} Hz is outside the supported "
            f"{config.min_sample_rate}-{config.max_sample_rate} Hz",
        )
    n_channels, n_frames = samples.shape
    if n_frames == 0:
        raise AudioError("EmptyAudio", f"{spec.audio}: the file holds no audio frames")
    duration = n_frames / rate
    if duration > config.max_duration:
        raise AudioError(
            "TooLong",
            f"{spec.audio}: {duration / 3600:.1f} h is longer than the limit of "
            f"{config.max_duration / 3600:.1f} h (raise --max-duration to process it)",
        )
    if n_channels == 1:
        warnings.append("mono recording: speakers and roles come from diarization")
    else:
        for role, channel in (("agent", spec.agent_channel), ("customer", spec.customer_channel)):
            if not 0 <= channel < n_channels:
                raise AudioError(
                    "BadChannelMap",
                    f"{spec.audio}: {role} channel {channel} does not exist in a "
                    f"{n_channels}-channel file",
                )
        if spec.agent_channel == spec.customer_channel:
            raise AudioError(
                "BadChannelMap",
                f"{spec.audio}: agent and customer share channel {spec.agent_channel}",
            )
        if n_channels > 2:
            warnings.append(
                f"{n_channels} channels: only agent channel {spec.agent_channel} and customer "
                f"channel {spec.customer_channel} are used"
            )
            samples = samples[[spec.agent_channel, spec.customer_channel]]
            spec = _remap_channels(spec)
    floor = 10 ** (config.silence_dbfs / 20)
    for channel in range(samples.shape[0]):
        if float(np.max(np.abs(samples[channel]))) <= floor:
            role = _role_name(spec, channel, samples.shape[0])
            warnings.append(f"channel {channel} ({role}) is digitally silent")
    if rate != MODEL_SAMPLE_RATE and rate not in (8000, 16000, 44100, 48000, 22050, 32000):
        warnings.append(f"unusual sample rate {rate} Hz, resampled to {MODEL_SAMPLE_RATE} Hz")
    audio = resample(samples, rate)
    return CallAudio(
        spec=spec,
        samples=np.clip(audio, -1.0, 1.0),
        sample_rate=MODEL_SAMPLE_RATE,
        source_sample_rate=rate,
        source_format=fmt,
        duration=round(duration, 3),
        warnings=tuple(warnings),
    )


def _role_name(spec: CallSpec, channel: int, num_channels: int) -> str:
    if num_channels == 1:
        return "mono"
    return {spec.agent_channel: "agent", spec.customer_channel: "customer"}.get(channel, "unused")


def _remap_channels(spec: CallSpec) -> CallSpec:
    from dataclasses import replace

    return replace(spec, agent_channel=0, customer_channel=1)


class DecodeFn(StageFn):
    """Decode one call; emit its header and one element per channel."""

    stage = "decode"

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.config = config

    def run(self, element: CallSpec) -> Iterator[Any]:
        started = time.perf_counter()
        audio = load_call(element, self.config)
        for warning in audio.warnings:
            logger.warning("%s: %s", audio.call_id, warning)
        yield TaggedOutput(HEADERS, audio.header(time.perf_counter() - started))
        for index in range(audio.num_channels):
            yield audio.channel(index)


class DecodeCalls(beam.PTransform):
    """CallSpec -> ChannelAudio (main), CallHeader (``headers``), DeadLetter (``dead_letter``)."""

    def __init__(self, config: AudioConfig | None = None):
        super().__init__()
        self.config = config or AudioConfig()

    def expand(self, specs: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return specs | "DecodeAudio" >> beam.ParDo(DecodeFn(self.config)).with_outputs(
            HEADERS, DEAD_LETTER, main="channels"
        )
