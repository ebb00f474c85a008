"""Word timing through the real Silero VAD and Whisper: packing, mapping back, re-runs."""

from __future__ import annotations

import numpy as np

from pipeline.asr.chunking import Chunk, join_word_pieces, place_words, speech_chunks
from pipeline.audio import load_call
from pipeline.records import CallSpec, SpeechRegion, Word
from pipeline.utterances import MAX_WORD


def test_a_word_placed_in_a_packing_gap_stays_inside_its_chunk():
    chunks = [Chunk(10.0, 12.0), Chunk(19.6, 21.0)]
    # Mapped back by its middle (11.9 s) the word belongs to the first chunk, but its end
    # fell 7.6 s later: before, such a word was stretched over the whole pause.
    words = place_words([Word(11.7, 19.7, "Yes,", 0.8), Word(20.0, 20.0, "Okay.", 0.9)], chunks)
    assert (words[0].start, words[0].end) == (11.7, 12.0)
    assert words[1].end - words[1].start >= 0.06 - 1e-9  # zero-length word widened
    assert 19.6 <= words[1].start and words[1].end <= 21.0


def test_chunks_are_padded_merged_and_never_overlap():
    regions = [SpeechRegion(1.0, 3.0), SpeechRegion(3.5, 5.0), SpeechRegion(9.0, 9.5),
               SpeechRegion(9.6, 38.0)]
    chunks = speech_chunks(regions, duration=40.0, padding=0.4, max_chunk=29.5)
    assert chunks[0] == Chunk(0.6, 5.4)  # the first two regions share their padding
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(c.end - c.start <= 29.5 + 1e-9 for c in chunks)
    assert chunks[-1].end == 38.4


def test_word_pieces_are_joined_as_whisper_spells_them():
    pieces = [(1.0, 1.2, " Mm", 0.9), (1.2, 1.4, "-hmm.", 0.7), (2.0, 2.3, " Yes", 0.95),
              (2.3, 2.4, " ma", 0.8), (2.4, 2.6, "'am", 0.6), (3.0, 3.2, " in", 0.9),
              (3.2, 3.5, "-house", 0.9), (3.6, 3.9, " ", 0.1)]
    words = join_word_pieces(pieces)
    assert [w.text for w in words] == ["Mm-hmm.", "Yes", "ma'am", "in-house"]
    assert (words[0].start, words[0].end, words[0].probability) == (1.0, 1.4, 0.7)


def _agent_channel(sample_calls):
    audio = load_call(CallSpec("x", str(sample_calls[0])))
    return audio.channel(0).samples


def test_real_words_stay_inside_speech_and_no_word_is_stretched(vad, whisper, sample_calls):
    samples = _agent_channel(sample_calls)
    regions = vad(samples)
    gaps = [b.start - a.end for a, b in zip(regions, regions[1:], strict=False)]
    assert max(gaps) > 5.0  # the channel has long pauses (the customer's turns, a hold)
    words = whisper.transcribe(samples, 16000, regions)
    assert len(words) > 50
    chunks = speech_chunks(regions, len(samples) / 16000, whisper.config.region_padding,
                           whisper.config.max_chunk)
    for w in words:
        assert isinstance(w.start, float) and isinstance(w.end, float)
        assert w.end - w.start <= MAX_WORD, w
        # Inside the padded speech it was recognised in, never in a pause between chunks.
        assert any(c.start <= w.start and w.end <= c.end for c in chunks), w


def test_the_same_channel_transcribes_the_same_way_every_time(vad, whisper, sample_calls):
    samples = _agent_channel(sample_calls)
    regions = vad(samples)
    runs = [whisper.transcribe(samples, 16000, regions) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert np.isfinite([w.probability for w in runs[0]]).all()
