"""Turning the run's INPUT (a folder, a glob or a JSONL manifest) into validated call specs.

A JSONL manifest has one call per line::

    {"call_id": "c-001", "audio": "calls/c-001.flac", "agent_id": "a-17",
     "started_at": "2026-11-02T09:14:00Z", "queue": "billing", "language": "en",
     "channels": {"agent": 0, "customer": 1}}

``audio`` (also accepted: ``audio_path``, ``uri``, ``path``) may be relative to the manifest's
folder or any URI Beam's filesystems read.

Every input is accounted for: each listed file and each manifest line becomes exactly one
call, either a :class:`CallSpec` to process or a :class:`DeadLetter` (stage ``manifest``)
that the run turns into a ``failed`` row of ``calls``. Ids are unique and the same on every
run of the same input:

- In folder and glob mode a call's id is its file name without the extension; files whose
  stems collide (``a.wav``, ``a.mp3``, ``sub/a.wav``) are named by their path relative to the
  folder instead, with ``/`` written as ``~`` (``a.wav``, ``a.mp3``, ``sub~a.wav``).
- A rejected manifest line keeps its ``call_id`` when that is valid and not used elsewhere,
  and is otherwise named by its place, ``<manifest name>:<line>``.
- Names that are not valid Unicode (a file name in Latin-1, a lone surrogate) are written
  with backslash escapes (:func:`pipeline.records.printable`); the file is still opened by
  its real name.

Folder listing does not follow symbolic links into directories and does not look at what a
name points to: a directory, FIFO or dangling link named ``x.wav`` is listed and fails at
decode with a precise error (``IsADirectory``, ``NotRegularFile``, ``DanglingSymlink``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pipeline.records import CallSpec, DeadLetter, printable

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".au")
AUDIO_KEYS = ("audio", "audio_path", "uri", "path")
KNOWN_KEYS = {"call_id", "agent_id", "started_at", "queue", "language", "channels", *AUDIO_KEYS}
STAGE = "manifest"
# WAV's channel count is a 16-bit field: no file has a channel beyond this.
MAX_CHANNEL_INDEX = 65535
# A call_id is a key in every table and part of every utterance id: keep it short.
MAX_CALL_ID_CHARS = 200
# One manifest line describes one call in a few hundred bytes; a longer line is not a row.
MAX_ROW_BYTES = 64 * 1024
PATH_SEPARATOR_IN_ID = "~"


class ManifestError(ValueError):
    """A manifest row that cannot become a call; ``code`` names the kind of problem."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _is_remote(path: str) -> bool:
    return "://" in path


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ManifestError("BadField", f"{name} must be a string, got {_short(value)}")
    if printable(value) != value:
        raise ManifestError(
            "InvalidUnicode", f"{name} holds a lone surrogate: {printable(value)!r}"
        )
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = printable(repr(value))
    return text if len(text) <= limit else text[:limit] + "..."


def _channel_index(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(
            "BadChannelMap", f"channels.{name} must be a channel index >= 0, got {_short(value)}"
        )
    if value > MAX_CHANNEL_INDEX:
        raise ManifestError(
            "BadChannelMap",
            f"channels.{name} = {_short(value, 40)} is beyond the largest possible channel "
            f"index {MAX_CHANNEL_INDEX}",
        )
    return value


def valid_call_id(call_id: Any) -> str:
    """``call_id`` stripped, or :class:`ManifestError` if it cannot key a call."""
    if not isinstance(call_id, str) or not call_id.strip():
        raise ManifestError("BadCallId", f"call_id must be a non-empty string, got "
                                         f"{_short(call_id)}")
    _check_text("call_id", call_id)
    call_id = call_id.strip()
    if "/" in call_id or any(ord(c) < 32 or ord(c) == 127 for c in call_id):
        raise ManifestError(
            "BadCallId", f"call_id must hold no '/' or control characters, got {_short(call_id)}"
        )
    if len(call_id) > MAX_CALL_ID_CHARS:
        raise ManifestError(
            "BadCallId", f"call_id is {len(call_id)} characters long (at most {MAX_CALL_ID_CHARS})"
        )
    return call_id


def parse_manifest_row(row: Any, base_dir: str) -> CallSpec:
    """Validate one manifest row into a :class:`CallSpec`.

    Raises:
        ManifestError: The row is not an object, lacks an id or audio, holds a field of the
            wrong type or invalid Unicode, or its channel map is malformed.
    """
    if not isinstance(row, dict):
        raise ManifestError(
            "NotAnObject", f"a manifest row must be a JSON object, got {type(row).__name__}"
        )
    unknown = set(row) - KNOWN_KEYS
    if unknown:
        names = sorted(printable(k) for k in unknown)
        raise ManifestError("UnknownField", f"unknown manifest fields {names}")
    audio = next((row[k] for k in AUDIO_KEYS if row.get(k)), None)
    if audio is None:
        raise ManifestError("MissingAudio", f"no audio path (one of {', '.join(AUDIO_KEYS)})")
    audio = _check_text("audio", audio)
    if "\x00" in audio:
        raise ManifestError("BadField", "audio path holds a NUL character")
    if _is_remote(base_dir) and not _is_remote(audio):
        audio = f"{base_dir}/{audio}"
    elif not _is_remote(audio) and not os.path.isabs(audio):
        audio = os.path.normpath(os.path.join(base_dir, audio))
    call_id = valid_call_id(
        row["call_id"] if row.get("call_id") is not None
        else os.path.splitext(os.path.basename(audio))[0]
    )
    channels = row.get("channels") or {}
    if not isinstance(channels, dict) or set(channels) - {"agent", "customer"}:
        raise ManifestError(
            "BadChannelMap",
            f'channels must look like {{"agent": 0, "customer": 1}}, got {_short(channels)}',
        )
    agent_channel = _channel_index("agent", channels.get("agent", 0))
    customer_channel = _channel_index(
        "customer", channels.get("customer", 1 if agent_channel == 0 else 0)
    )
    for key in ("agent_id", "started_at", "queue", "language"):
        if row.get(key) is not None:
            _check_text(key, row[key])
    return CallSpec(
        call_id=call_id,
        audio=audio,
        agent_id=row.get("agent_id") or None,  # "" is not an agent: unknown
        started_at=row.get("started_at") or None,
        queue=row.get("queue") or None,
        language=row.get("language") or "en",
        agent_channel=agent_channel,
        customer_channel=customer_channel,
    )


def _read_lines(path: str) -> tuple[str, list[bytes]]:
    """The manifest's folder and its lines as bytes (a UTF-8 BOM removed)."""
    if _is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(path, compression_type="uncompressed") as f:
            data = f.read()
        base_dir = path.rsplit("/", 1)[0]
    else:
        with open(path, "rb") as f:
            data = f.read()
        base_dir = os.path.dirname(os.path.abspath(path))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return base_dir, data.split(b"\n")


def _parse_line(line: bytes, base_dir: str) -> tuple[CallSpec | None, Any, ManifestError | None]:
    """``(spec, decoded row, error)`` of one manifest line."""
    if len(line) > MAX_ROW_BYTES:
        return None, None, ManifestError(
            "RowTooLong", f"the line is {len(line)} bytes long (at most {MAX_ROW_BYTES})"
        )
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, None, ManifestError(
            "InvalidUtf8", f"byte {e.start} of the line is not UTF-8 ({line[e.start:e.end]!r})"
        )
    try:
        row = json.loads(text)
    except RecursionError:
        return None, None, ManifestError("InvalidJson", "the line nests too deeply")
    except ValueError as e:
        return None, None, ManifestError("InvalidJson", f"not JSON: {printable(str(e))}")
    try:
        return parse_manifest_row(row, base_dir), row, None
    except ManifestError as e:
        return None, row, e


def read_manifest(path: str) -> tuple[list[CallSpec], list[DeadLetter]]:
    """Read a JSONL manifest; each non-blank line is one spec or one dead letter.

    A bad line (not UTF-8, not JSON, an invalid field, a ``call_id`` already used by an
    earlier line) rejects that line only.
    """
    base_dir, lines = _read_lines(path)
    name = printable(os.path.basename(path.rstrip("/")))
    parsed = []
    for line_no, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r")
        if line.strip():
            parsed.append((f"{name}:{line_no}", *_parse_line(line, base_dir)))
    # How often each call_id is claimed, by valid and rejected lines alike.
    claimed = Counter(_claimed_id(spec, row) for _, spec, row, _ in parsed)
    specs: list[CallSpec] = []
    dead: list[DeadLetter] = []
    taken: set[str] = set()
    for where, spec, row, error in parsed:
        if spec is not None and spec.call_id not in taken:
            taken.add(spec.call_id)
            specs.append(spec)
            continue
        if spec is not None:
            error = ManifestError(
                "DuplicateCallId", f"call_id {spec.call_id!r} is already used by an earlier line"
            )
        assert error is not None
        own = _claimed_id(spec, row)
        call_id = own if own and claimed[own] == 1 else where
        audio = spec.audio if spec else _row_audio(row)
        dead.append(DeadLetter(call_id, STAGE, error.code, f"{where}: {error}", audio))
    return specs, _unique_dead(dead, taken)


def _claimed_id(spec: CallSpec | None, row: Any) -> str | None:
    if spec is not None:
        return spec.call_id
    if isinstance(row, dict):
        try:
            return valid_call_id(row.get("call_id"))
        except ManifestError:
            return None
    return None


def _row_audio(row: Any) -> str:
    if isinstance(row, dict):
        audio = next((row[k] for k in AUDIO_KEYS if row.get(k)), "")
        return printable(audio) if isinstance(audio, str) else ""
    return ""


def _unique_dead(dead: list[DeadLetter], taken: set[str]) -> list[DeadLetter]:
    """Dead letters whose ids collide with a call (``m.jsonl:3`` used as a call_id) get a
    ``#n`` suffix, so every input keeps its own ``calls`` row."""
    out = []
    for letter in dead:
        call_id, n = letter.call_id, 1
        while call_id in taken:
            n += 1
            call_id = f"{letter.call_id}#{n}"
        taken.add(call_id)
        out.append(DeadLetter(call_id, letter.stage, letter.error_type, letter.message,
                              letter.audio))
    return out


def find_audio(pattern: str) -> list[str]:
    """Every entry with an audio extension under a folder (recursively) or matching a glob.

    Entries are not opened or followed: directories, FIFOs and links named like audio are
    listed too, so that each ends as a failed call with a precise error instead of vanishing.
    Sorted by their bytes, so the order is the same on every run.
    """
    if os.path.isdir(pattern):
        found: list[str] = []
        for folder, dirs, files in os.walk(pattern, followlinks=False):
            dirs.sort()
            found.extend(os.path.join(folder, n) for n in (*dirs, *files))
        paths: Iterable[str] = found
    else:
        paths = glob.glob(pattern, recursive=True)
    return sorted(
        (p for p in paths if p.lower().endswith(AUDIO_EXTENSIONS)), key=os.fsencode
    )


def file_call_ids(paths: list[str], root: str) -> list[str]:
    """One unique, stable call id per path: the stem, or the relative path where stems collide.

    Args:
        paths: Audio paths, as listed by :func:`find_audio`.
        root: The folder ids are made relative to.
    """
    stems = [printable(os.path.splitext(os.path.basename(p))[0]).strip() for p in paths]
    counts = Counter(stems)
    ids = []
    for path, stem in zip(paths, stems, strict=True):
        if stem and counts[stem] == 1 and "/" not in stem:
            ids.append(stem)
        else:
            relative = printable(os.path.relpath(path, root)).replace(os.sep, "/")
            ids.append(relative.replace("/", PATH_SEPARATOR_IN_ID))
    # A relative-path id may still equal another file's stem (a file named 'sub~a.wav'):
    # such ids get a short hash of the path, the same on every run.
    counts = Counter(ids)
    return [
        f"{i}#{hashlib.sha1(os.fsencode(p)).hexdigest()[:8]}" if counts[i] > 1 else i
        for i, p in zip(ids, paths, strict=True)
    ]


def resolve_input(input_path: str) -> tuple[list[CallSpec], list[DeadLetter]]:
    """Call specs and dead letters for a folder, glob or ``.jsonl`` manifest.

    Every listed file and every manifest line is either one spec or one dead letter, each
    with its own ``call_id``.

    Raises:
        ValueError: Nothing at all matches ``input_path``.
    """
    is_manifest = input_path.endswith((".jsonl", ".ndjson"))
    if is_manifest and (_is_remote(input_path) or os.path.isfile(input_path)):
        return read_manifest(input_path)
    files = find_audio(input_path)
    if not files and not os.path.exists(input_path) and not glob.glob(input_path):
        raise ValueError(
            f"input {printable(input_path)!r} is not a folder, glob or .jsonl manifest"
        )
    if os.path.isdir(input_path):
        root = input_path
    else:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in files] or ["/"])
    ids = file_call_ids([os.path.abspath(p) for p in files], os.path.abspath(root))
    specs = [
        CallSpec(call_id=call_id, audio=os.path.abspath(p))
        for call_id, p in zip(ids, files, strict=True)
    ]
    return specs, []
