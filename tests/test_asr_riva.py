"""The Riva backend against the loopback Riva server: real gRPC round trips, real Whisper.

The loopback server (``pipeline.asr.riva_loopback``) is built from the Riva client package's
own generated stubs, so these tests exercise the same wire protocol a real Riva server speaks.
Runtime: about 15 s on 2 cores (one model load, 15 s of agent speech).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from math import gcd
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from pipeline.asr import AsrConfig
from pipeline.asr.chunking import speech_chunks
from pipeline.asr.riva import RivaBackend, RivaError, to_pcm16
from pipeline.asr.riva_loopback import serve
from pipeline.evaluation import normalize_text, word_error_rate
from pipeline.records import SpeechRegion, Word

ROOT = Path(__file__).resolve().parents[1]
CALL = ROOT / "samples" / "calls" / "sample-telecom-05.json"
"""Generated call (Festival slt agent voice, 8 kHz stereo FLAC) with its ground truth."""

RATE = 16000

SPAN = 45.0
"""Seconds of the call used (four agent turns, 15 s of speech), short for the test's runtime."""

MAX_WER = 0.25
"""Measured 13 % (6 of 45 words) on this span: "uh huh" heard as "that's right", "I am" as
"I'm", "postcode" as "post code". The bound catches a broken round trip, not model drift."""

PADDING = AsrConfig().region_padding
"""Audio kept around each region, so words may reach into it (never further)."""


def _agent_turns(truth: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in truth["turns"] if t["speaker"] == "agent" and t["end"] <= SPAN]


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    return json.loads(CALL.read_text())


@pytest.fixture(scope="module")
def agent_channel(truth: dict[str, Any]) -> np.ndarray:
    stereo, rate = sf.read(CALL.with_name(truth["audio"]), dtype="float32", always_2d=True)
    mono = stereo[: int(SPAN * rate), truth["channels"]["agent"]]
    g = gcd(rate, RATE)
    return resample_poly(mono, RATE // g, rate // g).astype(np.float32)


@pytest.fixture(scope="module")
def agent_regions(truth: dict[str, Any]) -> list[SpeechRegion]:
    """The agent's turns from the ground truth, standing in for the VAD."""
    return [SpeechRegion(t["start"], t["end"]) for t in _agent_turns(truth)]


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server, port = serve(port=0)
    yield port
    server.stop(grace=None)


@pytest.fixture(scope="module")
def backend(server_port: int) -> Iterator[RivaBackend]:
    with RivaBackend(AsrConfig(backend="riva", riva_uri=f"127.0.0.1:{server_port}")) as b:
        yield b


@pytest.fixture(scope="module")
def agent_words(
    backend: RivaBackend, agent_channel: np.ndarray, agent_regions: list[SpeechRegion]
) -> list[Word]:
    return backend.transcribe(agent_channel, RATE, agent_regions)


def test_round_trip_text_matches_script(agent_words: list[Word], truth: dict[str, Any]) -> None:
    reference = " ".join(t["text"] for t in _agent_turns(truth))
    hypothesis = " ".join(w.text for w in agent_words)
    wer = word_error_rate(reference, hypothesis)
    assert wer <= MAX_WER, f"WER {wer:.3f}: {hypothesis}"


def test_round_trip_words_are_timed_on_the_channel_timeline(
    agent_words: list[Word], agent_regions: list[SpeechRegion], agent_channel: np.ndarray
) -> None:
    duration = len(agent_channel) / RATE
    chunks = speech_chunks(agent_regions, duration, PADDING, AsrConfig().max_chunk)
    assert agent_words
    assert [w.start for w in agent_words] == sorted(w.start for w in agent_words)
    for w in agent_words:
        assert 0.0 <= w.start <= w.end <= duration
        assert 0.0 < w.probability <= 1.0
        # Every word lies in the padded speech chunk it was recognised in: times came back
        # in ms and were shifted by the chunk start, not left chunk-relative, and a word
        # never reaches past its chunk into the pause after it.
        assert any(c.start <= w.start and w.end <= c.end for c in chunks), w
    # Each region's speech was found: the first word of a turn starts near the turn.
    starts = np.array([w.start for w in agent_words])
    for r in agent_regions:
        if r.duration > 1.0:
            assert np.min(np.abs(starts - r.start)) < 0.5, r
    assert np.mean([w.probability for w in agent_words]) > 0.6


def test_no_regions_sends_nothing(backend: RivaBackend, agent_channel: np.ndarray) -> None:
    assert backend.transcribe(agent_channel, RATE, []) == []


def test_official_client_sees_a_riva_response(
    server_port: int, agent_channel: np.ndarray, agent_regions: list[SpeechRegion]
) -> None:
    """The stock riva.client call gets ms word offsets, and no punctuation when not asked."""
    import riva.client

    first = agent_regions[0]
    audio = agent_channel[int(first.start * RATE) : int(first.end * RATE)]
    auth = riva.client.Auth(uri=f"127.0.0.1:{server_port}")
    config = riva.client.RecognitionConfig(
        encoding=riva.client.AudioEncoding.LINEAR_PCM,
        sample_rate_hertz=RATE,
        language_code="en-US",
        max_alternatives=1,
        enable_automatic_punctuation=False,
        enable_word_time_offsets=True,
        audio_channel_count=1,
    )
    response = riva.client.ASRService(auth).offline_recognize(to_pcm16(audio), config)
    auth.channel.close()
    alternative = response.results[0].alternatives[0]
    assert normalize_text(alternative.transcript)[:3] == ["thank", "you", "for"]
    assert alternative.transcript == alternative.transcript.lower()
    assert "." not in alternative.transcript
    ends = [w.end_time for w in alternative.words]
    # Integer milliseconds: the last word ends near the end of the turn.
    assert abs(ends[-1] - first.duration * 1000) < 600
    assert response.results[0].audio_processed == pytest.approx(len(audio) / RATE, abs=1e-3)


def test_server_models(backend: RivaBackend) -> None:
    assert backend.server_models() == ["whisper-tiny.en"]


def test_bad_sample_rate_is_rejected_by_the_server(
    backend: RivaBackend, agent_channel: np.ndarray, server_port: int
) -> None:
    with pytest.raises(RivaError, match=r"sample_rate_hertz=4000") as info:
        backend.transcribe(agent_channel[: 4 * 4000], 4000, [SpeechRegion(0.5, 3.0)])
    assert info.value.code == "INVALID_ARGUMENT"
    assert f"127.0.0.1:{server_port}" in str(info.value)


def test_bad_encoding_is_rejected_by_the_server(server_port: int) -> None:
    import riva.client

    auth = riva.client.Auth(uri=f"127.0.0.1:{server_port}")
    config = riva.client.RecognitionConfig(
        encoding=riva.client.AudioEncoding.MULAW, sample_rate_hertz=8000, language_code="en-US"
    )
    with pytest.raises(grpc.RpcError) as info:
        riva.client.ASRService(auth).offline_recognize(b"\x00" * 800, config)
    auth.channel.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MULAW" in info.value.details()


def test_unreachable_server_gives_a_clear_error(agent_channel: np.ndarray) -> None:
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = AsrConfig(
        backend="riva", riva_uri=f"127.0.0.1:{port}", riva_timeout=2.0, riva_max_retries=1
    )
    with RivaBackend(config) as backend, pytest.raises(RivaError) as info:
        backend.transcribe(agent_channel, RATE, [SpeechRegion(0.6, 6.0)])
    assert info.value.code == "UNAVAILABLE"
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "after 2 attempt(s)" in message


class _StuckRecognizer:
    """A recogniser that does not answer until released: a server that has stalled."""

    model_name = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def recognize(self, samples: np.ndarray) -> list[Word]:
        self.calls += 1
        self.release.wait()
        return []


def test_stalled_server_is_retried_then_reported(agent_channel: np.ndarray) -> None:
    recognizer = _StuckRecognizer()
    server, port = serve(port=0, recognizer=recognizer)
    config = AsrConfig(
        backend="riva", riva_uri=f"127.0.0.1:{port}", riva_timeout=0.5, riva_max_retries=1
    )
    try:
        with RivaBackend(config) as backend, pytest.raises(RivaError) as info:
            backend.transcribe(agent_channel, RATE, [SpeechRegion(0.6, 6.0)])
    finally:
        recognizer.release.set()
        server.stop(grace=None)
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert "riva_timeout=0.5 s" in str(info.value)
    assert recognizer.calls == 2


def test_invalid_config_is_rejected_before_connecting() -> None:
    with pytest.raises(ValueError, match="host:port"):
        RivaBackend(AsrConfig(backend="riva", riva_uri="localhost"))
    with pytest.raises(ValueError, match="language"):
        RivaBackend(AsrConfig(backend="riva", language="xx"))
