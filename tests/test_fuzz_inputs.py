"""Property-based fuzzing of the input boundary: decoding and manifest/folder listing.

Every generated case must end as a usable call (possibly with warnings) or as a precise
error (``AudioError`` / a manifest dead letter), never another exception, a hang (each
example has a deadline) or unbounded memory (the process's peak is checked at the end).
Runs derandomized, so the suite gives the same result on every machine; about 15 s.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.audio import AudioConfig, AudioError, load_call
from pipeline.manifest import KNOWN_KEYS, read_manifest, resolve_input
from pipeline.records import CallSpec

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=3000,  # ms per example: a decode that hangs fails here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Tight limits, so a mutated header cannot ask for much work.
CONFIG = AudioConfig(max_duration=120.0, max_file_mb=4.0, decode_timeout=2.0)


def _seed_files() -> dict[str, bytes]:
    """Small valid files, one per container the decoder meets, to mutate."""
    rate = 8000
    t = np.arange(rate) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1)
    seeds = {}
    for ext, fmt, subtype in (
        ("wav", "WAV", "PCM_16"),
        ("wav", "WAV", "FLOAT"),
        ("wav", "WAV", "ULAW"),
        ("flac", "FLAC", "PCM_16"),
        ("ogg", "OGG", "VORBIS"),
        ("mp3", "MP3", "MPEG_LAYER_III"),
    ):
        buffer = io.BytesIO()
        sf.write(buffer, stereo.astype(np.float32), rate, format=fmt, subtype=subtype)
        seeds[f"{subtype.lower()}.{ext}"] = buffer.getvalue()
    # Float samples may be NaN or infinite: one file with a few, one with mostly.
    for name, bad in (("some_nan.wav", slice(100, 900)), ("mostly_nan.wav", slice(0, 7000))):
        samples = stereo.astype(np.float32)
        samples[bad, 0] = np.nan
        samples[bad, 1] = np.inf
        buffer = io.BytesIO()
        sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
        seeds[name] = buffer.getvalue()
    return seeds


SEEDS = _seed_files()
SEED_NAMES = sorted(SEEDS)


@st.composite
def mutated_audio(draw) -> tuple[str, bytes]:
    """A seed file with a few of: truncation, byte overwrites (header fields included),
    inserted junk, a repeated stretch; or plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        ext = draw(st.sampled_from(["wav", "flac", "mp3", "ogg", "m4a"]))
        return ext, draw(st.binary(min_size=0, max_size=4096))
    name = draw(st.sampled_from(SEED_NAMES))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "poke", "poke_header", "insert", "repeat"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "cut":
            del data[pos:]
        elif kind == "poke":
            data[pos : pos + 4] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "poke_header":  # sizes, rates, channel counts live in the first 64 bytes
            # WAV: RIFF size 4, channels 22, rate 24, byte rate 28, block 32, bits 34, data
            # size 40; FLAC STREAMINFO holds rate, channels and total samples at 18-25.
            at = draw(st.sampled_from([4, 18, 21, 22, 24, 28, 32, 34, 40]) | st.integers(0, 63))
            at = min(at, len(data) - 1)
            value = draw(st.sampled_from(
                [0, 1, 2, 3, 100, 4000, 8000, 48000, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]
            ))
            data[at : at + 4] = value.to_bytes(4, "little")
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 2048))]
    return name.rsplit(".", 1)[1], bytes(data)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="callscope-fuzz-") as folder:
        yield folder


@settings(FUZZ, max_examples=200)
@given(case=mutated_audio())
def test_any_bytes_decode_to_a_call_or_a_precise_error(scratch, case):
    ext, data = case
    path = os.path.join(scratch, f"fuzz.{ext}")
    with open(path, "wb") as f:
        f.write(data)
    try:
        audio = load_call(CallSpec("fuzz", path), CONFIG)
    except AudioError as e:
        event(e.code)  # --hypothesis-show-statistics shows the mix of outcomes
        assert e.code and str(e)
        str(e).encode("utf-8")
        return
    event("decoded, with warnings" if audio.warnings else "decoded")
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape[0] in (1, 2) and audio.samples.shape[1] > 0
    assert np.isfinite(audio.samples).all()
    assert float(np.abs(audio.samples).max()) <= 1.0
    assert 0 < audio.duration <= CONFIG.max_duration


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PEAK_OF_A_JUNK_DECODE = """
import resource, sys
from pipeline.audio import AudioError, load_call
from pipeline.records import CallSpec
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_call(CallSpec("junk", sys.argv[1]))
except AudioError as e:
    print(e.code)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_a_large_junk_file_is_rejected_without_reading_it_whole(tmp_path):
    # Measured in a fresh process: this test process's own peak holds the models of
    # earlier tests. 256 MiB of random bytes named .wav must not be read into memory.
    junk = tmp_path / "junk.wav"
    with open(junk, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(4 << 20))
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _PEAK_OF_A_JUNK_DECODE, str(junk)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    code, growth_mib = proc.stdout.split()
    assert code in ("CorruptAudio", "NotAudio", "UnsupportedFormat"), code
    assert float(growth_mib) < 128, growth_mib


# --- manifest lines ----------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12) | (
    st.sampled_from(["\ud800x", "caf\udce9", "a\u0000b", " ", "é.wav"])  # lone surrogates
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
CHANNEL = st.integers(0, 3) | st.integers(-5, 2**64) | JSON_VALUE
# Mostly well-formed rows (so validation is reached field by field), sometimes anything.
ROW = st.fixed_dictionaries(
    {"audio": st.sampled_from(["a.wav", "sub/b.flac", "gs://bucket/c.mp3"]) | TEXT | JSON_VALUE},
    optional={
        "call_id": st.sampled_from(["a", "b", "fuzz.jsonl:2"]) | TEXT | JSON_VALUE,
        "channels": st.fixed_dictionaries({}, optional={"agent": CHANNEL, "customer": CHANNEL})
        | JSON_VALUE,
        "agent_id": TEXT | JSON_VALUE,
        "language": st.just("en") | JSON_VALUE,
        "queue": TEXT,
    },
) | st.dictionaries(st.sampled_from(sorted(KNOWN_KEYS)) | TEXT, JSON_VALUE, max_size=4)


def _encode_line(draw_kind: int, row, raw: bytes) -> bytes:
    if draw_kind == 0:
        return raw.replace(b"\n", b" ")
    text = json.dumps(row, allow_nan=True)  # ensure_ascii: lone surrogates become \ud800
    return text.encode("ascii")


@FUZZ
@given(
    lines=st.lists(
        st.tuples(st.integers(0, 3), ROW, st.binary(max_size=80)), min_size=1, max_size=12
    ),
    bom=st.booleans(),
)
def test_every_manifest_line_is_one_call_or_one_dead_letter(scratch, lines, bom):
    encoded = [_encode_line(kind, row, raw) for kind, row, raw in lines]
    data = b"\n".join(encoded)
    path = os.path.join(scratch, "fuzz.jsonl")
    with open(path, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + data)
    specs, dead = read_manifest(path)
    for letter in dead:
        event(letter.error_type)
    if specs:
        event("some lines accepted")
    non_blank = sum(bool(line.rstrip(b"\r").strip()) for line in data.split(b"\n"))
    assert len(specs) + len(dead) == non_blank
    ids = [s.call_id for s in specs] + [d.call_id for d in dead]
    assert len(set(ids)) == len(ids)
    for text in ids + [d.message for d in dead] + [d.audio for d in dead]:
        text.encode("utf-8")  # writable to Parquet, usable as a Beam key
    for spec in specs:
        assert 0 <= spec.agent_channel < 2**16 and 0 <= spec.customer_channel < 2**16
        for value in (spec.agent_id, spec.started_at, spec.queue, spec.language, spec.audio):
            assert value is None or isinstance(value.encode("utf-8"), bytes)
    assert read_manifest(path) == (specs, dead)  # the same on every read


# --- folder names --------------------------------------------------------------------------------

NAME = st.binary(min_size=1, max_size=20).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)


@FUZZ
@given(
    names=st.lists(
        st.tuples(st.sampled_from([b"", b"sub/", b"sub/deeper/"]), NAME,
                  st.sampled_from([b".wav", b".WAV", b".mp3", b".flac", b".txt"])),
        min_size=1, max_size=10, unique=True,
    )
)
def test_any_file_names_give_unique_printable_ids(names):
    with tempfile.TemporaryDirectory(prefix="callscope-names-") as folder:
        root = os.fsencode(folder)
        made = set()
        for prefix, stem, ext in names:
            path = os.path.join(root, prefix + stem + ext)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not os.path.exists(path):
                open(path, "wb").close()
                made.add(path)
        specs, dead = resolve_input(folder)
        assert dead == []
        audio = {p for p in made if p.lower().endswith((b".wav", b".mp3", b".flac"))}
        assert {os.fsencode(s.audio) for s in specs} == audio
        ids = [s.call_id for s in specs]
        assert len(set(ids)) == len(ids)
        for call_id in ids:
            call_id.encode("utf-8")
            assert "/" not in call_id
        assert resolve_input(folder) == (specs, dead)
