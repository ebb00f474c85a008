"""Cutting a channel into recogniser-sized chunks around the VAD's speech regions.

Both backends send only speech: long holds and silences never reach the recogniser (Whisper
invents text in long silences), and times come back offset to the channel's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class Window:
    """Speech chunks packed into one recogniser request, separated by short silences.

    Whisper's encoder always processes 30 s, so a 3 s request costs as much encoder time as a
    full one; packing the chunks of a channel into full windows (as faster-whisper's own VAD
    path does) cuts the number of requests several times. ``pieces`` are the chunks in
    source time; ``offsets`` where each starts inside the window.
    """

    pieces: tuple[Chunk, ...]
    offsets: tuple[Seconds, ...]
    gap: Seconds

    @property
    def duration(self) -> Seconds:
        last = self.pieces[-1]
        return self.offsets[-1] + (last.end - last.start)

    def audio(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The window's audio: each piece of ``samples``, then ``gap`` seconds of silence."""
        silence = np.zeros(int(round(self.gap * sample_rate)), dtype=samples.dtype)
        parts: list[np.ndarray] = []
        for i, piece in enumerate(self.pieces):
            if i:
                parts.append(silence)
            parts.append(samples[int(piece.start * sample_rate) : int(piece.end * sample_rate)])
        return np.concatenate(parts) if parts else samples[:0]

    def to_source(self, t: Seconds) -> Seconds:
        """Map a time inside the window to the channel's timeline (gaps snap to a piece)."""
        for piece, offset in zip(reversed(self.pieces), reversed(self.offsets), strict=True):
            if t >= offset:
                return min(piece.end, piece.start + (t - offset))
        return self.pieces[0].start

    def words_to_source(self, words: Sequence[Word]) -> list[Word]:
        """Words with window times mapped back to the channel's timeline."""
        out = []
        for w in words:
            start = self.to_source(w.start)
            end = max(start, self.to_source(w.end))
            out.append(Word(round(start, 3), round(end, 3), w.text, w.probability))
        return out


def speech_windows(
    regions: Sequence[SpeechRegion],
    duration: Seconds,
    padding: Seconds = 0.2,
    max_window: Seconds = 28.0,
    gap: Seconds = 0.5,
) -> list[Window]:
    """Pack the channel's speech chunks, in time order, into windows of at most ``max_window``.

    ``gap`` seconds of silence separate two chunks inside a window, enough for the recogniser
    to end a sentence there.
    """
    windows: list[Window] = []
    pieces: list[Chunk] = []
    offsets: list[Seconds] = []
    length = 0.0
    for chunk in speech_chunks(regions, duration, padding, max_window):
        size = chunk.end - chunk.start
        if pieces and length + gap + size > max_window:
            windows.append(Window(tuple(pieces), tuple(offsets), gap))
            pieces, offsets, length = [], [], 0.0
        offsets.append(length + gap if pieces else 0.0)
        length = offsets[-1] + size
        pieces.append(chunk)
    if pieces:
        windows.append(Window(tuple(pieces), tuple(offsets), gap))
    return windows
