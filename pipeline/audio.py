"""Decoding and validating call recordings at the pipeline's boundary.

Every input is turned into one shape here, :class:`~pipeline.records.CallAudio`: float32
samples of shape ``(channels, frames)`` at 16 kHz. libsndfile (through soundfile) reads WAV
(PCM, 8 kHz mu-law and A-law telephony WAV), FLAC, OGG and MP3; anything else goes through
FFmpeg (PyAV, which faster-whisper already depends on). Problems that make a file unusable
raise :class:`AudioError` with a precise code and message; problems that still allow
processing become warnings on the call.

The order of the checks bounds the work a bad file can cause: the file's type and size come
from ``stat`` before it is opened (a FIFO or ``/dev/zero`` is never read), the rate and
duration from the header before decoding, and decoding goes block by block against a frame
budget and a wall-clock deadline. After decoding, the decoded length is compared with the
length the header declares, non-finite samples are silenced and two channels carrying the
same audio are merged into one.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import TaggedOutput

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import CallAudio, CallSpec, printable

logger = logging.getLogger(__name__)

MODEL_SAMPLE_RATE = 16000
HEADERS = "headers"
# Frames decoded per step; the deadline and length checks run between steps (1 s at 16 kHz),
# and a file cut short keeps the blocks decoded before the cut.
BLOCK_FRAMES = 16384


@dataclass(frozen=True)
class AudioConfig:
    """Validation limits of the decode stage.

    Attributes:
        min_sample_rate: Lowest accepted rate; 8 kHz is narrow-band telephony, the floor
            for usable speech recognition.
        max_sample_rate: Highest accepted rate.
        max_duration: Longest accepted call, in seconds, read from the header before
            decoding (and enforced while decoding when a header does not say). Four hours
            bounds a worker's memory (about 0.9 GB of 16 kHz float32 stereo).
        max_file_mb: Largest accepted file, in MiB, checked from the file's size before it
            is opened. 2048 MiB holds 4 h of 48 kHz 16-bit stereo PCM (1.3 GiB) with room.
        decode_timeout: Wall-clock seconds allowed for decoding one file, checked between
            blocks. Decoding runs at hundreds of times real time, so 10 minutes is only
            reached by a pathological file.
        max_channels: Most channels accepted, read from the header: a call has two parties,
            a multitrack logger or conference bridge a few dozen tracks; a header claiming
            thousands would make one block of frames gigabytes.
        silence_dbfs: A channel whose peak stays below this level is reported as silent.
        truncated_fraction: A file whose decoded length is below this fraction of the
            length its header declares is dead-lettered as ``TruncatedAudio``; a smaller
            shortfall is a warning.
        length_tolerance: Seconds of shortfall that are not reported: encoder priming and
            padding (an MP3 frame is 1152 samples, 0.14 s at 8 kHz) make a sound file differ
            from its header by a fraction of a second.
        same_channel_correlation: Two channels whose samples correlate at least this much
            over the loud stretches carry the same audio (a mono recording saved as
            stereo); they are processed as one channel of unknown speaker. Two real parties
            on separate channels correlate far below 0.5, even with echo.
        max_bad_sample_fraction: A file whose NaN or infinite samples exceed this fraction
            is dead-lettered as ``CorruptSamples``; fewer are silenced with a warning.
    """

    min_sample_rate: int = 8000
    max_sample_rate: int = 192000
    max_duration: float = 4 * 3600.0
    max_file_mb: float = 2048.0
    decode_timeout: float = 600.0
    max_channels: int = 32
    silence_dbfs: float = -90.0
    truncated_fraction: float = 0.9
    length_tolerance: float = 0.5
    same_channel_correlation: float = 0.98
    max_bad_sample_fraction: float = 0.5


class AudioError(ValueError):
    """A recording that cannot be processed; ``code`` names the kind of problem."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Decoded:
    """What the decoder read from a file.

    Attributes:
        samples: float32 array ``(channels, frames)`` at ``sample_rate``, as decoded.
        sample_rate: Rate of the file.
        source_format: Container/codec, e.g. ``WAV/PCM_16``.
        declared_frames: Frames the header says the file holds, when it says.
        warnings: Problems met while decoding that did not stop it.
    """

    samples: np.ndarray
    sample_rate: int
    source_format: str
    declared_frames: int | None = None
    warnings: tuple[str, ...] = ()


# --- opening ---------------------------------------------------------------------------------


def _is_remote(uri: str) -> bool:
    return "://" in uri


def open_audio(uri: str, config: AudioConfig | None = None) -> BinaryIO:
    """Open a recording for reading after checking what it is and how big.

    Local paths are checked with ``stat`` before they are opened, so a directory, a FIFO, a
    device or an oversized file is refused without reading a byte. Other URIs go through
    Beam's filesystems (``gs://``, ``s3://`` where installed).

    Raises:
        AudioError: ``FileNotFound``, ``DanglingSymlink``, ``SymlinkLoop``,
            ``PermissionDenied``, ``IsADirectory``, ``NotRegularFile``, ``EmptyFile``,
            ``FileTooLarge`` or ``UnreadableUri``.
    """
    config = config or AudioConfig()
    shown = printable(uri)
    if _is_remote(uri):
        return _open_remote(uri, shown, config)
    try:
        info = os.stat(uri)
    except FileNotFoundError as e:
        if os.path.islink(uri):
            raise AudioError(
                "DanglingSymlink", f"{shown}: symbolic link to a missing file"
            ) from e
        raise AudioError("FileNotFound", f"{shown}: no such file") from e
    except PermissionError as e:
        raise AudioError("PermissionDenied", f"{shown}: permission denied") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioError("SymlinkLoop", f"{shown}: symbolic link loop") from e
        raise AudioError("FileNotFound", f"{shown}: cannot stat: {e.strerror}") from e
    _check_stat(info, shown, config)
    try:
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the worker.
        fd = os.open(uri, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError as e:
        raise AudioError("PermissionDenied", f"{shown}: permission denied") from e
    except IsADirectoryError as e:
        raise AudioError("IsADirectory", f"{shown}: is a directory") from e
    except OSError as e:
        raise AudioError("FileNotFound", f"{shown}: cannot open: {e.strerror}") from e
    try:
        _check_stat(os.fstat(fd), shown, config)
    except AudioError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check_stat(info: os.stat_result, shown: str, config: AudioConfig) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise AudioError("IsADirectory", f"{shown}: is a directory, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(info.st_mode)
            else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket" if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )
        raise AudioError("NotRegularFile", f"{shown}: is {kind}, not a regular file")
    _check_size(info.st_size, shown, config)


def _check_size(size: int, shown: str, config: AudioConfig) -> None:
    if size == 0:
        raise AudioError("EmptyFile", f"{shown}: the file is empty (0 bytes)")
    if size > config.max_file_mb * 2**20:
        raise AudioError(
            "FileTooLarge",
            f"{shown}: {size / 2**20:.0f} MiB is larger than the limit of "
            f"{config.max_file_mb:.0f} MiB (raise --max-file-mb to process it)",
        )


def _open_remote(uri: str, shown: str, config: AudioConfig) -> BinaryIO:
    from apache_beam.io.filesystems import FileSystems

    try:
        matches = FileSystems.match([uri])[0].metadata_list
    except FileNotFoundError as e:
        raise AudioError("FileNotFound", f"{shown}: no such file") from e
    except Exception as e:  # noqa: BLE001 - any filesystem failure is this input's problem
        # Beam raises BeamIOError for a missing object and ValueError (or an assertion in
        # an optional client) for a scheme it cannot serve.
        if "not found" in str(e).lower() or "no such" in str(e).lower():
            raise AudioError("FileNotFound", f"{shown}: no such file") from e
        raise AudioError("UnreadableUri", f"{shown}: cannot read: {type(e).__name__}: {e}") from e
    if not matches:
        raise AudioError("FileNotFound", f"{shown}: no such file")
    _check_size(matches[0].size_in_bytes, shown, config)
    try:
        return FileSystems.open(uri, compression_type="uncompressed")  # type: ignore[no-any-return]
    except Exception as e:  # noqa: BLE001
        raise AudioError("UnreadableUri", f"{shown}: cannot open: {type(e).__name__}: {e}") from e


def read_bytes(uri: str, config: AudioConfig | None = None) -> bytes:
    """The whole content of a recording, after :func:`open_audio`'s checks."""
    with open_audio(uri, config) as f:
        return f.read()


# --- decoding --------------------------------------------------------------------------------


class _Budget:
    """Frame and wall-clock limits of one decode."""

    def __init__(self, uri: str, config: AudioConfig):
        self.uri = uri
        self.config = config
        self.deadline = time.monotonic() + config.decode_timeout

    def check_header(self, rate: int, frames: int | None, channels: int) -> None:
        config, shown = self.config, printable(self.uri)
        if channels > config.max_channels:
            raise AudioError(
                "TooManyChannels",
                f"{shown}: {channels} channels, more than the limit of {config.max_channels}",
            )
        if not config.min_sample_rate <= rate <= config.max_sample_rate:
            raise AudioError(
                "UnsupportedSampleRate",
                f"{shown}: sample rate {rate} Hz is outside the supported "
                f"{config.min_sample_rate}-{config.max_sample_rate} Hz",
            )
        if frames is not None:
            self.check_length(frames / rate, "declares")

    def check_length(self, seconds: float, verb: str) -> None:
        if seconds > self.config.max_duration:
            raise AudioError(
                "TooLong",
                f"{printable(self.uri)}: the file {verb} {_span(seconds)}, longer than "
                f"the limit of {_span(self.config.max_duration)} "
                "(raise --max-duration to process it)",
            )

    def check_progress(self, frames: int, rate: int) -> None:
        self.check_length(frames / rate, "holds more than")
        if time.monotonic() > self.deadline:
            raise AudioError(
                "DecodeTimeout",
                f"{printable(self.uri)}: decoding took longer than "
                f"{self.config.decode_timeout:.0f} s",
            )


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.1f} s"


def _decode_soundfile(f: BinaryIO, head: bytes, budget: _Budget) -> Decoded:
    import soundfile

    warnings: list[str] = []
    with soundfile.SoundFile(f) as sf:
        fmt = f"{sf.format}/{sf.subtype}"
        rate = sf.samplerate
        # libsndfile clamps a WAV's frame count to the bytes present; the declared length is
        # in the header's data chunk. Other formats report their header's count (FLAC's
        # STREAMINFO, MP3's Xing/Info frame count).
        declared = _wav_declared_frames(head) if sf.format in ("WAV", "WAVEX", "RF64") else None
        if declared is None and sf.format != "OGG" and sf.frames > 0:
            declared = int(sf.frames)
        budget.check_header(rate, declared, sf.channels)
        blocks: list[np.ndarray] = []
        total = 0
        while True:
            try:
                block = sf.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            except soundfile.LibsndfileError as e:
                if not total:
                    code = "TruncatedAudio" if declared else "CorruptAudio"
                    raise AudioError(
                        code, f"{printable(budget.uri)}: {fmt} header read, but no audio "
                        f"decodes ({_stable(e) or type(e).__name__})"
                    ) from e
                warnings.append(f"decoding stopped at {total / rate:.2f} s: {_stable(e)}")
                break
            if not len(block):
                break
            blocks.append(block.T)
            total += len(block)
            budget.check_progress(total, rate)
        channels = sf.channels
    if sf.format == "OGG":
        warnings.extend(_ogg_end_warning(f))
    samples = (
        np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), dtype=np.float32)
    )
    return Decoded(np.ascontiguousarray(samples), rate, fmt, declared, tuple(warnings))


def _wav_declared_frames(head: bytes) -> int | None:
    """Frames a RIFF/RF64 WAV header declares (its data chunk size / block size), if any."""
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
        return None
    pos, block_align, data_size = 12, 0, None
    ds64_size = None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt " and body + 14 <= len(head):
            block_align = struct.unpack_from("<H", head, body + 12)[0]
        elif chunk == b"ds64" and body + 24 <= len(head):
            ds64_size = struct.unpack_from("<Q", head, body + 8)[0]
        elif chunk == b"data":
            data_size = ds64_size if size == 0xFFFFFFFF and ds64_size else size
            break
        pos = body + size + (size & 1)
    # 0 and 0xFFFFFFFF are what streaming writers leave when they never patch the header.
    if not block_align or data_size in (None, 0, 0xFFFFFFFF):
        return None
    return int(data_size) // block_align


def _ogg_end_warning(f: BinaryIO) -> list[str]:
    """A warning when an Ogg file does not end with a complete end-of-stream page.

    Ogg has no declared length; a file cut short ends without its EOS page.
    """
    try:
        f.seek(0, io.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read()
    except (OSError, ValueError):
        return []
    start = tail.rfind(b"OggS")
    if start < 0 or start + 27 > len(tail):
        return ["the Ogg stream ends without an end-of-stream page: the file may be truncated"]
    n_segments = tail[start + 26]
    table = tail[start + 27 : start + 27 + n_segments]
    complete = len(table) == n_segments and start + 27 + n_segments + sum(table) == len(tail)
    if not complete or not tail[start + 5] & 0x04:
        return ["the Ogg stream ends without an end-of-stream page: the file may be truncated"]
    return []


def _decode_ffmpeg(f: BinaryIO, budget: _Budget) -> Decoded:
    import av

    with av.open(f, mode="r") as container:
        if not container.streams.audio:
            raise AudioError("CorruptAudio", f"{printable(budget.uri)}: no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate
        declared = None
        if stream.duration and stream.time_base:
            declared = int(round(float(stream.duration * stream.time_base) * rate))
        elif container.duration:
            declared = int(round(container.duration / 1e6 * rate))
        budget.check_header(rate, declared, stream.channels)
        chunks = []
        total = 0
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            if array.dtype.kind == "i":
                scale = float(np.iinfo(array.dtype.type).max)  # type: ignore[type-var]
                array = array.astype(np.float32) / scale
            if frame.format.is_packed:
                array = array.reshape(-1, frame.layout.nb_channels).T
            chunks.append(array.astype(np.float32))
            total += array.shape[1]
            budget.check_progress(total, rate)
        fmt = f"{container.format.name}/{stream.codec_context.name}"
    if not chunks:
        raise AudioError("EmptyAudio", f"{printable(budget.uri)}: the file holds no audio frames")
    return Decoded(np.concatenate(chunks, axis=1), rate, fmt, declared)


def _stable(error: BaseException) -> str:
    # libsndfile names a buffer by its address and an open file by its descriptor: keep
    # messages stable across runs so the dead letters of a re-run are the same rows.
    return re.sub(r"<[^<>]*(?: at 0x[0-9a-fA-F]+| name=\d+)>", "<data>", str(error))


def decode_file(f: BinaryIO, uri: str = "", config: AudioConfig | None = None) -> Decoded:
    """Decode an open recording within ``config``'s limits.

    Raises:
        AudioError: Not audio (``CorruptAudio``), no frames, an unsupported rate, a header
            or content longer than allowed (``TooLong``), or decoding past its deadline.
    """
    budget = _Budget(uri, config or AudioConfig())
    head = f.read(65536)
    if not head:
        raise AudioError("EmptyFile", f"{printable(uri)}: the file is empty (0 bytes)")
    f.seek(0)
    try:
        return _decode_soundfile(f, head, budget)
    except AudioError:
        raise
    except Exception as sf_error:  # libsndfile does not know it: try FFmpeg
        try:
            f.seek(0)
            return _decode_ffmpeg(f, budget)
        except AudioError:
            raise
        except Exception:  # noqa: BLE001 - the error of the first decoder is the useful one
            kind = "text, not audio" if _looks_like_text(head[:16]) else "not a readable audio file"
            raise AudioError(
                "CorruptAudio",
                f"{printable(uri)}: {kind} ({type(sf_error).__name__}: {_stable(sf_error)})",
            ) from sf_error


def decode(data: bytes | BinaryIO, uri: str = "") -> tuple[np.ndarray, int, str]:
    """Decode audio bytes (or an open file) to ``(samples[channels, frames], rate, format)``."""
    f = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    decoded = decode_file(f, uri)
    return decoded.samples, decoded.sample_rate, decoded.source_format


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


# --- checks after decoding -------------------------------------------------------------------


def check_length(decoded: Decoded, uri: str, config: AudioConfig) -> list[str]:
    """Compare the decoded length with the declared one.

    Raises:
        AudioError: ``TruncatedAudio`` when less than ``config.truncated_fraction`` of the
            declared length decoded.
    """
    declared, actual = decoded.declared_frames, decoded.samples.shape[1]
    rate = decoded.sample_rate
    if not declared or (declared - actual) / rate <= config.length_tolerance:
        return []
    fraction = actual / declared
    message = (
        f"the header declares {declared / rate:.2f} s but only {actual / rate:.2f} s "
        f"({fraction:.0%}) decoded"
    )
    if fraction < config.truncated_fraction:
        raise AudioError("TruncatedAudio", f"{printable(uri)}: truncated: {message}")
    return [f"possibly truncated: {message}"]


def silence_bad_samples(samples: np.ndarray, uri: str, config: AudioConfig) -> list[str]:
    """Zero NaN and infinite samples in place; warn, or refuse a file that is mostly bad.

    Raises:
        AudioError: ``CorruptSamples`` when more than ``config.max_bad_sample_fraction`` of
            the samples are not finite.
    """
    bad = ~np.isfinite(samples)
    count = int(bad.sum())
    if not count:
        return []
    fraction = count / bad.size
    if fraction > config.max_bad_sample_fraction:
        raise AudioError(
            "CorruptSamples",
            f"{printable(uri)}: {fraction:.0%} of the samples are NaN or infinite",
        )
    samples[bad] = 0.0
    return [f"{count} NaN or infinite samples ({fraction:.2%}) silenced"]


def channel_correlation(samples: np.ndarray, rate: int, floor_dbfs: float = -50.0) -> float | None:
    """Correlation of two channels over the 20 ms windows where either is louder than
    ``floor_dbfs``; ``None`` when there are no such windows or a channel is constant there."""
    window = max(1, rate // 50)
    n = samples.shape[1] // window * window
    if n == 0:
        return None
    frames = samples[:, :n].reshape(2, -1, window)
    rms = np.sqrt(np.einsum("cwi,cwi->cw", frames, frames) / window)
    loud = np.max(rms, axis=0) > 10 ** (floor_dbfs / 20)
    if not loud.any():
        return None
    a, b = frames[0][loud].ravel(), frames[1][loud].ravel()
    if float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


# --- the call --------------------------------------------------------------------------------


def load_call(spec: CallSpec, config: AudioConfig | None = None) -> CallAudio:
    """Read, decode, validate and resample the recording of ``spec``.

    Raises:
        AudioError: The file is missing, not a regular file, too large, empty, not audio,
            truncated, mostly NaN, at an unsupported rate, too long, or its channel map
            does not fit the file.
    """
    config = config or AudioConfig()
    with open_audio(spec.audio, config) as f:
        decoded = decode_file(f, spec.audio, config)
    shown = printable(spec.audio)
    samples, rate = decoded.samples, decoded.sample_rate
    warnings = list(decoded.warnings)
    n_channels, n_frames = samples.shape
    if n_frames == 0:
        raise AudioError("EmptyAudio", f"{shown}: the file holds no audio frames")
    warnings += check_length(decoded, spec.audio, config)
    duration = n_frames / rate
    if n_channels == 1:
        warnings.append("mono recording: speakers and roles come from diarization")
    else:
        for role, channel in (("agent", spec.agent_channel), ("customer", spec.customer_channel)):
            if not 0 <= channel < n_channels:
                raise AudioError(
                    "BadChannelMap",
                    f"{shown}: {role} channel {channel} does not exist in a "
                    f"{n_channels}-channel file",
                )
        if spec.agent_channel == spec.customer_channel:
            raise AudioError(
                "BadChannelMap", f"{shown}: agent and customer share channel {spec.agent_channel}"
            )
        if n_channels > 2:
            warnings.append(
                f"{n_channels} channels: only agent channel {spec.agent_channel} and customer "
                f"channel {spec.customer_channel} are used"
            )
            samples = samples[[spec.agent_channel, spec.customer_channel]]
            spec = replace(spec, agent_channel=0, customer_channel=1)
    warnings += silence_bad_samples(samples, spec.audio, config)
    np.clip(samples, -1.0, 1.0, out=samples)
    if samples.shape[0] == 2:
        corr = channel_correlation(samples, rate)
        if corr is not None and corr >= config.same_channel_correlation:
            warnings.append(
                f"both channels carry the same audio (correlation {corr:.3f}): processed as "
                "one channel, speaker roles are unknown"
            )
            samples = samples.mean(axis=0, keepdims=True)
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
        source_format=decoded.source_format,
        duration=round(duration, 3),
        warnings=tuple(warnings),
    )


def _role_name(spec: CallSpec, channel: int, num_channels: int) -> str:
    if num_channels == 1:
        return "mono"
    return {spec.agent_channel: "agent", spec.customer_channel: "customer"}.get(channel, "unused")


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
