"""Shared fixtures: the real models (loaded once per test session) and the committed calls."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FIXTURES = ROOT / "tests" / "fixtures"


def ground_truth(audio: Path) -> dict[str, Any]:
    """The generator's ground truth JSON next to a generated call."""
    with open(audio.with_suffix(".json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def vad():
    from pipeline.vad import SileroVad

    return SileroVad()


@pytest.fixture(scope="session")
def whisper():
    from pipeline.asr import AsrConfig
    from pipeline.asr.whisper import WhisperBackend

    return WhisperBackend(AsrConfig(cpu_threads=os.cpu_count() or 1))


@pytest.fixture(scope="session")
def sample_calls() -> list[Path]:
    return sorted((SAMPLES / "calls").glob("*.flac"))
