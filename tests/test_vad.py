"""The real Silero VAD (ONNX, onnxruntime) against the generator's ground truth."""

from __future__ import annotations

import numpy as np

from pipeline.audio import load_call
from pipeline.records import CallSpec
from tests.conftest import FIXTURES, ground_truth


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _silent_hold_spans(truth) -> list[tuple[float, float]]:
    """Hold spans minus the agent's status updates (speech inside the hold), with 0.5 s margins."""
    spans = []
    for hold in truth["holds"]:
        cuts = [hold["start"]]
        for update in hold["status_updates"]:
            cuts += [update["start"], update["end"]]
        cuts.append(hold["end"])
        pairs = zip(cuts[::2], cuts[1::2], strict=True)
        spans += [(a + 0.5, b - 0.5) for a, b in pairs if b - a > 1]
    return spans


def test_regions_cover_the_turns_and_skip_the_hold(vad, sample_calls):
    covered = total = 0.0
    false_speech = 0.0
    for path in sample_calls:
        truth = ground_truth(path)
        audio = load_call(
            CallSpec("x", str(path), agent_channel=truth["channels"]["agent"],
                     customer_channel=truth["channels"]["customer"])
        )
        for role in ("agent", "customer"):
            regions = vad(audio.channel(truth["channels"][role]).samples)
            spans = [(r.start, r.end) for r in regions]
            turns = [(t["start"], t["end"]) for t in truth["turns"] if t["speaker"] == role]
            for turn in turns:
                total += turn[1] - turn[0]
                covered += sum(_overlap(turn, s) for s in spans)
            for hold in _silent_hold_spans(truth):
                # Hold music and line silence are not speech, on either channel.
                false_speech += sum(_overlap(hold, s) for s in spans)
    assert covered / total >= 0.95, covered / total
    hold_seconds = sum(e - s for p in sample_calls for s, e in _silent_hold_spans(ground_truth(p)))
    assert hold_seconds > 30
    assert false_speech / hold_seconds <= 0.05, (false_speech, hold_seconds)


def test_digital_silence_has_no_speech(vad):
    audio = load_call(CallSpec("s", str(FIXTURES / "bad" / "silent_customer.flac")))
    assert vad(audio.channel(1).samples) == []
    assert len(vad(audio.channel(0).samples)) >= 1
    assert vad(np.zeros(0, dtype=np.float32)) == []


def test_long_speech_is_split_to_fit_a_whisper_window(vad, sample_calls):
    # Four sample calls back to back on one channel: speech with short pauses only, longer
    # than any window. faster-whisper's VAD splits it at silences, each region <= max_region.
    from pipeline.vad import VadConfig

    audio = [load_call(CallSpec("x", str(p))).channel(0).samples for p in sample_calls[:4]]
    long_speech = np.concatenate([a[a != 0] if (a != 0).any() else a for a in audio])
    regions = vad(long_speech)
    assert regions, "no speech found"
    assert max(r.end - r.start for r in regions) <= VadConfig().max_region + 1e-6
    assert all(a.end <= b.start for a, b in zip(regions, regions[1:], strict=False))
