"""Turning the run's INPUT (a folder, a glob or a JSONL manifest) into validated call specs.

A JSONL manifest has one call per line::

    {"call_id": "c-001", "audio": "calls/c-001.flac", "agent_id": "a-17",
     "started_at": "2026-11-02T09:14:00Z", "queue": "billing", "language": "en",
     "channels": {"agent": 0, "customer": 1}}

A mono recording may say who speaks first (``"first_speaker": "agent"``), which forces the
roles the diarization stage would otherwise detect.

``audio`` (also accepted: ``audio_path``, ``uri``, ``path``) may be relative to the manifest's
folder or any URI Beam's filesystems read. Without a manifest every audio file found becomes
a call whose ``call_id`` is the file name without its extension. Rows that fail validation
become dead letters (stage ``manifest``), never a crash and never silently dropped.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from typing import Any

from pipeline.records import CallSpec, DeadLetter

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".au")
AUDIO_KEYS = ("audio", "audio_path", "uri", "path")
KNOWN_KEYS = {
    "call_id", "agent_id", "started_at", "queue", "language", "channels", "first_speaker",
    *AUDIO_KEYS,
}
FIRST_SPEAKER_ROLES = ("agent", "customer")


def _is_remote(path: str) -> bool:
    return "://" in path


def parse_manifest_row(row: Any, base_dir: str) -> CallSpec:
    """Validate one manifest row into a :class:`CallSpec`.

    Raises:
        ValueError: The row is not an object, lacks an id or audio, or its channel map is
            malformed.
    """
    if not isinstance(row, dict):
        raise ValueError(f"a manifest row must be a JSON object, got {type(row).__name__}")
    unknown = set(row) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown manifest fields {sorted(unknown)}")
    audio = next((row[k] for k in AUDIO_KEYS if row.get(k)), None)
    if not isinstance(audio, str):
        raise ValueError(f"no audio path (one of {', '.join(AUDIO_KEYS)})")
    if _is_remote(base_dir) and not _is_remote(audio):
        audio = f"{base_dir}/{audio}"
    elif not _is_remote(audio) and not os.path.isabs(audio):
        audio = os.path.normpath(os.path.join(base_dir, audio))
    call_id = row.get("call_id") or os.path.splitext(os.path.basename(audio))[0]
    if not isinstance(call_id, str) or not call_id.strip() or "/" in call_id:
        raise ValueError(f"call_id must be a non-empty string without '/', got {call_id!r}")
    channels = row.get("channels") or {}
    if not isinstance(channels, dict) or set(channels) - {"agent", "customer"}:
        raise ValueError(f'channels must look like {{"agent": 0, "customer": 1}}, got {channels!r}')
    agent_channel = channels.get("agent", 0)
    customer_channel = channels.get("customer", 1 if agent_channel == 0 else 0)
    for name, value in (("agent", agent_channel), ("customer", customer_channel)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"channels.{name} must be a channel index >= 0, got {value!r}")
    first_speaker = row.get("first_speaker")
    if first_speaker is not None and first_speaker not in FIRST_SPEAKER_ROLES:
        raise ValueError(f"first_speaker must be 'agent' or 'customer', got {first_speaker!r}")
    for key in ("agent_id", "started_at", "queue", "language"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ValueError(f"{key} must be a string, got {row[key]!r}")
    return CallSpec(
        call_id=call_id.strip(),
        audio=audio,
        agent_id=row.get("agent_id"),
        started_at=row.get("started_at"),
        queue=row.get("queue"),
        language=row.get("language") or "en",
        agent_channel=agent_channel,
        customer_channel=customer_channel,
        first_speaker=first_speaker,
    )


def read_manifest(path: str) -> tuple[list[CallSpec], list[DeadLetter]]:
    """Read a JSONL manifest; bad rows come back as dead letters."""
    specs: list[CallSpec] = []
    dead: list[DeadLetter] = []
    if _is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        base_dir = path.rsplit("/", 1)[0]
        with FileSystems.open(path, compression_type="uncompressed") as f:
            lines = f.read().decode("utf-8").splitlines()
    else:
        base_dir = os.path.dirname(os.path.abspath(path))
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{os.path.basename(path)}:{line_no}"
        try:
            specs.append(parse_manifest_row(json.loads(line), base_dir))
        except (ValueError, json.JSONDecodeError) as e:
            dead.append(DeadLetter(where, "manifest", type(e).__name__, str(e), path))
    return specs, dead


def find_audio(pattern: str) -> list[str]:
    """Audio files under a folder (recursively) or matching a glob, sorted."""
    if os.path.isdir(pattern):
        paths: Iterable[str] = glob.glob(os.path.join(pattern, "**", "*"), recursive=True)
    else:
        paths = glob.glob(pattern, recursive=True)
    return sorted(p for p in paths if os.path.isfile(p) and p.lower().endswith(AUDIO_EXTENSIONS))


def resolve_input(input_path: str) -> tuple[list[CallSpec], list[DeadLetter]]:
    """Call specs and dead letters for a folder, glob or ``.jsonl`` manifest.

    Calls are de-duplicated by ``call_id`` (the first in sorted audio order wins; the others
    become ``DuplicateCallId`` dead letters), so a re-run writes the same rows.

    Raises:
        ValueError: Nothing at all matches ``input_path``.
    """
    is_manifest = input_path.endswith((".jsonl", ".ndjson"))
    if is_manifest and (_is_remote(input_path) or os.path.isfile(input_path)):
        specs, dead = read_manifest(input_path)
    else:
        files = find_audio(input_path)
        if not files and not os.path.exists(input_path) and not glob.glob(input_path):
            raise ValueError(f"input {input_path!r} is not a folder, glob or .jsonl manifest")
        specs = [
            CallSpec(call_id=os.path.splitext(os.path.basename(p))[0], audio=os.path.abspath(p))
            for p in files
        ]
        dead = []
    unique: dict[str, CallSpec] = {}
    for spec in sorted(specs, key=lambda s: (s.call_id, s.audio)):
        if spec.call_id in unique:
            dead.append(
                DeadLetter(
                    spec.call_id,
                    "manifest",
                    "DuplicateCallId",
                    f"call_id {spec.call_id!r} already used by {unique[spec.call_id].audio}",
                    spec.audio,
                )
            )
        else:
            unique[spec.call_id] = spec
    return list(unique.values()), dead
