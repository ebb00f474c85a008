"""Grouping words into utterances and numbering them across channels."""

from __future__ import annotations

from pipeline.records import ChannelTranscript, Utterance, Word
from pipeline.utterances import (
    UtteranceConfig,
    build_utterances,
    group_words,
    previous_turns,
    timing_problems,
)


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


def test_an_utterance_never_spans_the_other_partys_turn():
    # The agent pauses 0.5 s (under max_pause, no sentence end) while the customer answers.
    agent = ChannelTranscript("c2", 0, "agent", (), _words([
        (0.0, 0.4, "and"), (0.45, 0.8, "your"), (1.3, 1.7, "postcode"), (1.75, 2.0, "is"),
    ]))
    customer = ChannelTranscript("c2", 1, "customer", (), _words([(0.85, 1.25, "yes")]))
    utterances = build_utterances("c2", [agent, customer])
    assert [(u.role, u.text) for u in utterances] == [
        ("agent", "and your"), ("customer", "yes"), ("agent", "postcode is"),
    ]
    assert timing_problems(utterances) == ()


def test_timing_problems_name_each_broken_invariant():
    def u(n, channel, words, start=None, end=None):
        ws = _words(words)
        return Utterance(f"c/u{n:04d}", "c", ("agent", "customer")[channel], channel,
                         ws[0].start if start is None else start,
                         ws[-1].end if end is None else end,
                         " ".join(w.text for w in ws), ws, 0.9)

    stretched = u(1, 0, [(10.0, 17.6, "Yes,")])
    zero = u(2, 1, [(20.0, 20.0, "Okay.")])
    outside = u(3, 0, [(30.0, 30.5, "well"), (30.6, 31.0, "then")], end=30.8)
    spanning = u(4, 0, [(40.0, 40.4, "so"), (43.0, 43.4, "right")])
    inside = u(5, 1, [(41.0, 41.5, "uh"), (41.6, 42.0, "huh")])
    problems = timing_problems([stretched, zero, outside, spanning, inside])
    assert any("c/u0001 has a word of 7.6 s" in p for p in problems)
    assert any("c/u0002 has zero length" in p for p in problems)
    assert any("c/u0003 has words outside its span" in p for p in problems)
    assert any("c/u0004 spans c/u0005" in p for p in problems)
    assert len(problems) == 4
