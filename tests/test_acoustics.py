"""Tests of the frame-level acoustic features (pipeline.acoustics) on signals with known truth."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.acoustics import AcousticsConfig, ChannelAcoustics, analyze_channel
from pipeline.audio import load_call
from pipeline.records import CallSpec, SpeechRegion

RATE = 16000
FIXTURES = Path(__file__).parent / "fixtures" / "dynamics"


def _noise(seconds: float, dbfs: float = -65.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def _add_clicks(x: np.ndarray, times: list[float], seed: int = 1) -> None:
    """Keystroke-like clicks: 5-15 ms of bright noise with a fast decay."""
    rng = np.random.default_rng(seed)
    for t in times:
        n = int(rng.uniform(0.005, 0.015) * RATE)
        click = np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / (n / 4))
        click = click / np.max(np.abs(click)) * rng.uniform(0.04, 0.12)
        i = int(t * RATE)
        x[i : i + n] += click.astype(np.float32)


def _harmonic(seconds: float, f0: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    x = x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)
    return x.astype(np.float32)


def _bursts(start: float, seconds: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    times, t = [], start
    while t < start + seconds:
        times.append(t)
        t += rng.uniform(0.08, 0.25)
    return times


def test_loudness_of_a_known_level_and_noise_floor():
    x = _noise(4.0, -65.0)
    x[RATE : 3 * RATE] += _harmonic(2.0, 150.0, -20.0)
    ac = analyze_channel(x, RATE, [SpeechRegion(1.0, 3.0)])
    assert ac.loudness(1.1, 2.9) == pytest.approx(-20.0, abs=0.3)
    assert ac.noise_floor_db == pytest.approx(-65.0, abs=1.5)
    assert ac.speech_db == pytest.approx(-20.0, abs=0.5)
    assert ac.loudness_db.dtype == np.float16 and ac.num_frames == 400


def test_pitch_of_a_harmonic_tone_inside_speech_regions_only():
    x = _noise(3.0)
    x[RATE // 2 : 5 * RATE // 2] += _harmonic(2.0, 140.0, -25.0)
    ac = analyze_channel(x, RATE, [SpeechRegion(0.5, 1.5)])
    assert ac.pitch(0.6, 1.4) == pytest.approx(140.0, rel=0.03)
    assert ac.pitch(1.7, 2.9) is None  # outside the regions nothing is tracked


def test_typing_bursts_are_found_at_their_times():
    x = _noise(12.0)
    first = _bursts(1.0, 2.0, seed=3)
    second = _bursts(6.0, 3.0, seed=4)
    _add_clicks(x, first + second)
    ac = analyze_channel(x, RATE, [])
    assert len(ac.typing) == 2
    (a0, b0), (a1, b1) = ac.typing
    assert a0 == pytest.approx(first[0], abs=0.02) and b0 == pytest.approx(first[-1], abs=0.05)
    assert a1 == pytest.approx(second[0], abs=0.02) and b1 == pytest.approx(second[-1], abs=0.05)
    assert ac.typing_clicks == (len(first), len(second))


def test_no_typing_on_a_gated_line_or_from_faint_ticks():
    clicks = _bursts(1.0, 2.0, seed=3) + _bursts(6.0, 3.0, seed=4)
    # A digitally gated channel: almost nothing, then faint ticks 60 dB below real keystrokes.
    gated = _noise(12.0, dbfs=-110.0)
    _add_clicks(gated, clicks)
    gated[: 12 * RATE] *= 1e-3
    assert analyze_channel(gated, RATE, []).typing == ()
    # The same faint ticks over a live line's noise are still not typing.
    faint = _noise(12.0, dbfs=-70.0)
    ticks = np.zeros_like(faint)
    _add_clicks(ticks, clicks)
    assert analyze_channel(faint + ticks * 1e-3, RATE, []).typing == ()
    # At a real level over the same line they are found.
    assert len(analyze_channel(faint + ticks, RATE, []).typing) == 2


def test_no_typing_in_noise_speechlike_tone_or_single_clicks():
    x = _noise(8.0)
    x[RATE : 3 * RATE] += _harmonic(2.0, 120.0, -20.0)
    _add_clicks(x, [5.0, 7.0])  # two isolated clicks are not typing
    assert analyze_channel(x, RATE, [SpeechRegion(1.0, 3.0)]).typing == ()


def test_clicks_inside_speech_regions_are_ignored():
    x = _noise(6.0)
    _add_clicks(x, _bursts(2.0, 2.0, seed=5))
    assert analyze_channel(x, RATE, [SpeechRegion(1.5, 4.5)]).typing == ()


def test_hold_music_and_typing_on_a_generated_call():
    truth = json.loads((FIXTURES / "dyn-003.json").read_text())
    spec = CallSpec(truth["call_id"], str(FIXTURES / truth["audio"]))
    audio = load_call(spec)
    agent = truth["channels"]["agent"]
    regions = [
        SpeechRegion(t["start"], t["end"]) for t in truth["turns"] if t["speaker"] == "agent"
    ]
    ac = analyze_channel(audio.samples[agent], audio.sample_rate, regions)
    assert len(ac.music) == len(truth["hold_music"]) == 2
    for (a, b), m in zip(ac.music, truth["hold_music"], strict=True):
        assert a == pytest.approx(m["start"], abs=0.5) and b == pytest.approx(m["end"], abs=0.8)
    assert len(ac.typing) == len(truth["typing"])
    for (a, b), t in zip(ac.typing, truth["typing"], strict=True):
        assert a == pytest.approx(t["start"], abs=0.05) and b == pytest.approx(t["end"], abs=0.1)


def test_features_of_a_ten_minute_call_stay_compact():
    x = _noise(600.0)
    ac = analyze_channel(x, RATE, [SpeechRegion(10.0, 300.0)])
    assert len(pickle.dumps(ac)) < 300_000


@pytest.mark.parametrize("seconds", [0.0, 0.005, 1.0])
def test_silence_and_empty_audio_give_features_not_errors(seconds):
    ac = analyze_channel(np.zeros(int(seconds * RATE), np.float32), RATE, [])
    assert isinstance(ac, ChannelAcoustics)
    assert ac.typing == () and ac.music == () and ac.speech_db is None
    assert ac.loudness(0.0, 10.0) in (None, AcousticsConfig().floor_dbfs)


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="1-D"):
        analyze_channel(np.zeros((2, 100), np.float32), RATE, [])
    with pytest.raises(ValueError, match="8 kHz"):
        analyze_channel(np.zeros(100, np.float32), 4000, [])
