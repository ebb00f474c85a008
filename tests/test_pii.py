"""PII redaction: spoken-number normalisation, detection, redaction of words and text, the
Beam stage failing closed, and a whole run that must leave no planted value in any table."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.pii import (
    CARD_CVV,
    CARD_EXPIRY,
    CREDIT_CARD,
    PHONE_NUMBER,
    ROUTING_NUMBER,
    US_SSN,
    PiiConfig,
    Redaction,
    RedactionError,
    Redactor,
    RedactPii,
    classify_digits,
    normalize,
    silence_intervals,
)
from pipeline.records import (
    AGENT,
    CUSTOMER,
    CallHeader,
    CallSpec,
    CallSummary,
    CallTranscript,
    ChannelTranscript,
    Utterance,
    Word,
)
from pipeline.run import TranscribeCalls as RealTranscribeCalls
from tests.conftest import FIXTURES, ROOT
from tools.piigen import luhn_complete

# A Luhn-valid test card number nobody issued (made by the generator's completion).
CARD = luhn_complete("4539", 16, __import__("random").Random(7))
DIGIT = "zero one two three four five six seven eight nine".split()


def spoken(digits: str) -> str:
    return " ".join(DIGIT[int(d)] for d in digits)


def utterance(call_id: str, n: int, role: str, text: str, start: float) -> Utterance:
    words = tuple(Word(round(start + 0.4 * k, 3), round(start + 0.4 * k + 0.3, 3), w, 0.9)
                  for k, w in enumerate(text.split()))
    return Utterance(f"{call_id}/u{n:04d}", call_id, role, 0 if role == AGENT else 1,
                     words[0].start, words[-1].end, text, words, 0.9)


def call_of(call_id: str, turns: list[tuple[str, str]], gap: float = 1.0) -> CallTranscript:
    utterances, t = [], 0.0
    for n, (role, text) in enumerate(turns, start=1):
        u = utterance(call_id, n, role, text, t)
        utterances.append(u)
        t = u.end + gap
    spec = CallSpec(call_id=call_id, audio="")
    header = CallHeader(spec=spec, duration=t, num_channels=2, sample_rate=16000,
                        source_sample_rate=8000, source_format="test")
    channels = tuple(
        ChannelTranscript(call_id, c, role, (),
                          tuple(w for u in utterances if u.channel == c for w in u.words))
        for c, role in ((0, AGENT), (1, CUSTOMER))
    )
    return CallTranscript(header, channels, tuple(utterances))


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(PiiConfig())


@pytest.mark.parametrize(
    "words, text",
    [
        ("four four two one", "4 4 2 1"),
        ("double four oh two", "44 0 2"),
        ("forty four twenty one", "44 21"),
        ("triple seven", "777"),
        ("two hundred and five dollars", "205 dollars"),
        ("twenty-one", "21"),
        ("oh I see", "oh I see"),
        ("born March third", "born March 3"),
        ("the first time", "the first time"),
        ("john dot smith at gmail dot com", "john.smith@gmail.com"),
        ("it's W H I T", "it's W H I T"),
    ],
)
def test_spoken_numbers_and_emails_are_normalised(words, text):
    assert normalize(words.split()).text == text


def test_normalised_text_maps_back_to_words():
    norm = normalize("my card is four four two one thanks".split())
    start = norm.text.index("4")
    assert norm.words_of(start, start + len("4 4 2 1")) == (3, 6)


def test_digit_runs_are_classified_by_checksum_and_cue():
    assert classify_digits(CARD, {}) == (CREDIT_CARD, 0.95)
    bad_card = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
    assert classify_digits(bad_card, {}) is None or classify_digits(bad_card, {})[0] != CREDIT_CARD
    assert classify_digits(bad_card, {CREDIT_CARD: 3})[0] == CREDIT_CARD
    assert classify_digits("011000015", {ROUTING_NUMBER: 5})[0] == ROUTING_NUMBER
    assert classify_digits("219099999", {US_SSN: 5})[0] == US_SSN
    assert classify_digits("4155550132", {})[0] == PHONE_NUMBER
    assert classify_digits("737", {CARD_CVV: 9, CARD_EXPIRY: 2})[0] == CARD_CVV
    assert classify_digits("0528", {CARD_CVV: 2, CARD_EXPIRY: 9})[0] == CARD_EXPIRY
    assert classify_digits("25", {}) is None


def _redacted_words(call: CallTranscript) -> list[str]:
    return [w.text for u in call.utterances for w in u.words]


def test_card_read_over_two_utterances_is_redacted_whole(redactor):
    call = call_of("c1", [
        ("agent", "Can I have the card number please?"),
        ("customer", f"Sure it's {spoken(CARD[:8])}"),
        ("agent", "Mm-hm."),
        ("customer", spoken(CARD[8:])),
        ("agent", "And the security code on the back?"),
        ("customer", "seven three seven"),
        ("agent", "Thank you. The fee is twenty five dollars."),
    ])
    redacted, rows = redactor.redact(call)
    texts = [u.text for u in redacted.utterances]
    assert texts[1] == "Sure it's [CREDIT_CARD]"
    assert texts[3] == "[CREDIT_CARD]"
    assert texts[5] == "[CARD_CVV]"
    assert texts[6] == "Thank you. The fee is twenty five dollars."
    assert [(r.utterance_id, r.entity_type, r.num_words) for r in rows] == [
        ("c1/u0002", CREDIT_CARD, 8), ("c1/u0004", CREDIT_CARD, 8), ("c1/u0006", CARD_CVV, 3)]
    # word rows carry the tag and keep their times; channel words are redacted too
    for before, after in zip(call.utterances[3].words, redacted.utterances[3].words,
                             strict=True):
        assert (after.start, after.end, after.text) == (before.start, before.end,
                                                        "[CREDIT_CARD]")
    customer = redacted.channel_of(CUSTOMER)
    assert customer is not None
    assert not any(w.text in DIGIT for w in customer.words)
    assert rows[0].start == call.utterances[1].words[2].start
    # a row says where and what kind, never the value
    assert not any(d in json.dumps([r.__dict__ for r in rows]) for d in (CARD[:4], "seven"))


def test_written_and_spoken_forms(redactor):
    call = call_of("c2", [
        ("agent", "Can I get your name and email?"),
        ("customer", "Yes my name is Dana Whitfield, W H I T F I E L D."),
        ("customer", "dana dot whitfield at gmail dot com, or dana.w@outlook.com"),
        ("agent", "Thanks Dana. And your date of birth?"),
        ("customer", "March third nineteen eighty five"),
        ("agent", "And a phone number?"),
        ("customer", "It's (415) 555-0132"),
        ("customer", "I live at 1234 Maple Street, Springfield, Illinois 62704"),
        ("agent", "Your package arrives on March third."),
    ])
    redacted, _ = redactor.redact(call)
    texts = [u.text for u in redacted.utterances]
    assert texts[1] == "Yes my name is [PERSON]"
    assert texts[2] == "[EMAIL_ADDRESS] or [EMAIL_ADDRESS]"
    assert texts[3] == "Thanks [PERSON] And your date of birth?"
    assert texts[4] == "[DATE_OF_BIRTH]"
    assert texts[6] == "It's [PHONE_NUMBER]"
    assert texts[7] == "I live at [STREET_ADDRESS]"
    assert texts[8] == "Your package arrives on March third."


def test_entity_choice_and_switch(redactor):
    call = call_of("c3", [("agent", "Name please?"), ("customer", "my name is Omar Haddad"),
                          ("customer", f"card {CARD}")])
    only_cards, rows = Redactor(PiiConfig(entities=(CREDIT_CARD,))).redact(call)
    assert [u.text for u in only_cards.utterances][1:] == ["my name is Omar Haddad",
                                                          "card [CREDIT_CARD]"]
    assert {r.entity_type for r in rows} == {CREDIT_CARD}
    with pytest.raises(ValueError, match="unknown PII entity"):
        PiiConfig(entities=("SHOE_SIZE",))
    both, _ = redactor.redact(call)
    assert both.utterances[1].text == "my name is [PERSON]"


def test_silenced_spans_are_padded_merged_and_fall_back_to_the_utterance():
    u = utterance("c4", 1, CUSTOMER, "one two three four five", 10.0)
    rows = [
        Redaction("c4/u0001/r1", "c4", u.utterance_id, CARD_CVV, 10.0, 10.3, 0, 1, "t", 1.0),
        Redaction("c4/u0001/r2", "c4", u.utterance_id, CARD_CVV, 10.6, 10.7, 1, 1, "t", 1.0),
        Redaction("c4/u0001/r3", "c4", u.utterance_id, CARD_CVV, 30.0, 30.0, 4, 1, "t", 1.0),
    ]
    # the first two merge once padded; the third has no usable time: its utterance goes
    assert silence_intervals([u], rows[:2], 60.0, 0.25) == [(9.75, 10.95)]
    assert silence_intervals([u], rows[2:], 60.0, 0.25) == [(9.75, 12.15)]
    with pytest.raises(RedactionError):
        silence_intervals([], rows[2:], 60.0, 0.25)


def _summary(call_id: str) -> CallSummary:
    return CallSummary(call_id, "", None, None, None, "en", "ok", 1.0, 2, 8000, "t", 0, 1, 1,
                       1, None, None, (), "none", "none", 0.0, "test")


def test_a_call_whose_redaction_fails_is_failed_and_not_written():
    good = call_of("ok-1", [("customer", f"my card is {CARD}")])
    broken = call_of("bad-1", [("customer", f"my card is {CARD}")])
    # channel words that do not match the utterances cannot be redacted: fail closed
    broken = replace(broken, channels=(replace(broken.channels[1], words=()),
                                       broken.channels[0]))
    with beam.Pipeline(runner="FnApiRunner") as p:
        out = {
            "transcripts": p | "T" >> beam.Create([good, broken]),
            "calls": p | "C" >> beam.Create([_summary("ok-1"), _summary("bad-1")]),
        } | RedactPii(PiiConfig())
        assert_that(out["transcripts"] | beam.Map(lambda t: (t.call_id, t.utterances[0].text)),
                    equal_to([("ok-1", "my card is [CREDIT_CARD]")]), label="texts")
        assert_that(out["calls"] | beam.Map(lambda c: (c.call_id, c.status)),
                    equal_to([("ok-1", "ok"), ("bad-1", "failed")]), label="calls")
        assert_that(out["dead_letter"] | beam.Map(
            lambda d: (d.call_id, d.stage, d.error_type, CARD[:4] in d.message)),
            equal_to([("bad-1", "pii", "RedactionFailed", False)]), label="dead")


# --- a whole run: planted values must appear in no column of no table ---

PLANT_SECOND_HALF = spoken(CARD[8:])
PLANTED_STRINGS = [CARD, *(CARD[i:i + 4] for i in range(0, 16, 4)),
                   spoken(CARD[:4]), spoken(CARD[4:8]), spoken(CARD[8:12]), spoken(CARD[12:]),
                   "219 09 9999", "219099999"]


def _plant(transcript: CallTranscript) -> CallTranscript:
    """Replace the customer's longest utterance with a card read out in two halves (a 1 s
    pause between them, so Assemble makes two utterances) and an SSN said as digits, and
    start each of the customer's questions with the card's last four digits."""
    from pipeline.utterances import UtteranceConfig, build_utterances

    customer = [u for u in transcript.utterances if u.role == CUSTOMER]
    target = max(customer, key=lambda u: u.end - u.start)
    first = f"my card number is {spoken(CARD[:8])}".split()
    second = f"{PLANT_SECOND_HALF} and my social is 219 09 9999".split()
    mid = (target.start + target.end) / 2

    def spread(words: list[str], a: float, b: float) -> list[Word]:
        step = (b - a) / len(words)
        return [Word(round(a + k * step, 3), round(a + (k + 0.8) * step, 3), w, 0.9)
                for k, w in enumerate(words)]

    planted = spread(first, target.start, mid - 0.5) + spread(second, mid + 0.5, target.end)
    replaced = [(target.start, target.end)]
    for u in customer:  # questions (QA pairs, findings) name the card too
        if u is not target and "?" in u.text:
            planted += spread(f"my card ends in {spoken(CARD[12:])}.".split()
                              + [w.text for w in u.words], u.start, u.end)
            replaced.append((u.start, u.end))
    channels = []
    for channel in transcript.channels:
        if channel.channel != target.channel:
            channels.append(channel)
            continue
        kept = [w for w in channel.words if not any(a <= w.start <= b for a, b in replaced)]
        channels.append(replace(channel, words=tuple(sorted(kept + planted,
                                                            key=lambda w: w.start))))
    return replace(transcript, channels=tuple(channels),
                   utterances=build_utterances(transcript.call_id, channels, UtteranceConfig()))


class PlantedTranscribeCalls(beam.PTransform):
    """The real TranscribeCalls, with planted card and SSN words in every transcript."""

    def __init__(self, config):
        super().__init__()
        self.inner = RealTranscribeCalls(config)

    def expand(self, specs):
        out = specs | "Real" >> self.inner
        return {**out, "transcripts": out["transcripts"] | "Plant" >> beam.Map(_plant)}


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    from pipeline import consistency
    from pipeline import run as run_module
    from pipeline.manifest import resolve_input

    tmp = tmp_path_factory.mktemp("pii")
    manifest = tmp / "manifest.jsonl"
    # kc-0002 answers against the knowledge base: its finding quotes question and answer
    rows = [line for line in (FIXTURES / "consistency" / "manifest.jsonl").read_text()
            .splitlines() if json.loads(line)["call_id"] in ("kc-0000", "kc-0002")]
    for n, line in enumerate(rows):
        row = json.loads(line)
        row["audio"] = str(FIXTURES / "consistency" / row["audio"])
        rows[n] = json.dumps(row)
    manifest.write_text("\n".join(rows) + "\n")
    out, audio = tmp / "out", tmp / "audio"
    specs, dead = resolve_input(str(manifest))
    config = run_module.RunConfig(pii=PiiConfig(audio_dir=str(audio)))
    original = run_module.TranscribeCalls
    run_module.TranscribeCalls = PlantedTranscribeCalls  # type: ignore[misc]
    try:
        result = run_module.run_specs(specs, dead, str(out), config,
                                      test_pipeline=beam.Pipeline(runner="FnApiRunner"))
    finally:
        run_module.TranscribeCalls = original  # type: ignore[misc]
    consistency.run_consistency(str(out / "utterances"), str(out / "calls"), str(out),
                                kb_path=str(ROOT / "tools" / "callgen" / "knowledge_base.yaml"))
    return out, audio, result


def test_no_planted_value_in_any_column_of_any_table(planted_run):
    out, _, result = planted_run
    assert result.calls_ok == 2
    tables = sorted(p for p in out.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    names = {p.name for p in tables}
    assert {"calls", "utterances", "utterance_labels", "pii_redactions", "events",
            "scorecards", "consistency_qa_pairs", "consistency_findings"} <= names
    qa = pq.read_table(out / "consistency_qa_pairs").to_pylist()
    assert sum("[CREDIT_CARD]" in r["question_text"] for r in qa) >= 2  # planted, then redacted
    cells = 0
    for table in tables:
        for row in pq.read_table(table).to_pylist():
            for column, value in row.items():
                for text in _strings(value):
                    cells += 1
                    digits = re.sub(r"\D", "", text)
                    for planted in PLANTED_STRINGS:
                        assert planted not in text, (table.name, column)
                    assert CARD not in digits, (table.name, column)
    assert cells > 1000
    run_json = (out / "run.json").read_text()
    assert all(planted not in run_json for planted in PLANTED_STRINGS)
    assert json.loads(run_json)["config"]["pii"]["enabled"] is True


def test_planted_values_were_found_and_tagged(planted_run):
    out, _, _ = planted_run
    found = pq.read_table(out / "pii_redactions").to_pylist()
    for call_id in ("kc-0000", "kc-0002"):
        mine = [r for r in found if r["call_id"] == call_id]
        cards = [r for r in mine if r["entity_type"] == CREDIT_CARD]
        halves = [r for r in cards if r["num_words"] == 8]  # the card over two utterances
        assert len({r["utterance_id"] for r in halves}) == 2
        assert {r["num_words"] for r in cards} == {8, 4}  # and the last four in questions
        assert any(r["entity_type"] == US_SSN for r in mine)
    utterances = pq.read_table(out / "utterances").to_pylist()
    tagged = [u for u in utterances if "[CREDIT_CARD]" in u["text"]]
    assert len(tagged) >= 6
    words = [w for u in tagged for w in u["words"] if w["text"] == "[CREDIT_CARD]"]
    assert len(words) >= 32 + 8 and all(w["end"] > w["start"] for w in words)


def test_redacted_audio_is_silent_over_the_planted_span(planted_run):
    import soundfile as sf

    out, audio_dir, _ = planted_run
    found = [r for r in pq.read_table(out / "pii_redactions").to_pylist()
             if r["call_id"] == "kc-0000" and r["entity_type"] == CREDIT_CARD]
    samples, rate = sf.read(audio_dir / "kc-0000.wav", always_2d=True)
    for r in found:
        span = samples[int(r["start"] * rate):int(r["end"] * rate)]
        assert span.size and float(np.max(np.abs(span))) == 0.0
    assert float(np.max(np.abs(samples))) > 0.01  # the rest is still there


def test_redaction_can_be_switched_off():
    call = call_of("c5", [("customer", f"my card is {CARD}")])
    with beam.Pipeline(runner="FnApiRunner") as p:
        out = {"transcripts": p | "T" >> beam.Create([call]),
               "calls": p | "C" >> beam.Create([_summary("c5")])} | RedactPii(
            PiiConfig(enabled=False))
        assert_that(out["transcripts"] | beam.Map(lambda t: t.utterances[0].text),
                    equal_to([f"my card is {CARD}"]), label="text")
        assert_that(out["pii_redactions"], equal_to([]), label="rows")

