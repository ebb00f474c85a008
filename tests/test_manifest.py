"""Input discovery: folders, globs and JSONL manifests, with bad rows as dead letters."""

from __future__ import annotations

import json

import pytest

from pipeline.manifest import parse_manifest_row, resolve_input
from pipeline.records import CallSpec
from tests.conftest import FIXTURES, SAMPLES


def test_bundled_manifest_resolves_paths_and_channel_maps():
    specs, dead = resolve_input(str(SAMPLES / "manifest.jsonl"))
    assert dead == []
    assert len(specs) == 5
    by_id = {s.call_id: s for s in specs}
    shipping = by_id["sample-shipping-02"]
    assert (shipping.agent_channel, shipping.customer_channel) == (1, 0)
    assert shipping.audio == str(SAMPLES / "calls" / "sample-shipping-02.flac")
    assert by_id["sample-billing-01"].agent_id == "agent-01"


def test_folder_input_takes_call_id_from_file_name():
    specs, dead = resolve_input(str(FIXTURES / "bad"))
    ids = [s.call_id for s in specs]
    assert "mono_8k" in ids and "empty" in ids
    assert ids == sorted(ids)
    assert all(s.audio.endswith((".wav", ".flac")) for s in specs)
    assert dead == []


def test_bad_rows_and_duplicates_become_dead_letters(tmp_path):
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"call_id": "a", "audio": "a.flac"},
        {"call_id": "a", "audio": "b.flac"},
        {"call_id": "c"},
        {"call_id": "d", "audio": "d.flac", "channels": {"agent": -1}},
        {"call_id": "e", "audio": "e.flac", "colour": "red"},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    specs, dead = resolve_input(str(manifest))
    assert [s.call_id for s in specs] == ["a"]
    assert specs[0].audio == str(tmp_path / "a.flac")
    kinds = sorted(d.error_type for d in dead)
    assert kinds == ["DuplicateCallId", "JSONDecodeError", "ValueError", "ValueError", "ValueError"]
    assert any("unknown manifest fields ['colour']" in d.message for d in dead)


def test_channel_map_defaults_to_the_other_channel():
    spec = parse_manifest_row({"audio": "/x/c-9.wav", "channels": {"agent": 1}}, "/")
    assert spec.call_id == "c-9"
    assert (spec.agent_channel, spec.customer_channel) == (1, 0)


def test_nothing_matching_is_an_error():
    with pytest.raises(ValueError, match="not a folder, glob"):
        resolve_input("/nonexistent/*.wav")


def test_call_spec_round_trips():
    spec = CallSpec("c1", "/a.wav", agent_id="a", queue="q", agent_channel=1, customer_channel=0)
    assert CallSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown fields"):
        CallSpec.from_dict({**spec.to_dict(), "x": 1})
