"""Speech chunks sent to the recogniser, and recognised words placed back on the call timeline.

Both backends send only speech: long holds and silences never reach the recogniser (Whisper
invents text in long silences). A chunk is a VAD region padded by ``AsrConfig.region_padding``;
chunks that touch merge while they still fit one window. Whisper packs the chunks of a
channel into 30 s windows with ``faster_whisper.vad.collect_chunks`` and maps each word back
with ``faster_whisper.transcribe.restore_speech_timestamps`` (by the chunk holding the word's
middle); Riva sends one request per chunk. Either way each word is then kept inside its own
chunk, so no word can stretch over a pause between two chunks.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.records import Seconds, SpeechRegion, Word

MIN_WORD: Seconds = 0.06
"""Shortest word span kept (60 ms, about one phone): shorter spans are alignment artefacts
(Whisper gives some words zero length) and are widened inside their chunk."""


@dataclass(frozen=True)
class Chunk:
    """A span of a channel sent to the recogniser, in seconds of the channel."""

    start: Seconds
    end: Seconds

    def samples(self, sample_rate: int) -> dict[str, int]:
        """The chunk as faster-whisper's ``{"start", "end"}`` sample offsets."""
        return {"start": int(round(self.start * sample_rate)),
                "end": int(round(self.end * sample_rate))}


def speech_chunks(
    regions: Sequence[SpeechRegion],
    duration: Seconds,
    padding: Seconds = 0.4,
    max_chunk: Seconds = 29.5,
) -> list[Chunk]:
    """VAD regions padded by ``padding`` (clipped to the call), merged where they overlap.

    Two padded regions that overlap merge unless the merged chunk would exceed ``max_chunk``;
    then the boundary is put halfway between the two regions, so chunks never overlap. A region
    longer than ``max_chunk`` (the VAD splits long speech, so only with a custom VAD) is cut.
    """
    chunks: list[Chunk] = []
    for region in sorted(regions, key=lambda r: r.start):
        start = max(0.0, region.start - padding)
        end = min(duration, region.end + padding)
        if chunks and start <= chunks[-1].end:
            last = chunks[-1]
            if end - last.start <= max_chunk:
                chunks[-1] = Chunk(last.start, max(end, last.end))
                continue
            middle = max(last.start, min(region.start, (last.end - padding + region.start) / 2))
            chunks[-1] = Chunk(last.start, middle)
            start = middle
        while end - start > max_chunk:
            chunks.append(Chunk(start, start + max_chunk))
            start += max_chunk
        chunks.append(Chunk(start, end))
    return [Chunk(round(c.start, 3), round(c.end, 3)) for c in chunks if c.end - c.start > 0.05]


def place_words(words: Sequence[Word], chunks: Sequence[Chunk]) -> list[Word]:
    """Keep each word (already in channel time) inside the chunk that holds its middle.

    A word the recogniser put partly outside its chunk (in the padding between two packed
    chunks, or past a request's end) is clipped to the chunk; a word shorter than
    ``MIN_WORD`` is widened around its middle, still inside the chunk.
    """
    starts = [c.start for c in chunks]
    out: list[Word] = []
    for w in words:
        middle = (w.start + w.end) / 2
        i = max(0, bisect.bisect_right(starts, middle) - 1)
        chunk = chunks[i]
        start = min(max(w.start, chunk.start), chunk.end)
        end = min(max(w.end, start), chunk.end)
        if end - start < MIN_WORD:
            half = min(MIN_WORD, chunk.end - chunk.start) / 2
            mid = min(max((start + end) / 2, chunk.start + half), chunk.end - half)
            start, end = mid - half, mid + half
        out.append(Word(round(float(start), 3), round(float(end), 3), w.text, float(w.probability)))
    return sorted(out, key=lambda x: (x.start, x.end))


def join_word_pieces(pieces: Sequence[tuple[float, float, str, float]]) -> list[Word]:
    """Words from ``(start, end, raw_text, probability)`` pieces as the recogniser spelled them.

    Whisper's word texts carry their own leading space; a piece without one continues the
    previous word ("Mm" + "-hmm" is "Mm-hmm", "ma" + "'am" is "ma'am"). The joined word spans
    both pieces and keeps the lower probability.
    """
    words: list[Word] = []
    for start, end, raw, probability in pieces:
        text = raw.strip()
        if not text:
            continue
        if words and not raw[:1].isspace():
            prev = words[-1]
            words[-1] = Word(prev.start, max(prev.end, end), prev.text + text,
                             min(prev.probability, probability))
            continue
        words.append(Word(start, end, text, probability))
    return words
