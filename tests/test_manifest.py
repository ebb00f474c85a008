"""Input discovery: folders, globs and JSONL manifests, with bad rows as dead letters."""

from __future__ import annotations

import json
import os

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
    by_id = {d.call_id: (d.error_type, d.message) for d in dead}
    assert by_id == {
        "m.jsonl:2": ("DuplicateCallId",
                      "m.jsonl:2: call_id 'a' is already used by an earlier line"),
        "c": ("MissingAudio", "m.jsonl:3: no audio path (one of audio, audio_path, uri, path)"),
        "d": ("BadChannelMap", "m.jsonl:4: channels.agent must be a channel index >= 0, got -1"),
        "e": ("UnknownField", "m.jsonl:5: unknown manifest fields ['colour']"),
        "m.jsonl:6": ("InvalidJson", "m.jsonl:6: not JSON: Expecting value: line 1 column 1 "
                                     "(char 0)"),
    }


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


# --- every input accounted for ---------------------------------------------------------------


def _write_manifest(path, lines: list[bytes]) -> str:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def _outcomes(specs, dead) -> dict[str, str]:
    """call_id -> 'ok' or the dead letter's error type; asserts ids are unique."""
    ids = [s.call_id for s in specs] + [d.call_id for d in dead]
    assert len(ids) == len(set(ids)), ids
    return {**{s.call_id: "ok" for s in specs}, **{d.call_id: d.error_type for d in dead}}


def test_colliding_stems_become_distinct_path_based_calls(tmp_path):
    for name in ("a.wav", "a.mp3", "sub/a.wav", "b.WAV", "sub~a.wav.wav", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    specs, dead = resolve_input(str(tmp_path))
    assert dead == []
    ids = {s.call_id: os.path.relpath(s.audio, tmp_path) for s in specs}
    assert ids == {
        "a.mp3": "a.mp3",
        "a.wav": "a.wav",
        "b": "b.WAV",
        "sub~a.wav#" + _sha8(tmp_path / "sub" / "a.wav"): "sub/a.wav",
        "sub~a.wav#" + _sha8(tmp_path / "sub~a.wav.wav"): "sub~a.wav.wav",
    }
    assert resolve_input(str(tmp_path)) == (specs, dead)  # stable


def _sha8(path) -> str:
    import hashlib

    return hashlib.sha1(os.fsencode(str(path))).hexdigest()[:8]


def test_a_glob_names_colliding_files_relative_to_their_common_folder(tmp_path):
    for name in ("x/a.wav", "y/a.wav", "y/c.flac"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    specs, _ = resolve_input(str(tmp_path / "*" / "*.wav"))
    assert [s.call_id for s in specs] == ["x~a.wav", "y~a.wav"]


def test_entries_that_are_not_audio_files_are_listed_and_fail_precisely(tmp_path):
    from pipeline.audio import AudioError, load_call

    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "empty.flac").write_bytes(b"")
    specs, dead = resolve_input(str(tmp_path))
    assert dead == []
    codes = {}
    for spec in specs:
        with pytest.raises(AudioError) as info:
            load_call(spec)
        codes[spec.call_id] = info.value.code
    assert codes == {
        "dangling": "DanglingSymlink",
        "empty": "EmptyFile",
        "folder": "IsADirectory",
        "loop": "SymlinkLoop",
        "pipe": "NotRegularFile",
        "zero": "NotRegularFile",
    }


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_permission_denied(tmp_path):
    from pipeline.audio import AudioError, load_call

    path = tmp_path / "locked.wav"
    path.write_bytes(b"RIFF")
    path.chmod(0)
    with pytest.raises(AudioError) as info:
        load_call(CallSpec("locked", str(path)))
    assert info.value.code == "PermissionDenied"


def test_file_name_that_is_not_utf8_gets_an_escaped_id_and_still_opens(tmp_path):
    import numpy as np
    import soundfile as sf

    from pipeline.audio import load_call

    raw = os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9 call.wav")
    sf.write(raw, np.zeros((800, 2)) + 0.01, 8000, format="WAV")
    specs, _ = resolve_input(str(tmp_path))
    assert [s.call_id for s in specs] == ["caf\\xe9 call"]
    assert load_call(specs[0]).duration == 0.1


def test_bom_keeps_the_first_row_and_a_bad_byte_rejects_only_its_line(tmp_path):
    manifest = _write_manifest(tmp_path / "m.jsonl", [
        b'\xef\xbb\xbf{"call_id": "first", "audio": "1.wav"}',
        b'{"call_id": "caf\xe9", "audio": "2.wav"}',
        b'{"call_id": "third", "audio": "3.wav"}',
    ])
    specs, dead = resolve_input(manifest)
    assert [s.call_id for s in specs] == ["first", "third"]
    assert [(d.call_id, d.error_type) for d in dead] == [("m.jsonl:2", "InvalidUtf8")]
    assert "byte 16 of the line is not UTF-8" in dead[0].message


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"call_id": "\\ud800", "audio": "x.wav"}', "InvalidUnicode"),
        (b'{"call_id": "x", "audio": "\\udce9.wav"}', "InvalidUnicode"),
        (b'{"call_id": "x", "audio": "x.wav", "channels": {"agent": %d}}' % 10**30,
         "BadChannelMap"),
        (b'{"call_id": "x", "audio": "x.wav", "channels": {"customer": 2147483648}}',
         "BadChannelMap"),
        (b'{"call_id": "x", "audio": "x.wav", "channels": {"agent": 1.5}}', "BadChannelMap"),
        (b'{"call_id": "a/b", "audio": "x.wav"}', "BadCallId"),
        (b'{"call_id": "x\\n", "audio": "x.wav", "queue": 7}', "BadField"),
        (b'{"call_id": "x", "audio": "x.wav", "language": ["en"]}', "BadField"),
        (b'[' * 50000, "InvalidJson"),
        (b'{"call_id": "x", "audio": "x.wav"', "InvalidJson"),
        (b'"just a string"', "NotAnObject"),
        (b'{"call_id": "x", "audio": "' + b"y" * 70000 + b'"}', "RowTooLong"),
    ],
)
def test_one_bad_line_rejects_that_row_only(tmp_path, line, code):
    manifest = _write_manifest(tmp_path / "m.jsonl", [
        b'{"call_id": "before", "audio": "1.wav"}', line, b'{"call_id": "after", "audio": "2.wav"}'
    ])
    specs, dead = resolve_input(manifest)
    assert [s.call_id for s in specs] == ["before", "after"]
    assert len(dead) == 1 and dead[0].error_type == code, dead
    assert dead[0].call_id in ("x", "m.jsonl:2")
    assert dead[0].message.encode("utf-8")  # valid Unicode: Parquet and Beam keys take it


def test_rejected_line_ids_never_collide_with_calls(tmp_path):
    manifest = _write_manifest(tmp_path / "m.jsonl", [
        b'{"call_id": "m.jsonl:2", "audio": "1.wav"}',
        b'not json',
        b'{"call_id": "dup", "audio": "2.wav"}',
        b'{"call_id": "dup", "audio": "3.wav"}',
        b'{"call_id": "dup", "audio": "4.wav", "channels": {"agent": -1}}',
    ])
    specs, dead = resolve_input(manifest)
    assert _outcomes(specs, dead) == {
        "m.jsonl:2": "ok",
        "m.jsonl:2#2": "InvalidJson",
        "dup": "ok",
        "m.jsonl:4": "DuplicateCallId",
        "m.jsonl:5": "BadChannelMap",
    }
    assert dead[1].audio == str(tmp_path / "3.wav")


def test_a_real_run_gives_every_input_exactly_one_calls_row(tmp_path):
    """Colliding stems, a name that is not UTF-8, a FIFO, a directory and a bad manifest line
    each end as one ``calls`` row, with a dead letter for each failure."""
    import shutil

    import apache_beam as beam

    from pipeline.run import run_specs
    from pipeline.sinks import read_table

    calls = tmp_path / "calls"
    (calls / "sub" / "a.wav").mkdir(parents=True)
    (calls / "a.wav").write_bytes(b"")
    (calls / "a.mp3").write_text("not audio\n")
    os.mkfifo(calls / "pipe.wav")
    good = os.path.join(os.fsencode(str(calls)), b"caf\xe9.flac")
    shutil.copyfile(FIXTURES / "bad" / "bad-short-call.flac", good)
    folder_specs, folder_dead = resolve_input(str(calls))
    manifest = _write_manifest(tmp_path / "m.jsonl", [
        b'{"call_id": "\\ud800", "audio": "calls/a.wav"}',
        b'{"call_id": "huge", "audio": "x.wav", "channels": {"agent": %d}}' % 10**30,
        b"\xff",
    ])
    manifest_specs, manifest_dead = resolve_input(manifest)
    specs, dead = folder_specs + manifest_specs, folder_dead + manifest_dead
    out = tmp_path / "out"
    run_specs(specs, dead, str(out), test_pipeline=beam.Pipeline(runner="FnApiRunner"))
    rows = {r["call_id"]: r for r in read_table(out, "calls").to_pylist()}
    letters = {r["call_id"]: r["error_type"] for r in read_table(out, "dead_letter").to_pylist()}
    assert {k: r["status"] for k, r in rows.items()} == {
        "caf\\xe9": "ok",
        "a.wav": "failed",
        "a.mp3": "failed",
        "sub~a.wav": "failed",
        "pipe": "failed",
        "m.jsonl:1": "failed",
        "huge": "failed",
        "m.jsonl:3": "failed",
    }
    assert letters == {
        "a.wav": "EmptyFile",
        "a.mp3": "CorruptAudio",
        "sub~a.wav": "IsADirectory",
        "pipe": "NotRegularFile",
        "m.jsonl:1": "InvalidUnicode",
        "huge": "BadChannelMap",
        "m.jsonl:3": "InvalidUtf8",
    }
    assert rows["caf\\xe9"]["audio"].endswith("calls/caf\\xe9.flac")


# --- listing inside the pipeline gives the same calls ----------------------------------------


def _assert_listed_in_pipeline(input_path: str, specs, dead) -> None:
    """ListInputs on FnApiRunner gives exactly ``specs`` and ``dead`` (in any order)."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.manifest import ListInputs

    with beam.Pipeline(runner="FnApiRunner") as p:
        listed = p | ListInputs(input_path)
        assert_that(listed.specs, equal_to(specs), label="Specs")
        assert_that(listed.rejected, equal_to(dead), label="Rejected")


def test_listing_inside_the_pipeline_equals_listing_on_the_driver(tmp_path):
    calls = tmp_path / "calls"
    for name in ("a.wav", "a.mp3", "sub/a.wav", "b.WAV", "sub~a.wav.wav", "notes.txt"):
        (calls / name).parent.mkdir(parents=True, exist_ok=True)
        (calls / name).write_bytes(b"x")
    (calls / "folder.flac").mkdir()
    os.mkfifo(calls / "pipe.wav")
    (calls / "dangling.wav").symlink_to(calls / "gone.wav")
    open(os.path.join(os.fsencode(str(calls)), b"caf\xe9.wav"), "wb").close()
    manifest = _write_manifest(tmp_path / "m.jsonl", [
        b'\xef\xbb\xbf{"call_id": "m.jsonl:2", "audio": "1.wav"}',
        b"not json",
        b'{"call_id": "dup", "audio": "2.wav"}',
        b'{"call_id": "dup", "audio": "3.wav"}',
        b'{"call_id": "own", "audio": "4.wav", "channels": {"agent": %d}}' % 2**31,
        b'{"call_id": "caf\xe9", "audio": "5.wav"}',
        b"",
        b'{"call_id": "\\ud800", "audio": "6.wav", "queue": "q"}',
    ])
    for input_path in (str(calls), str(calls / "**" / "*.wav"), manifest):
        specs, dead = resolve_input(input_path)
        assert specs, input_path
        _assert_listed_in_pipeline(input_path, specs, dead)
    assert _outcomes(*resolve_input(manifest)) == {
        "m.jsonl:2": "ok",
        "m.jsonl:2#2": "InvalidJson",
        "dup": "ok",
        "m.jsonl:4": "DuplicateCallId",
        "own": "BadChannelMap",
        "m.jsonl:6": "InvalidUtf8",
        "m.jsonl:8": "InvalidUnicode",
    }
