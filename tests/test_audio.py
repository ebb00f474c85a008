"""Decoding and validation at the boundary, on the committed edge-case files."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audio import AudioConfig, AudioError, decode, load_call, resample
from pipeline.records import AGENT, CUSTOMER, UNKNOWN, CallSpec
from tests.conftest import FIXTURES, SAMPLES, ground_truth

BAD = FIXTURES / "bad"


def _load(name: str, **spec_fields):
    return load_call(CallSpec(name, str(BAD / name), **spec_fields))


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("empty.wav", "EmptyFile"),
        ("notes.wav", "CorruptAudio"),
        ("truncated.flac", "CorruptAudio"),
        ("rate_4000.wav", "UnsupportedSampleRate"),
        ("missing.flac", "FileNotFound"),
    ],
)
def test_unusable_files_raise_a_precise_error(name, code):
    with pytest.raises(AudioError) as info:
        _load(name)
    assert info.value.code == code
    assert name in str(info.value)


def test_text_file_named_wav_is_called_text():
    with pytest.raises(AudioError, match="text, not audio"):
        _load("notes.wav")


def test_telephony_mu_law_and_a_law_decode_like_the_pcm_original():
    control = _load("bad-short-call.flac")
    assert control.source_format == "FLAC/PCM_16"
    for name, fmt in (("mulaw_8k.wav", "WAV/ULAW"), ("alaw_8k.wav", "WAV/ALAW")):
        audio = _load(name)
        assert audio.source_format == fmt
        assert audio.source_sample_rate == 8000
        assert audio.samples.shape == control.samples.shape
        for ch in range(2):
            corr = np.corrcoef(audio.samples[ch], control.samples[ch])[0, 1]
            assert corr > 0.99, (name, ch, corr)


def test_unusual_rate_is_resampled_with_a_warning():
    audio = _load("rate_11025.wav")
    assert audio.source_sample_rate == 11025
    assert audio.sample_rate == 16000
    assert audio.samples.shape[1] == pytest.approx(audio.duration * 16000, abs=2)
    assert any("11025" in w for w in audio.warnings)


def test_mono_call_is_kept_with_unknown_role():
    audio = _load("mono_8k.wav")
    assert audio.num_channels == 1
    assert audio.role_of(0) == UNKNOWN
    assert any("mono" in w for w in audio.warnings)


def test_digitally_silent_channel_is_named_in_a_warning():
    audio = _load("silent_customer.flac")
    assert audio.warnings == ("channel 1 (customer) is digitally silent",)


def test_too_long_call_is_refused_with_the_limit_in_the_message():
    with pytest.raises(AudioError, match="longer than the limit") as info:
        load_call(
            CallSpec("c", str(BAD / "bad-short-call.flac")), AudioConfig(max_duration=10.0)
        )
    assert info.value.code == "TooLong"


def test_channel_map_must_fit_the_file():
    with pytest.raises(AudioError) as info:
        _load("bad-short-call.flac", agent_channel=0, customer_channel=3)
    assert info.value.code == "BadChannelMap"


def test_swapped_channels_follow_the_manifest():
    path = SAMPLES / "calls" / "sample-shipping-02.flac"
    truth = ground_truth(path)
    assert truth["channels"] == {"agent": 1, "customer": 0}
    audio = load_call(CallSpec("s", str(path), agent_channel=1, customer_channel=0))
    assert audio.role_of(1) == AGENT and audio.role_of(0) == CUSTOMER
    # The agent speaks first in every generated call: the agent channel has energy there.
    first = truth["turns"][0]
    assert first["speaker"] == "agent"
    span = slice(int(first["start"] * 16000), int(first["end"] * 16000))
    agent_rms = np.sqrt(np.mean(audio.channel(1).samples[span] ** 2))
    customer_rms = np.sqrt(np.mean(audio.channel(0).samples[span] ** 2))
    assert agent_rms > 10 * customer_rms


def test_decode_rejects_empty_bytes_and_resample_keeps_duration():
    with pytest.raises(AudioError):
        decode(b"", "x.wav")
    tone = np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440).astype(np.float32)
    up = resample(tone[None, :], 8000)
    assert up.shape == (1, 16000)
    assert up.dtype == np.float32
