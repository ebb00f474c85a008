"""Turning the run's INPUT (a folder, a glob or a JSONL manifest) into validated call specs.

A JSONL manifest has one call per line::

    {"call_id": "c-001", "audio": "calls/c-001.flac", "agent_id": "a-17",
     "started_at": "2026-11-02T09:14:00Z", "queue": "billing", "language": "en",
     "channels": {"agent": 0, "customer": 1}}

A mono recording may say who speaks first (``"first_speaker": "agent"``), which forces the
roles the diarization stage would otherwise detect.

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
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipeline.records import CallSpec, DeadLetter, printable

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".au")
AUDIO_KEYS = ("audio", "audio_path", "uri", "path")
KNOWN_KEYS = {
    "call_id", "agent_id", "started_at", "queue", "language", "channels", "first_speaker",
    *AUDIO_KEYS,
}
FIRST_SPEAKER_ROLES = ("agent", "customer")
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
    first_speaker = row.get("first_speaker")
    if first_speaker is not None and first_speaker not in FIRST_SPEAKER_ROLES:
        raise ManifestError(
            "BadField", f"first_speaker must be 'agent' or 'customer', got {_short(first_speaker)}"
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
        first_speaker=first_speaker,
    )


@dataclass(frozen=True)
class ListedLine:
    """One non-blank manifest line after parsing: its spec, or why it was rejected.

    Attributes:
        where: ``<manifest name>:<line>``, the line's id when it cannot keep its own.
        line_no: Line number (1-based); earlier lines win a contested ``call_id``.
        spec: The call, when the line is valid.
        claimed_id: The valid ``call_id`` the line asks for, valid line or not.
        audio: The line's audio path, as far as it could be read.
        error_code: Why the line was rejected (empty when valid).
        error_message: What was wrong, for a person.
    """

    where: str
    line_no: int
    spec: CallSpec | None
    claimed_id: str | None
    audio: str = ""
    error_code: str = ""
    error_message: str = ""

    @property
    def claim(self) -> str:
        """The id this line competes for (its place when it claims none)."""
        return self.claimed_id or self.where


def _manifest_name(path: str) -> str:
    return printable(os.path.basename(path.rstrip("/")))


def _manifest_base_dir(path: str) -> str:
    return path.rsplit("/", 1)[0] if _is_remote(path) else os.path.dirname(os.path.abspath(path))


def iter_manifest_lines(path: str) -> Iterator[ListedLine]:
    """Parse a JSONL manifest line by line, streaming: one :class:`ListedLine` per non-blank
    line. A UTF-8 BOM at the start is dropped; each line is decoded on its own, so a bad byte
    rejects that line only."""
    if _is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        f = FileSystems.open(path, compression_type="uncompressed")
    else:
        f = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    name, base_dir = _manifest_name(path), _manifest_base_dir(path)
    try:
        for line_no, raw in enumerate(f, start=1):
            line = raw.rstrip(b"\n").rstrip(b"\r")
            if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if line.strip():
                yield _parse_line(f"{name}:{line_no}", line_no, line, base_dir)
    finally:
        f.close()


def _parse_line(where: str, line_no: int, line: bytes, base_dir: str) -> ListedLine:
    row: Any = None
    try:
        if len(line) > MAX_ROW_BYTES:
            raise ManifestError(
                "RowTooLong", f"the line is {len(line)} bytes long (at most {MAX_ROW_BYTES})"
            )
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(
                "InvalidUtf8",
                f"byte {e.start} of the line is not UTF-8 ({line[e.start:e.end]!r})",
            ) from e
        try:
            row = json.loads(text)
        except RecursionError as e:
            raise ManifestError("InvalidJson", "the line nests too deeply") from e
        except ValueError as e:
            raise ManifestError("InvalidJson", f"not JSON: {printable(str(e))}") from e
        spec = parse_manifest_row(row, base_dir)
    except ManifestError as e:
        return ListedLine(where, line_no, None, _claimed_id(row), _row_audio(row), e.code,
                          str(e))
    return ListedLine(where, line_no, spec, spec.call_id, spec.audio)


def _claimed_id(row: Any) -> str | None:
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


Settled = tuple[int, CallSpec | DeadLetter]  # (line number, outcome)


def settle_claims(lines: Iterable[ListedLine]) -> Iterator[Settled]:
    """Outcomes of the lines that compete for one id.

    The first valid line keeps the id; a later valid line is a ``DuplicateCallId``; a
    rejected line keeps its own ``call_id`` when no other line claims it, and is otherwise
    named by its place.
    """
    ordered = sorted(lines, key=lambda line: line.line_no)
    winner = next((line for line in ordered if line.spec is not None), None)
    for line in ordered:
        if line is winner and line.spec is not None:
            yield line.line_no, line.spec
            continue
        if line.spec is not None:
            code = "DuplicateCallId"
            message = f"call_id {line.spec.call_id!r} is already used by an earlier line"
        else:
            code, message = line.error_code, line.error_message
        own = line.claimed_id if len(ordered) == 1 and line.claimed_id else line.where
        yield line.line_no, DeadLetter(own, STAGE, code, f"{line.where}: {message}", line.audio)


def settle_collisions(outcomes: Iterable[Settled]) -> Iterator[Settled]:
    """Outcomes sharing one id (a rejected line's place ``m.jsonl:3`` that a valid line uses
    as its call_id): the call keeps it, the others get ``#2``, ``#3``... in line order."""
    ordered = sorted(outcomes, key=lambda o: (isinstance(o[1], DeadLetter), o[0]))
    for n, (line_no, outcome) in enumerate(ordered, start=1):
        if n > 1 and isinstance(outcome, DeadLetter):
            outcome = replace(outcome, call_id=f"{outcome.call_id}#{n}")
        yield line_no, outcome


def _group(items: Iterable[Any], key: Callable[[Any], str]) -> list[list[Any]]:
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def read_manifest(path: str) -> tuple[list[CallSpec], list[DeadLetter]]:
    """Read a JSONL manifest on this machine; each non-blank line is one spec or one dead
    letter (:class:`ListInputs` does the same inside a pipeline).

    A bad line (not UTF-8, not JSON, an invalid field, a ``call_id`` already used by an
    earlier line) rejects that line only.
    """
    claims = _group(iter_manifest_lines(path), lambda line: line.claim)
    settled = [o for group in claims for o in settle_claims(group)]
    final = sorted(
        (o for group in _group(settled, lambda o: o[1].call_id) for o in settle_collisions(group)),
        key=lambda o: o[0],
    )
    specs = [o for _, o in final if isinstance(o, CallSpec)]
    dead = [o for _, o in final if isinstance(o, DeadLetter)]
    return specs, dead


def iter_audio(pattern: str) -> Iterator[str]:
    """Every entry with an audio extension under a folder (recursively) or matching a glob.

    Entries are not opened or followed: directories, FIFOs and links named like audio are
    listed too, so that each ends as a failed call with a precise error instead of vanishing.
    """
    if os.path.isdir(pattern):
        for folder, dirs, files in os.walk(pattern, followlinks=False):
            dirs.sort()
            for name in (*dirs, *sorted(files)):
                if name.lower().endswith(AUDIO_EXTENSIONS):
                    yield os.path.join(folder, name)
    else:
        for path in glob.iglob(pattern, recursive=True):
            if path.lower().endswith(AUDIO_EXTENSIONS):
                yield path


def find_audio(pattern: str) -> list[str]:
    """:func:`iter_audio`, sorted by bytes so the order is the same on every run."""
    return sorted(iter_audio(pattern), key=os.fsencode)


def listing_root(pattern: str) -> str:
    """The folder ids are made relative to: the folder itself, or a glob's longest leading
    part without wildcards (so an id does not depend on what else matched)."""
    if os.path.isdir(pattern):
        return os.path.abspath(pattern)
    parts = os.path.abspath(pattern).split(os.sep)
    fixed = list(itertools.takewhile(lambda part: not glob.has_magic(part), parts[:-1]))
    return os.sep.join(fixed) or os.sep


def _stem_id(path: str) -> str:
    return printable(os.path.splitext(os.path.basename(path))[0]).strip()


def _relative_id(path: str, root: str) -> str:
    relative = printable(os.path.relpath(path, root)).replace(os.sep, "/")
    return relative.replace("/", PATH_SEPARATOR_IN_ID)


def _hashed_id(call_id: str, path: str) -> str:
    return f"{call_id}#{hashlib.sha1(os.fsencode(path)).hexdigest()[:8]}"


def name_by_stem(stem: str, paths: list[str], root: str) -> list[tuple[str, str]]:
    """``(id, path)`` for the files sharing one stem: the stem when it is alone (and not
    blank), else each file's relative path."""
    if stem and len(paths) == 1:
        return [(stem, paths[0])]
    return [(_relative_id(p, root), p) for p in paths]


def name_apart(call_id: str, paths: list[str]) -> list[tuple[str, str]]:
    """``(id, path)`` for files given one id: a relative-path id that equals another file's
    stem (a file named ``sub~a.wav.wav``) gets a short hash of each path."""
    if len(paths) == 1:
        return [(call_id, paths[0])]
    return [(_hashed_id(call_id, p), p) for p in paths]


def file_call_ids(paths: list[str], root: str) -> list[str]:
    """One unique, stable call id per path (see the module docstring).

    Args:
        paths: Absolute audio paths, as listed by :func:`find_audio`.
        root: The folder ids are made relative to.
    """
    by_stem = _group(paths, _stem_id)
    named = [n for group in by_stem for n in name_by_stem(_stem_id(group[0]), group, root)]
    by_id = _group(named, lambda n: n[0])
    final = dict(
        (path, call_id)
        for group in by_id
        for call_id, path in name_apart(group[0][0], [p for _, p in group])
    )
    return [final[p] for p in paths]


def is_manifest(input_path: str) -> bool:
    """Whether ``input_path`` names a JSONL manifest (rather than a folder or glob)."""
    return input_path.endswith((".jsonl", ".ndjson")) and (
        _is_remote(input_path) or os.path.isfile(input_path)
    )


def check_input(input_path: str) -> None:
    """Raise ``ValueError`` when ``input_path`` is no manifest, folder or glob with a match.

    Looks at one match at most, so the driver stays free of per-call state.
    """
    if is_manifest(input_path) or os.path.isdir(input_path) or _is_remote(input_path):
        return
    if next(glob.iglob(input_path, recursive=True), None) is None:
        raise ValueError(
            f"input {printable(input_path)!r} is not a folder, glob or .jsonl manifest"
        )


def resolve_input(input_path: str) -> tuple[list[CallSpec], list[DeadLetter]]:
    """Call specs and dead letters for a folder, glob or ``.jsonl`` manifest, on this machine.

    Every listed file and every manifest line is either one spec or one dead letter, each
    with its own ``call_id``. :class:`ListInputs` gives the same inside a pipeline.

    Raises:
        ValueError: Nothing at all matches ``input_path``.
    """
    if is_manifest(input_path):
        return read_manifest(input_path)
    check_input(input_path)
    files = find_audio(input_path)
    paths = [os.path.abspath(p) for p in files]
    ids = file_call_ids(paths, listing_root(input_path))
    return [CallSpec(call_id=i, audio=p) for i, p in zip(ids, paths, strict=True)], []


# --- listing inside the pipeline -------------------------------------------------------------


def _split_outcome(outcome: Settled) -> Iterator[Any]:
    _, value = outcome
    yield TaggedOutput(ListInputs.REJECTED, value) if isinstance(value, DeadLetter) else value


class ListInputs(beam.PTransform):
    """A folder, glob or manifest -> CallSpec (main) and DeadLetter (``rejected``), listed by
    workers: the driver holds only the input path, never a row per call.

    The outcome is the same as :func:`resolve_input`'s: grouping by key (``GroupByKey``)
    replaces the in-memory dictionaries. Local folders are walked by :func:`iter_audio`;
    remote ones (``gs://bucket/calls/**.flac``) matched by Beam's ``fileio.MatchFiles``.
    """

    REJECTED = "rejected"

    def __init__(self, input_path: str):
        super().__init__()
        self.input_path = input_path

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        if is_manifest(self.input_path):
            outcomes = self._manifest(pbegin)
        else:
            outcomes = self._files(pbegin)
        return outcomes | "Route" >> beam.FlatMap(_split_outcome).with_outputs(
            self.REJECTED, main="specs"
        )

    def _manifest(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "Manifest" >> beam.Create([self.input_path])
            | "ReadLines" >> beam.FlatMap(iter_manifest_lines)
            | "KeyClaims" >> beam.Map(lambda line: (line.claim, line))
            | "GroupClaims" >> beam.GroupByKey()
            | "SettleClaims" >> beam.FlatMap(lambda kv: settle_claims(kv[1]))
            | "KeyIds" >> beam.Map(lambda o: (o[1].call_id, o))
            | "GroupIds" >> beam.GroupByKey()
            | "SettleIds" >> beam.FlatMap(lambda kv: settle_collisions(kv[1]))
        )

    def _files(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        pattern = self.input_path
        if _is_remote(pattern):
            from apache_beam.io import fileio

            if not glob.has_magic(pattern):
                pattern = pattern.rstrip("/") + "/**"
            paths = (
                pbegin
                | "Match" >> fileio.MatchFiles(pattern)
                | "AudioOnly" >> beam.Filter(lambda m: m.path.lower().endswith(AUDIO_EXTENSIONS))
                | "Paths" >> beam.Map(lambda m: os.fsencode(m.path))
            )
            root = pattern.split("*", 1)[0].rsplit("/", 1)[0]
        else:
            paths = (
                pbegin
                | "Pattern" >> beam.Create([pattern])
                | "Walk"
                >> beam.FlatMap(lambda p: (os.fsencode(os.path.abspath(x)) for x in iter_audio(p)))
            )
            root = listing_root(pattern)
        # Paths travel as bytes: a name that is not UTF-8 cannot be a Beam string.
        return (
            paths
            | "KeyStems" >> beam.Map(lambda p: (_stem_id(os.fsdecode(p)), p))
            | "GroupStems" >> beam.GroupByKey()
            | "NameByStem" >> beam.FlatMap(
                lambda kv: ((i, os.fsencode(p)) for i, p in
                            name_by_stem(kv[0], sorted(map(os.fsdecode, kv[1])), root))
            )
            | "GroupIds" >> beam.GroupByKey()
            | "NameApart" >> beam.FlatMap(
                lambda kv: (
                    (0, CallSpec(call_id=call_id, audio=path))
                    for call_id, path in name_apart(kv[0], sorted(map(os.fsdecode, kv[1])))
                )
            )
        )
