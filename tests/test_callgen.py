"""Ground-truth invariants of the committed synthetic calls, checked against their audio.

These tests read committed fixtures only (no Festival needed); runtime ~5 s on 2 cores.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tools.callgen.script import QA_LABELS

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
DYNAMICS = ROOT / "tests" / "fixtures" / "dynamics"
CONSISTENCY = ROOT / "tests" / "fixtures" / "consistency"
BAD = ROOT / "tests" / "fixtures" / "bad"

SPEECH_OVER_FLOOR_DB = 20.0  # speech turns sit >= 20 dB above the -62..-68 dBFS floor
FLOOR_TOLERANCE_DB = 3.0  # silent spans measure within 3 dB of the generated floor

TRUTH_FILES = sorted(
    [*(SAMPLES / "calls").glob("*.json"), *DYNAMICS.glob("*.json"), *CONSISTENCY.glob("*.json")]
)


@cache
def _load(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    truth = json.loads(path.read_text())
    audio, sr = sf.read(path.parent / truth["audio"], dtype="float64")
    assert sr == truth["sample_rate"] == 8000
    return truth, audio


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2) + 1e-20))


def _span(audio: np.ndarray, ch: int, start: float, end: float) -> np.ndarray:
    return audio[int(start * 8000) : int(end * 8000), ch]


def _speech_free(
    truth: dict[str, Any], start: float, end: float, speaker: str | None = None
) -> bool:
    return not any(
        t["start"] < end and t["end"] > start
        for t in truth["turns"]
        if speaker is None or t["speaker"] == speaker
    )


def test_fixture_sets_exist() -> None:
    assert len(list((SAMPLES / "calls").glob("*.json"))) >= 4
    assert len(list(DYNAMICS.glob("*.json"))) >= 20


@pytest.mark.parametrize("path", TRUTH_FILES, ids=lambda p: p.stem)
def test_structure_and_timing(path: Path) -> None:
    truth, audio = _load(path)
    assert audio.ndim == 2 and audio.shape[1] == 2
    assert truth["duration"] == pytest.approx(len(audio) / 8000, abs=0.01)
    assert sorted(truth["channels"].values()) == [0, 1]
    starts = [t["start"] for t in truth["turns"]]
    assert starts == sorted(starts)
    assert len({t["turn_id"] for t in truth["turns"]}) == len(truth["turns"])
    for t in truth["turns"]:
        assert 0 <= t["start"] < t["end"] <= truth["duration"]
        assert t["speaker"] in ("agent", "customer")
        assert set(t["labels"]) <= set(QA_LABELS)
    # Digital silence never occurs: each channel has its noise floor.
    assert np.all(np.std(audio, axis=0) > 0)


@pytest.mark.parametrize("path", TRUTH_FILES, ids=lambda p: p.stem)
def test_speech_energy_on_the_right_channel(path: Path) -> None:
    truth, audio = _load(path)
    ch = truth["channels"]
    floor = truth["levels_db"]
    for t in truth["turns"]:
        level = _db(_span(audio, ch[t["speaker"]], t["start"], t["end"]))
        assert level > floor[f"{t['speaker']}_noise_floor_dbfs"] + SPEECH_OVER_FLOOR_DB, t
        # The other channel is quiet unless the other party also speaks or types then.
        other = "customer" if t["speaker"] == "agent" else "agent"
        busy = not _speech_free(truth, t["start"], t["end"], other) or (
            other == "agent"
            and any(y["start"] < t["end"] and y["end"] > t["start"] for y in truth["typing"])
        )
        if not busy:
            quiet = _db(_span(audio, ch[other], t["start"], t["end"]))
            assert quiet < floor[f"{other}_noise_floor_dbfs"] + FLOOR_TOLERANCE_DB, t


@pytest.mark.parametrize("path", TRUTH_FILES, ids=lambda p: p.stem)
def test_holds_non_talk_and_music(path: Path) -> None:
    truth, audio = _load(path)
    ch = truth["channels"]
    floor = truth["levels_db"]
    for hold in truth["holds"]:
        inside = [
            t for t in truth["turns"] if t["start"] < hold["end"] and t["end"] > hold["start"]
        ]
        # Only the agent's status updates are spoken during a hold.
        assert all(t["kind"] == "hold_update" for t in inside)
        assert len(inside) == len(hold["status_updates"])
        cust = _db(_span(audio, ch["customer"], hold["start"], hold["end"]))
        assert cust < floor["customer_noise_floor_dbfs"] + FLOOR_TOLERANCE_DB
        if hold["with_music"]:
            assert any(
                m["start"] >= hold["start"] - 0.01 and m["end"] <= hold["end"] + 0.01
                for m in truth["hold_music"]
            )
    for m in truth["hold_music"]:
        level = _db(_span(audio, ch["agent"], m["start"] + 0.1, m["end"] - 0.1))
        assert -30 < level < -18  # music audible at about -24 dBFS
    for gap in truth["non_talk"]:
        assert gap["end"] - gap["start"] >= 3.0
        assert _speech_free(truth, gap["start"], gap["end"])
        for speaker in ("agent", "customer"):
            noisy = speaker == "agent" and (
                any(
                    m["start"] < gap["end"] and m["end"] > gap["start"] for m in truth["hold_music"]
                )
                or any(y["start"] < gap["end"] and y["end"] > gap["start"] for y in truth["typing"])
            )
            if not noisy:
                level = _db(_span(audio, ch[speaker], gap["start"], gap["end"]))
                target = floor[f"{speaker}_noise_floor_dbfs"]
                assert abs(level - target) < FLOOR_TOLERANCE_DB
    # Every speech-free stretch of 3 s or more is listed.
    spans = sorted((t["start"], t["end"]) for t in truth["turns"])
    t_end, listed = 0.0, {(g["start"], g["end"]) for g in truth["non_talk"]}
    for a, b in [*spans, (truth["duration"], truth["duration"])]:
        if a - t_end >= 3.0:
            assert any(abs(s - t_end) < 0.01 and abs(e - a) < 0.01 for s, e in listed)
        t_end = max(t_end, b)


@pytest.mark.parametrize("path", TRUTH_FILES, ids=lambda p: p.stem)
def test_overlaps_typing_and_venting(path: Path) -> None:
    truth, audio = _load(path)
    ch = truth["channels"]
    turns = {t["turn_id"]: t for t in truth["turns"]}
    for o in truth["overlaps"]:
        by, host = turns[o["interrupter_turn_id"]], turns[o["interrupted_turn_id"]]
        assert by["speaker"] == o["interrupter"] != o["interrupted"] == host["speaker"]
        assert o["start"] == by["start"] and o["end"] <= host["end"] + 0.01
        if o["kind"] == "interruption":
            assert o["end"] - o["start"] > 1.0
        else:
            assert by["kind"] == "backchannel" and o["end"] - o["start"] < 1.5
    for y in truth["typing"]:
        assert 0.5 < y["end"] - y["start"] <= 4.1 and y["clicks"] >= 3
        seg = _span(audio, ch["agent"], y["start"], y["end"])
        if _speech_free(truth, y["start"], y["end"], "agent"):
            # Clicks are sharp transients far above the floor.
            assert (
                20 * np.log10(np.max(np.abs(seg)))
                > truth["levels_db"]["agent_noise_floor_dbfs"] + 30
            )
    for v in truth["venting"]:
        vturns = [turns[i] for i in v["turn_ids"]]
        assert all(t["speaker"] == "customer" for t in vturns)
        assert v["start"] == vturns[0]["start"] and v["end"] == vturns[-1]["end"]


def test_samples_manifest_and_swapped_channels() -> None:
    lines = (SAMPLES / "manifest.jsonl").read_text().splitlines()
    assert 4 <= len(lines) <= 5
    swapped = 0
    for line in lines:
        rec = json.loads(line)
        assert {"call_id", "audio", "agent_id", "started_at", "queue", "language"} <= set(rec)
        assert (SAMPLES / rec["audio"]).exists()
        truth, audio = _load((SAMPLES / rec["audio"]).with_suffix(".json"))
        assert 60 <= truth["duration"] <= 125
        channels = rec.get("channels", {"agent": 0, "customer": 1})
        assert channels == truth["channels"]
        if channels["agent"] == 1:
            swapped += 1
            # Agent-only speech really is on channel 1.
            for t in truth["turns"]:
                if t["speaker"] == "agent" and _speech_free(
                    truth, t["start"], t["end"], "customer"
                ):
                    assert (
                        _db(_span(audio, 1, t["start"], t["end"]))
                        > _db(_span(audio, 0, t["start"], t["end"])) + 20
                    )
    assert swapped == 1


def test_samples_cover_features() -> None:
    truths = [_load(p)[0] for p in sorted((SAMPLES / "calls").glob("*.json"))]
    holds = [h for t in truths for h in t["holds"]]
    assert any(h["with_music"] for h in holds) and any(not h["with_music"] for h in holds)
    assert any(h["end"] - h["start"] >= 30 for h in holds)
    assert any(v["end"] - v["start"] >= 20 for t in truths for v in t["venting"])
    kinds = {o["kind"] for t in truths for o in t["overlaps"]}
    assert kinds == {"interruption", "backchannel"}
    assert any(t["typing"] for t in truths)
    assert any(not all(t["greeting"].values()) for t in truths)


def test_dynamics_cover_positives_and_negatives() -> None:
    truths = [_load(p)[0] for p in sorted(DYNAMICS.glob("*.json"))]
    holds = [h for t in truths for h in t["holds"]]
    assert {h["with_music"] for h in holds} == {True, False}
    assert {h["permission_asked"] for h in holds} == {True, False}
    long_holds = [h for h in holds if h["end"] - h["start"] > 30]
    assert {bool(h["status_updates"]) for h in long_holds} == {True, False}
    gaps = []
    for t in truths:
        end = 0.0
        for a, b in sorted((u["start"], u["end"]) for u in t["turns"]):
            gaps.append(a - end)
            end = max(end, b)
    assert sum(2.0 <= g < 3.0 for g in gaps) >= 3  # near misses
    assert sum(not g["during_hold"] for t in truths for g in t["non_talk"]) >= 3
    in_speech = silent = 0
    for t in truths:
        for y in t["typing"]:
            if _speech_free(t, y["start"], y["end"]):
                silent += 1
            elif not _speech_free(t, y["start"], y["end"], "customer"):
                in_speech += 1
    assert in_speech >= 3 and silent >= 3
    assert sum(bool(t["venting"]) for t in truths) >= 3
    assert sum(not t["venting"] for t in truths) >= 3
    assert sum(o["kind"] == "interruption" for t in truths for o in t["overlaps"]) >= 3
    assert sum(o["kind"] == "backchannel" for t in truths for o in t["overlaps"]) >= 10
    for t in truths:
        assert 40 <= t["duration"] <= 95
    assert sum(p.stat().st_size for p in DYNAMICS.glob("*.flac")) < 25_000_000


def test_bad_fixtures_are_what_the_readme_says() -> None:
    assert (BAD / "empty.wav").stat().st_size == 0
    assert (BAD / "notes.wav").read_bytes().startswith(b"Call notes")
    with pytest.raises(sf.LibsndfileError):
        sf.info(BAD / "notes.wav")
    control = sf.info(BAD / "bad-short-call.flac")
    assert (control.samplerate, control.channels) == (8000, 2)
    assert (BAD / "truncated.flac").stat().st_size < (BAD / "bad-short-call.flac").stat().st_size
    silent, _ = sf.read(BAD / "silent_customer.flac")
    assert np.all(silent[:, 1] == 0) and np.std(silent[:, 0]) > 0
    expected = {
        "mono_8k.wav": (8000, 1, "PCM_16"),
        "mulaw_8k.wav": (8000, 2, "ULAW"),
        "alaw_8k.wav": (8000, 2, "ALAW"),
        "rate_11025.wav": (11025, 2, "PCM_16"),
        "rate_4000.wav": (4000, 2, "PCM_16"),
    }
    for name, (rate, channels, subtype) in expected.items():
        info = sf.info(BAD / name)
        assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype), name
    assert (BAD / "README.md").exists()


def test_knowledge_base_yaml_matches_the_generator() -> None:
    import yaml

    from tools.callgen.consistency import KNOWLEDGE_BASE_PATH, knowledge_base

    assert yaml.safe_load(KNOWLEDGE_BASE_PATH.read_text()) == knowledge_base()
    assert len(knowledge_base()) == 15


def test_consistency_scenarios_ground_truth() -> None:
    from tools.callgen.consistency import QUESTION_GROUPS, generate_consistency_scenarios

    calls = generate_consistency_scenarios(60, 6, seed=3)
    assert calls == generate_consistency_scenarios(60, 6, seed=3)
    groups = {g.group_id: g for g in QUESTION_GROUPS}
    per_agent: dict[str, list[bool]] = {}
    for call in calls:
        turns = {t["turn_id"]: t for t in call["turns"]}
        assert [t["start"] for t in call["turns"]] == sorted(t["start"] for t in call["turns"])
        for p in call["qa_pairs"]:
            g = groups[p["group_id"]]
            q, a = turns[p["question_turn_id"]], turns[p["answer_turn_id"]]
            assert q["speaker"] == "customer" and a["speaker"] == "agent"
            assert q["text"].endswith(g.paraphrases[p["paraphrase_id"]])
            variants = {v.variant_id: v for v in (g.approved, *g.contradictions)}
            assert a["text"] in variants[p["answer_variant_id"]].texts
            assert p["correct"] == (p["answer_variant_id"] == f"{g.group_id}/approved")
            per_agent.setdefault(call["agent_id"], []).append(p["correct"])
    consistent = [a for a, ok in per_agent.items() if all(ok)]
    assert 3 <= len(consistent) < len(per_agent)  # most agents agree, some contradict


def test_consistency_audio_calls() -> None:
    truths = [_load(p)[0] for p in sorted(CONSISTENCY.glob("*.json"))]
    assert len(truths) == 6 and len({t["agent_id"] for t in truths}) == 3
    assert any(not p["correct"] for t in truths for p in t["qa_pairs"])
    for t in truths:
        ids = {u["turn_id"]: u for u in t["turns"]}
        for p in t["qa_pairs"]:
            assert ids[p["question_turn_id"]]["speaker"] == "customer"
            assert ids[p["answer_turn_id"]]["speaker"] == "agent"
