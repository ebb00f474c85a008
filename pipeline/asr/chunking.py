"""Cutting a channel into recogniser-sized chunks around the VAD's speech regions.

Both backends send only speech: long holds and silences never reach the recogniser (Whisper
invents text in long silences), and times come back offset to the channel's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.records import Seconds, SpeechRegion, Word


@dataclass(frozen=True)
class Chunk:
    """A span of a channel sent to the recogniser in one request."""

    start: Seconds
    end: Seconds


def speech_chunks(
    regions: Sequence[SpeechRegion],
    duration: Seconds,
    padding: Seconds = 0.2,
    max_chunk: Seconds = 28.0,
    max_gap: Seconds = 1.0,
) -> list[Chunk]:
    """Merge speech regions into chunks no longer than ``max_chunk`` seconds.

    Regions closer than ``max_gap`` join one chunk, so the recogniser sees whole phrases; a
    region longer than ``max_chunk`` is split at ``max_chunk`` boundaries.
    """
    chunks: list[Chunk] = []
    for region in sorted(regions, key=lambda r: r.start):
        start = max(0.0, region.start - padding)
        end = min(duration, region.end + padding)
        while end - start > max_chunk:
            chunks.append(Chunk(start, start + max_chunk))
            start += max_chunk
        if chunks and start - chunks[-1].end <= max_gap and end - chunks[-1].start <= max_chunk:
            chunks[-1] = Chunk(chunks[-1].start, max(end, chunks[-1].end))
        elif chunks and start < chunks[-1].end:
            chunks.append(Chunk(chunks[-1].end, end))
        else:
            chunks.append(Chunk(start, end))
    return [c for c in chunks if c.end - c.start > 0.05]


def offset_words(words: Sequence[Word], offset: Seconds, limit: Seconds) -> list[Word]:
    """Shift chunk-relative ``words`` by ``offset`` and clip them to ``limit``."""
    out = []
    for w in words:
        start = min(limit, max(0.0, w.start + offset))
        end = min(limit, max(start, w.end + offset))
        out.append(Word(round(start, 3), round(end, 3), w.text, w.probability))
    return out
