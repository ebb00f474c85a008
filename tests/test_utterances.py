"""Grouping words into utterances and numbering them across channels."""

from __future__ import annotations

from pipeline.records import ChannelTranscript, Utterance, Word
from pipeline.utterances import UtteranceConfig, build_utterances, group_words, previous_turns


def _words(spec):
    return tuple(Word(s, e, t, 0.9) for s, e, t in spec)


def test_pauses_and_sentence_ends_split_utterances():
    words = _words([
        (0.0, 0.3, "Hello,"), (0.35, 0.6, "thanks"), (0.65, 0.9, "for"), (0.95, 1.3, "calling."),
        (1.6, 1.9, "How"), (1.95, 2.1, "can"), (2.15, 2.3, "I"), (2.35, 2.7, "help?"),
        (3.0, 3.2, "Our"), (3.25, 3.5, "fees."), (3.6, 3.9, "They"), (5.2, 5.5, "rose"),
    ])
    groups = group_words(words, UtteranceConfig())
    texts = [" ".join(w.text for w in g) for g in groups]
    # A sentence end splits after a 0.25 s pause but not after 0.1 s; 0.8 s always splits.
    assert texts == ["Hello, thanks for calling.", "How can I help?", "Our fees. They", "rose"]


def test_long_run_without_punctuation_is_cut():
    words = _words([(i * 0.5, i * 0.5 + 0.4, "word") for i in range(100)])
    groups = group_words(words, UtteranceConfig(max_duration=10.0))
    assert len(groups) > 1
    assert all(g[-1].end - g[0].start <= 20.0 + 0.5 for g in groups)
    assert sum(len(g) for g in groups) == 100


def test_utterances_are_numbered_in_time_order_across_channels():
    agent_words = _words([(0.0, 1.0, "Hi."), (5.0, 6.0, "Sure.")])
    agent = ChannelTranscript("c1", 0, "agent", (), agent_words)
    customer = ChannelTranscript("c1", 1, "customer", (), _words([(2.0, 3.0, "Help?")]))
    utterances = build_utterances("c1", [customer, agent])
    assert [(u.utterance_id, u.role, u.text) for u in utterances] == [
        ("c1/u0001", "agent", "Hi."),
        ("c1/u0002", "customer", "Help?"),
        ("c1/u0003", "agent", "Sure."),
    ]
    assert utterances[1].channel == 1 and utterances[1].confidence == 0.9


def test_previous_turn_is_what_the_other_party_said_since():
    def u(n, role, start, text):
        return Utterance(f"c/u{n:04d}", "c", role, 0, start, start + 1, text, (), 1.0)

    utterances = [
        u(1, "agent", 0, "How can I help?"),
        u(2, "customer", 2, "My parcel is late."),
        u(3, "customer", 4, "It was due Monday."),
        u(4, "agent", 6, "So your parcel due Monday has not arrived."),
        u(5, "agent", 8, "Let me check."),
    ]
    context = previous_turns(utterances)
    assert context["c/u0001"] == ""
    assert context["c/u0002"] == "How can I help?"
    assert context["c/u0003"] == "How can I help?"
    assert context["c/u0004"] == "My parcel is late. It was due Monday."
    assert context["c/u0005"] == "My parcel is late. It was due Monday."


def test_windows_pack_chunks_and_map_times_back():
    import numpy as np

    from pipeline.asr.chunking import speech_windows
    from pipeline.records import SpeechRegion

    regions = [SpeechRegion(1.0, 4.0), SpeechRegion(10.0, 20.0), SpeechRegion(40.0, 55.0)]
    windows = speech_windows(regions, 60.0, padding=0.0, max_window=28.0, gap=0.5)
    assert [[(p.start, p.end) for p in w.pieces] for w in windows] == [
        [(1.0, 4.0), (10.0, 20.0)],
        [(40.0, 55.0)],
    ]
    first = windows[0]
    assert first.offsets == (0.0, 3.5) and first.duration == 13.5
    assert first.to_source(0.5) == 1.5
    assert first.to_source(3.2) == 4.0  # inside the gap: snaps to the end of the piece
    assert first.to_source(5.0) == 11.5
    audio = first.audio(np.ones(60 * 100, dtype=np.float32), 100)
    assert audio.shape == (1350,) and audio[300:350].sum() == 0
    mapped = first.words_to_source([Word(4.0, 4.5, "hi", 0.9)])
    assert (mapped[0].start, mapped[0].end) == (10.5, 11.0)
