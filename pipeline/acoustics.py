"""Frame-level acoustic features of one channel, kept after the audio is dropped.

The per-channel stage calls :func:`analyze_channel` while the 16 kHz audio is at hand and
stores the result in ``ChannelTranscript.acoustics``. Everything the dynamics stage needs from
the waveform lives here, compactly: loudness and pitch per 10 ms frame as float16 arrays
(about 240 kB for a 10-minute call), plus the spans of keyboard typing and of tonal hold
music found on the channel.

Loudness is RMS level relative to digital full scale (dBFS, ``20 log10 rms``), so a full-scale
square wave reads 0 dBFS and a full-scale sine -3 dBFS. Silence is floored at
``AcousticsConfig.floor_dbfs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import apache_beam as beam
import numpy as np
from scipy import ndimage, signal

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import ChannelAudio, Seconds, SpeechRegion

logger = logging.getLogger(__name__)

__all__ = [
    "AcousticsConfig",
    "ChannelAcoustics",
    "MeasureAcoustics",
    "analyze_channel",
    "power_mean_db",
]


@dataclass(frozen=True)
class AcousticsConfig:
    """Options of the acoustic analysis of one channel.

    Attributes:
        hop: Frame hop in seconds. 10 ms is the usual hop of speech front ends (Kaldi,
            librosa defaults for speech) and resolves syllables.
        floor_dbfs: Level given to digital silence; below any real telephone noise floor.
        pitch_min_hz: Lowest F0 searched. 60 Hz is below typical adult male speech.
        pitch_max_hz: Highest F0 searched. 400 Hz covers raised adult female speech.
        pitch_window: Autocorrelation window in seconds (40 ms holds 2.4 periods at 60 Hz).
        voicing_threshold: Normalised autocorrelation peak above which a frame is voiced
            (0.45, as in common autocorrelation pitch trackers such as Praat's 0.45).
        click_highpass_hz: Keystrokes are broadband clicks; speech energy sits mostly below
            1.5 kHz, so the transient detector looks above it (narrowband calls reach 4 kHz).
        click_subframe: Resolution of the transient detector in seconds (2.5 ms resolves
            the 5-15 ms clicks of a keyboard).
        click_rise_db: A click rises at least this far above the local high-band background
            (median of the surrounding ``click_background`` seconds).
        click_background: Window of the background median, in seconds.
        click_decay_db: ...and has fallen this far again ``click_decay_after`` seconds
            after its peak (a click is over within ~20 ms; a vowel or fricative is not).
        click_decay_after: See ``click_decay_db``.
        click_min_interval: Peaks closer than this are one click (keystroke bounce).
        click_min_dbfs: Absolute high-band level (per 2.5 ms subframe) a click must reach.
            The relative rise alone fired 16 times on a real, digitally gated agent channel
            (median -109 dBFS), where any faint tick rises 12 dB over nothing. The generated
            calls' keystrokes peak at -30 to -27 dBFS in this band over a -69 to -67 dBFS
            line (measured on 10 dynamics fixtures); -55 dBFS leaves 25 dB of margin below
            them and still rejects sounds near a telephone line's noise.
        click_min_background_dbfs: No clicks are looked for where the local high-band
            background is below this: a gated or digitally silent line (the gated channel
            above sat near -109 dBFS; a live analogue or VoIP line with comfort noise sits
            above -80 dBFS).
        typing_max_gap: Clicks closer than this belong to one typing burst. Typists press
            3-8 keys a second, so keys come 120-350 ms apart; a longer pause ends the burst.
        typing_min_clicks: Fewest clicks in a burst; one or two clicks are a mouse or a bump.
        typing_pad: Seconds added after the last click of a burst (its ring-out).
        music_window: Seconds over which hold music is judged.
        music_min_active: Share of frames in the window above the noise floor by
            ``music_active_db``; music is continuous, speech pauses between syllables.
        music_active_db: See ``music_min_active``.
        music_min_similarity: 10th percentile of the cosine similarity of consecutive
            magnitude spectra (active frames of the window) above which the sound is steady
            like held musical notes; speech's moving formants drop it to ~0.8 (measured on
            the generated calls: music 0.95, speech 0.81).
        music_min_duration: Shortest music span reported, in seconds.
    """

    hop: Seconds = 0.01
    floor_dbfs: float = -100.0
    pitch_min_hz: float = 60.0
    pitch_max_hz: float = 400.0
    pitch_window: Seconds = 0.04
    voicing_threshold: float = 0.45
    click_highpass_hz: float = 1500.0
    click_subframe: Seconds = 0.0025
    click_rise_db: float = 12.0
    click_background: Seconds = 0.25
    click_decay_db: float = 10.0
    click_decay_after: Seconds = 0.03
    click_min_interval: Seconds = 0.04
    click_min_dbfs: float = -55.0
    click_min_background_dbfs: float = -85.0
    typing_max_gap: Seconds = 0.35
    typing_min_clicks: int = 3
    typing_pad: Seconds = 0.02
    music_window: Seconds = 2.0
    music_min_active: float = 0.9
    music_active_db: float = 15.0
    music_min_similarity: float = 0.9
    music_min_duration: Seconds = 3.0


@dataclass(frozen=True)
class ChannelAcoustics:
    """Compact acoustic features of one channel.

    Attributes:
        hop: Seconds between frames; frame ``i`` covers ``[i * hop, (i + 1) * hop)``.
        duration: Length of the channel in seconds.
        loudness_db: float16 RMS level per frame in dBFS.
        pitch_hz: float16 F0 per frame in Hz, 0 where unvoiced or outside speech regions.
        noise_floor_db: 10th percentile of the frame levels (the line's noise), dBFS.
        speech_db: Power mean of the frame levels inside speech regions, dBFS, or None.
        typing: Spans of keyboard typing (bursts of click transients), in time order.
        typing_clicks: Number of clicks in each typing span.
        music: Spans of steady tonal sound such as hold music.
    """

    hop: Seconds
    duration: Seconds
    loudness_db: np.ndarray = field(repr=False, compare=False)
    pitch_hz: np.ndarray = field(repr=False, compare=False)
    noise_floor_db: float
    speech_db: float | None
    typing: tuple[tuple[Seconds, Seconds], ...] = ()
    typing_clicks: tuple[int, ...] = ()
    music: tuple[tuple[Seconds, Seconds], ...] = ()

    @property
    def num_frames(self) -> int:
        return int(self.loudness_db.shape[0])

    def frame_range(self, start: Seconds, end: Seconds) -> slice:
        """Frames whose centre lies in ``[start, end)``, clipped to the channel."""
        a = max(0, int(np.floor(start / self.hop + 0.5)))
        b = min(self.num_frames, int(np.floor(end / self.hop + 0.5)))
        return slice(a, max(a, b))

    def loudness(self, start: Seconds, end: Seconds) -> float | None:
        """Power-mean level of ``[start, end)`` in dBFS, or None for an empty span."""
        return power_mean_db(self.loudness_db[self.frame_range(start, end)])

    def pitch(self, start: Seconds, end: Seconds) -> float | None:
        """Median F0 of the voiced frames of ``[start, end)`` in Hz, or None if none."""
        p = self.pitch_hz[self.frame_range(start, end)].astype(np.float32)
        p = p[p > 0]
        return float(np.median(p)) if p.size else None


def power_mean_db(levels_db: np.ndarray) -> float | None:
    """Level in dB of the mean power of frames given in dB (None for no frames)."""
    if levels_db.size == 0:
        return None
    power = np.power(10.0, levels_db.astype(np.float64) / 10.0)
    return float(10.0 * np.log10(np.mean(power)))


def analyze_channel(
    samples: np.ndarray,
    sample_rate: int,
    regions: Sequence[SpeechRegion],
    config: AcousticsConfig | None = None,
) -> ChannelAcoustics:
    """Computes the acoustic features of one channel.

    Args:
        samples: Mono float audio in [-1, 1], shape ``(frames,)``.
        sample_rate: Rate of ``samples`` in Hz (at least 8 kHz).
        regions: The channel's speech regions from the VAD; pitch is tracked inside them
            and typing clicks are only looked for outside them (speech onsets are clicky).
        config: Analysis options.

    Returns:
        The channel's features.

    Raises:
        ValueError: For a non-1-D array or a rate below 8 kHz.
    """
    config = config or AcousticsConfig()
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"analyze_channel takes one channel (1-D samples), got shape {x.shape}")
    if sample_rate < 8000:
        raise ValueError(f"sample rate {sample_rate} Hz is below the 8 kHz telephone rate")
    hop_n = max(1, int(round(config.hop * sample_rate)))
    duration = len(x) / sample_rate
    n_frames = len(x) // hop_n
    levels = _frame_levels(x, hop_n, n_frames, config.floor_dbfs)
    real = levels[levels > config.floor_dbfs + 1.0]
    noise_floor = float(np.percentile(real, 10)) if real.size else config.floor_dbfs
    speech_mask = _region_mask(regions, n_frames, config.hop)
    speech_db = power_mean_db(levels[speech_mask]) if speech_mask.any() else None

    x8 = x if sample_rate == 8000 else signal.resample_poly(x, 8000, sample_rate)
    x8 = np.asarray(x8, dtype=np.float32)
    pitch = _pitch_track(x8, n_frames, speech_mask & (levels > noise_floor + 10.0), config)
    music = _music_spans(x8, levels, noise_floor, config)
    # Note onsets of music are clicky too: look for typing outside speech and music.
    excluded = [(r.start, r.end) for r in regions] + list(music)
    typing, clicks = _typing_spans(x, sample_rate, excluded, config)
    return ChannelAcoustics(
        hop=config.hop,
        duration=duration,
        loudness_db=levels.astype(np.float16),
        pitch_hz=pitch.astype(np.float16),
        noise_floor_db=round(noise_floor, 2),
        speech_db=None if speech_db is None else round(speech_db, 2),
        typing=typing,
        typing_clicks=clicks,
        music=music,
    )


def _frame_levels(x: np.ndarray, hop_n: int, n_frames: int, floor_db: float) -> np.ndarray:
    if n_frames == 0:
        return np.zeros(0, np.float32)
    frames = x[: n_frames * hop_n].reshape(n_frames, hop_n).astype(np.float64)
    power = np.mean(frames * frames, axis=1)
    floor_power = 10.0 ** (floor_db / 10.0)
    return (10.0 * np.log10(np.maximum(power, floor_power))).astype(np.float32)


def _region_mask(regions: Sequence[SpeechRegion], n_frames: int, hop: Seconds) -> np.ndarray:
    mask = np.zeros(n_frames, bool)
    for r in regions:
        a = max(0, int(r.start / hop))
        b = min(n_frames, int(np.ceil(r.end / hop)))
        mask[a:b] = True
    return mask


def _pitch_track(
    x8: np.ndarray, n_frames: int, voiced_candidates: np.ndarray, config: AcousticsConfig
) -> np.ndarray:
    """Autocorrelation F0 per frame at 8 kHz, only on the candidate frames."""
    pitch = np.zeros(n_frames, np.float32)
    idx = np.flatnonzero(voiced_candidates)
    if idx.size == 0:
        return pitch
    rate = 8000
    win = int(config.pitch_window * rate)
    hop8 = config.hop * rate
    lag_min = int(rate / config.pitch_max_hz)
    lag_max = int(rate / config.pitch_min_hz)
    nfft = 1 << int(np.ceil(np.log2(2 * win)))
    padded = np.concatenate([np.zeros(win // 2, np.float32), x8, np.zeros(win, np.float32)])
    window = np.hanning(win).astype(np.float32)
    # The autocorrelation of the window itself, to undo its taper on longer lags.
    w_ac = np.fft.irfft(np.abs(np.fft.rfft(window, nfft)) ** 2)[: lag_max + 1]
    w_ac = w_ac / w_ac[0]
    for chunk in np.array_split(idx, max(1, idx.size // 2048)):
        starts = np.round(chunk * hop8).astype(np.int64)
        frames = padded[starts[:, None] + np.arange(win)[None, :]]
        frames = frames - frames.mean(axis=1, keepdims=True)
        spec = np.fft.rfft(frames * window, nfft, axis=1)
        ac = np.fft.irfft(np.abs(spec) ** 2, nfft, axis=1)[:, : lag_max + 1]
        energy = ac[:, :1]
        ok = energy[:, 0] > 1e-10
        norm = ac / np.maximum(energy, 1e-12) / np.maximum(w_ac, 1e-3)
        band = norm[:, lag_min : lag_max + 1]
        best = np.argmax(band, axis=1)
        peak = band[np.arange(len(chunk)), best]
        lag = best + lag_min
        rows = np.arange(len(chunk))
        # Octave check: prefer a period a half or a third as long when its peak is nearly as
        # high (the taper correction favours long lags, so multiples of the period win ties).
        for k in (2, 3):
            sub = np.round(lag / k).astype(np.int64)
            ok_sub = sub - 1 >= lag_min
            sub = np.clip(sub, lag_min + 1, lag_max - 1)
            around = np.maximum(
                np.maximum(norm[rows, sub - 1], norm[rows, sub]), norm[rows, sub + 1]
            )
            better = ok_sub & (around >= 0.85 * peak)
            shift_to = (
                sub
                - 1
                + np.argmax(
                    np.stack([norm[rows, sub - 1], norm[rows, sub], norm[rows, sub + 1]]), axis=0
                )
            )
            lag = np.where(better, shift_to, lag)
            peak = np.where(better, norm[rows, lag], peak)
        # Parabolic interpolation around the peak for sub-sample lags.
        left = norm[rows, np.maximum(lag - 1, 0)]
        right = norm[rows, np.minimum(lag + 1, lag_max)]
        denom = left - 2 * peak + right
        shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / denom, 0.0)
        f0 = rate / (lag + np.clip(shift, -0.5, 0.5))
        voiced = ok & (peak >= config.voicing_threshold)
        pitch[chunk] = np.where(voiced, f0, 0.0)
    return pitch


def _typing_spans(
    x: np.ndarray,
    sample_rate: int,
    excluded: Sequence[tuple[Seconds, Seconds]],
    config: AcousticsConfig,
) -> tuple[tuple[tuple[Seconds, Seconds], ...], tuple[int, ...]]:
    """Bursts of keyboard clicks: sharp broadband transients outside the excluded spans."""
    nyquist = sample_rate / 2
    if len(x) < sample_rate // 10 or config.click_highpass_hz >= nyquist * 0.9:
        return (), ()
    sos = signal.butter(4, config.click_highpass_hz / nyquist, btype="highpass", output="sos")
    hp = signal.sosfilt(sos, x)
    sub = max(1, int(round(config.click_subframe * sample_rate)))
    n = len(hp) // sub
    energy = np.mean(hp[: n * sub].reshape(n, sub) ** 2, axis=1)
    db = 10.0 * np.log10(np.maximum(energy, 1e-12))
    bg_size = max(3, int(config.click_background / config.click_subframe) | 1)
    background = ndimage.median_filter(db, size=bg_size, mode="nearest")
    peak_size = max(1, int(config.click_min_interval / config.click_subframe) | 1)
    local_max = db >= ndimage.maximum_filter(db, size=peak_size, mode="nearest")
    after = int(round(config.click_decay_after / config.click_subframe))
    later = np.concatenate([db[after:], np.full(after, db.min() if db.size else 0.0)])
    # Look a little beyond the decay point so a slow, speech-like tail cannot sneak under.
    later_max = ndimage.maximum_filter1d(later, size=max(1, after // 2) | 1, origin=0)
    candidates = (
        local_max
        & (db - background >= config.click_rise_db)
        & (db - later_max >= config.click_decay_db)
        & (db >= config.click_min_dbfs)
        & (background >= config.click_min_background_dbfs)
    )
    times = np.flatnonzero(candidates) * config.click_subframe
    if excluded and times.size:
        inside = np.zeros(times.size, bool)
        for a, b in excluded:
            inside |= (times >= a) & (times < b)
        times = times[~inside]
    spans: list[tuple[Seconds, Seconds]] = []
    counts: list[int] = []
    group: list[float] = []
    for t in [*times.tolist(), None]:
        if t is not None and (not group or t - group[-1] <= config.typing_max_gap):
            group.append(t)
            continue
        if len(group) >= config.typing_min_clicks:
            spans.append((round(group[0], 3), round(group[-1] + config.typing_pad, 3)))
            counts.append(len(group))
        group = [] if t is None else [t]
    return tuple(spans), tuple(counts)


def _music_spans(
    x8: np.ndarray, levels: np.ndarray, noise_floor_db: float, config: AcousticsConfig
) -> tuple[tuple[Seconds, Seconds], ...]:
    """Spans of continuous, spectrally steady sound (hold music, tones)."""
    n_frames = levels.shape[0]
    win_frames = int(round(config.music_window / config.hop))
    if n_frames < win_frames or win_frames < 2:
        return ()
    hop8 = int(round(config.hop * 8000))
    nper = 256
    _, _, z = signal.stft(
        x8, fs=8000, nperseg=nper, noverlap=nper - hop8, boundary=None, padded=True
    )
    mag = np.abs(z[:, :n_frames]).T.astype(np.float32)
    m = mag.shape[0]
    similarity = np.ones(n_frames, np.float32)
    if m > 1:
        num = np.sum(mag[1:] * mag[:-1], axis=1)
        den = np.linalg.norm(mag[1:], axis=1) * np.linalg.norm(mag[:-1], axis=1) + 1e-12
        similarity[1:m] = num / den
    active = levels[:n_frames] > noise_floor_db + config.music_active_db
    active_share = ndimage.uniform_filter1d(active.astype(np.float32), win_frames)
    is_music = np.zeros(n_frames, bool)
    half = win_frames // 2
    step = 10
    for c in range(half, n_frames - half + 1, step):
        if active_share[c] < config.music_min_active:
            continue
        seg = similarity[c - half : c + half][active[c - half : c + half]]
        if seg.size and float(np.percentile(seg, 10)) >= config.music_min_similarity:
            is_music[c - step // 2 : c + step // 2] = True
    # Grow every music window back towards its full extent; not all the way, or the window
    # that is mostly music would swallow the speech right after it (the agent's return).
    grow = max(1, half - int(round(0.25 / config.hop)))
    is_music = ndimage.binary_dilation(is_music, np.ones(2 * grow + 1, bool)) & active
    is_music = ndimage.binary_closing(is_music, np.ones(31, bool))
    labels, _ = ndimage.label(is_music)
    spans = []
    for sl in ndimage.find_objects(labels):
        a, b = sl[0].start * config.hop, sl[0].stop * config.hop
        if b - a >= config.music_min_duration:
            spans.append((round(a, 2), round(b, 2)))
    return tuple(spans)


# --------------------------------------------------------------------------- Beam


class AcousticsFn(StageFn):
    """Attach :class:`ChannelAcoustics` to a channel (after the VAD, before ASR)."""

    stage = "acoustics"

    def __init__(self, config: AcousticsConfig):
        super().__init__()
        self.config = config

    def run(self, element: ChannelAudio) -> Iterator[ChannelAudio]:
        started = time.perf_counter()
        features = analyze_channel(
            element.samples, element.sample_rate, element.regions, self.config
        )
        elapsed = time.perf_counter() - started
        yield replace(
            element, acoustics=features, processing_seconds=element.processing_seconds + elapsed
        )


class MeasureAcoustics(beam.PTransform):
    """ChannelAudio -> ChannelAudio with ``acoustics`` (main), DeadLetter (``dead_letter``)."""

    def __init__(self, config: AcousticsConfig | None = None):
        super().__init__()
        self.config = config or AcousticsConfig()

    def expand(self, channels: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return channels | "AnalyzeChannel" >> beam.ParDo(AcousticsFn(self.config)).with_outputs(
            DEAD_LETTER, main="channels"
        )
