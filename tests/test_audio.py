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
        ("truncated.flac", "TruncatedAudio"),
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


# --- decode-time checks on files built here --------------------------------------------------

RATE = 8000


def _two_party(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """(frames, 2): a different voice-like signal on each channel, taking turns."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    agent = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    customer = 0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.5 * t) < 0.2)
    return np.stack([agent, customer], axis=1).astype(np.float32)


def _write(path, samples, fmt, subtype, rate=RATE):
    import soundfile as sf

    sf.write(path, samples, rate, format=fmt, subtype=subtype)
    return path


def _cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext"),
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
def test_file_cut_to_half_its_declared_length_is_a_truncated_dead_letter(tmp_path, fmt, subtype,
                                                                         ext):
    path = _cut(_write(tmp_path / f"c.{ext}", _two_party(10.0), fmt, subtype), 0.5)
    with pytest.raises(AudioError) as info:
        load_call(CallSpec("c", str(path)))
    assert info.value.code == "TruncatedAudio"
    assert "header declares 10.00 s" in str(info.value) or "no audio decodes" in str(info.value)


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext"),
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("MP3", "MPEG_LAYER_III", "mp3"),
     ("OGG", "VORBIS", "ogg")],
)
def test_complete_files_carry_no_length_warning(tmp_path, fmt, subtype, ext):
    audio = load_call(CallSpec("c", str(_write(tmp_path / f"c.{ext}", _two_party(), fmt,
                                                 subtype))))
    assert audio.warnings == ()
    assert audio.duration == pytest.approx(6.0, abs=0.1)


def test_wav_header_declaring_245_s_over_30_kb_is_truncated(tmp_path):
    """The issue's case: a header declaring 245 s in front of 30 KB of samples."""
    import struct

    pcm = (_two_party(2.0)[:7500] * 32767).astype("<i2").tobytes()  # 30,000 bytes
    declared = 245 * RATE * 4
    fmt_chunk = struct.pack("<HHIIHH", 1, 2, RATE, RATE * 4, 4, 16)
    data = (b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVE" + b"fmt "
            + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", declared) + pcm)
    path = tmp_path / "short.wav"
    path.write_bytes(data)
    with pytest.raises(AudioError, match="declares 245.00 s but only 0.94 s") as info:
        load_call(CallSpec("c", str(path)))
    assert info.value.code == "TruncatedAudio"


def test_small_shortfall_is_a_warning_and_the_call_is_kept(tmp_path):
    path = _cut(_write(tmp_path / "c.wav", _two_party(10.0), "WAV", "PCM_16"), 0.95)
    audio = load_call(CallSpec("c", str(path)))
    assert audio.duration == pytest.approx(9.5, abs=0.01)
    assert audio.warnings == (
        "possibly truncated: the header declares 10.00 s but only 9.50 s (95%) decoded",
    )


def test_ogg_cut_short_is_processed_with_a_warning(tmp_path):
    path = _cut(_write(tmp_path / "c.ogg", _two_party(10.0), "OGG", "VORBIS"), 0.6)
    audio = load_call(CallSpec("c", str(path)))
    assert audio.duration < 9.0
    assert any("end-of-stream page" in w for w in audio.warnings)


@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_mono_recording_saved_as_stereo_is_one_channel_of_unknown_speaker(tmp_path, gain):
    voice = _two_party()[:, 1]
    rng = np.random.default_rng(1)
    right = gain * voice + 0.002 * rng.standard_normal(voice.size).astype(np.float32)
    path = _write(tmp_path / "dup.wav", np.stack([voice, right], axis=1), "WAV", "PCM_16")
    audio = load_call(CallSpec("dup", str(path)))
    assert audio.num_channels == 1
    assert audio.role_of(0) == UNKNOWN
    assert len(audio.warnings) == 1 and "both channels carry the same audio" in audio.warnings[0]


def test_two_parties_on_two_channels_are_not_merged(tmp_path):
    audio = load_call(CallSpec("c", str(_write(tmp_path / "c.wav", _two_party(), "WAV",
                                                 "PCM_16"))))
    assert audio.num_channels == 2
    assert audio.role_of(0) == AGENT and audio.role_of(1) == CUSTOMER


def test_nan_and_inf_samples_are_silenced_with_a_warning(tmp_path):
    samples = _two_party()
    samples[1000:1400, 0] = np.nan
    samples[5000, 1] = np.inf
    samples[5001, 1] = -np.inf
    audio = load_call(CallSpec("c", str(_write(tmp_path / "c.wav", samples, "WAV", "FLOAT"))))
    assert np.isfinite(audio.samples).all()
    assert audio.warnings == ("402 NaN or infinite samples (0.42%) silenced",)
    # the silenced stretch is silent after resampling, away from its edges
    assert np.abs(audio.samples[0, 2100:2700]).max() < 1e-3


def test_mostly_nan_file_is_a_corrupt_samples_dead_letter(tmp_path):
    samples = np.full((RATE, 2), np.nan, dtype=np.float32)
    with pytest.raises(AudioError, match="100% of the samples") as info:
        load_call(CallSpec("c", str(_write(tmp_path / "c.wav", samples, "WAV", "FLOAT"))))
    assert info.value.code == "CorruptSamples"


# --- limits: checked before reading or decoding ----------------------------------------------


def test_oversized_file_is_refused_from_its_size(tmp_path):
    path = _write(tmp_path / "c.wav", _two_party(), "WAV", "PCM_16")
    with pytest.raises(AudioError, match="larger than the limit of 0 MiB") as info:
        load_call(CallSpec("c", str(path)), AudioConfig(max_file_mb=0.01))
    assert info.value.code == "FileTooLarge"


def test_duration_is_refused_from_the_header_before_decoding(tmp_path):
    """A header declaring 5 h in front of 1 s of samples is refused as too long."""
    import struct

    pcm = np.zeros(RATE * 2, dtype="<i2").tobytes()
    declared = 5 * 3600 * RATE * 2
    data = (b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVEfmt " + struct.pack("<I", 16)
            + struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", declared) + pcm)
    (tmp_path / "long.wav").write_bytes(data)
    with pytest.raises(AudioError, match="declares 5.00 h, longer than the limit of 4.00 h") as e:
        load_call(CallSpec("c", str(tmp_path / "long.wav")))
    assert e.value.code == "TooLong"


def test_length_of_a_wav_without_a_declared_size_comes_from_its_bytes(tmp_path):
    import struct

    # A streaming writer's header (data size 0xFFFFFFFF) says nothing about the length.
    pcm = np.zeros(RATE * 3, dtype="<i2").tobytes()
    data = (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<I", 16)
            + struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm)
    (tmp_path / "stream.wav").write_bytes(data)
    with pytest.raises(AudioError, match="3.0 s, longer than the limit of 2.5 s") as info:
        load_call(CallSpec("c", str(tmp_path / "stream.wav")), AudioConfig(max_duration=2.5))
    assert info.value.code == "TooLong"


def test_decode_timeout_is_checked_between_blocks(tmp_path):
    path = _write(tmp_path / "c.flac", _two_party(), "FLAC", "PCM_16")
    with pytest.raises(AudioError, match="decoding took longer than 0 s") as info:
        load_call(CallSpec("c", str(path)), AudioConfig(decode_timeout=0.0))
    assert info.value.code == "DecodeTimeout"


def test_header_with_thousands_of_channels_is_refused(tmp_path):
    import struct

    channels = 100
    data = (b"RIFF" + struct.pack("<I", 36 + 8000) + b"WAVEfmt " + struct.pack("<I", 16)
            + struct.pack("<HHIIHH", 1, channels, RATE, RATE * 2 * channels, 2 * channels, 16)
            + b"data" + struct.pack("<I", 8000) + bytes(8000))
    (tmp_path / "wide.wav").write_bytes(data)
    with pytest.raises(AudioError) as info:
        load_call(CallSpec("c", str(tmp_path / "wide.wav")))
    assert info.value.code == "TooManyChannels"
    assert str(info.value).endswith("100 channels, more than the limit of 32")


def test_large_junk_file_is_rejected_without_reading_it_whole(tmp_path):
    import resource

    path = tmp_path / "junk.wav"
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for _ in range(64):  # 64 MiB of random bytes
            f.write(rng.bytes(2**20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(AudioError) as info:
        load_call(CallSpec("junk", str(path)))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert info.value.code == "CorruptAudio"
    assert grown_mib < 32, grown_mib


def test_boundary_cases_built_from_the_speech_control_call(tmp_path):
    from tools.callgen.bad import BOUNDARY_CASES, write_boundary_cases

    paths = write_boundary_cases(BAD / "bad-short-call.flac", tmp_path)
    outcomes = {}
    for name, path in paths.items():
        try:
            audio = load_call(CallSpec(name, str(path)))
        except AudioError as e:
            outcomes[name] = e.code
        else:
            outcomes[name] = (audio.num_channels, audio.warnings)
    assert set(outcomes) == set(BOUNDARY_CASES)
    assert outcomes["cut_to_30pct.wav"] == "TruncatedAudio"
    assert outcomes["cut_to_50pct.mp3"] == "TruncatedAudio"
    assert outcomes["mostly_nan.wav"] == "CorruptSamples"
    channels, warnings = outcomes["cut_to_95pct.wav"]
    assert channels == 2 and len(warnings) == 1 and "possibly truncated" in warnings[0]
    channels, warnings = outcomes["cut_to_60pct.ogg"]
    assert channels == 2 and any("end-of-stream page" in w for w in warnings)
    for name in ("same_channels.wav", "near_same_channels.wav"):
        channels, warnings = outcomes[name]
        assert channels == 1 and len(warnings) == 1, (name, warnings)
        assert "both channels carry the same audio" in warnings[0]
    channels, warnings = outcomes["some_nan.wav"]
    assert channels == 2 and len(warnings) == 1 and "NaN or infinite samples" in warnings[0]
