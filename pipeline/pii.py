"""PII redaction of transcripts: card numbers, bank numbers, SSNs, phones, e-mails, addresses,
dates of birth and names, spoken or written, replaced by tags that keep the entity type.

Runs right after utterances are assembled, so every later table (utterances and their words,
labels, dynamics events, consistency QA pairs and findings) sees only redacted text.

How a call is searched:

1. **Normalise** each channel's words into one text: spoken numbers become digits
   ("four four two one" -> ``4 4 2 1``, "double four" -> ``44``, "oh" -> ``0`` next to other
   digits, "forty four twenty one" -> ``44 21``), ordinals next to a month become days, and a
   spoken e-mail ("john dot smith at gmail dot com") becomes ``john.smith@gmail.com``. Every
   character of that text maps back to the words it came from. A channel is one text, so a
   number split over two utterances of the same speaker is found whole.
2. **Detect** on the normalised text: runs of digits classified by length, checksum (Luhn for
   cards, ABA for routing numbers, python-stdnum) and the nearest context words said by
   either party in the seconds before ("security code", "routing", "date of birth", ...);
   Presidio's pattern recognizers for written e-mails, phone numbers, cards and SSNs;
   patterns for street addresses, dates of birth and names after a cue ("my name is").
   No NER model: spaCy's English models are not published on PyPI by their authors (only
   third-party re-uploads), so names are found by cues and then everywhere else in the call.
3. **Redact** whole words: a redacted word's text becomes the tag (``[CREDIT_CARD]``), its
   times are kept; the utterance text shows one tag per span. A :class:`Redaction` row
   records where and what kind, never the value.

A call whose redaction fails is a dead letter (stage ``pii``) and none of its text is written.
Optionally (``audio_dir``) the call's audio is written with every redacted span silenced.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import CallSummary, CallTranscript, DeadLetter, Utterance, Word

logger = logging.getLogger(__name__)

CREDIT_CARD = "CREDIT_CARD"
CARD_CVV = "CARD_CVV"
CARD_EXPIRY = "CARD_EXPIRY"
BANK_ACCOUNT = "BANK_ACCOUNT"
ROUTING_NUMBER = "ROUTING_NUMBER"
US_SSN = "US_SSN"
PHONE_NUMBER = "PHONE_NUMBER"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
STREET_ADDRESS = "STREET_ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
PERSON = "PERSON"
ENTITIES: tuple[str, ...] = (
    CREDIT_CARD, CARD_CVV, CARD_EXPIRY, BANK_ACCOUNT, ROUTING_NUMBER, US_SSN, PHONE_NUMBER,
    EMAIL_ADDRESS, STREET_ADDRESS, DATE_OF_BIRTH, PERSON,
)
REDACTIONS = "pii_redactions"


@dataclass(frozen=True)
class PiiConfig:
    """What to redact and how.

    Attributes:
        enabled: Redact at all (``--no-redact-pii`` turns it off; recorded in run.json).
        entities: Entity types to redact (``--pii-entities``); all of :data:`ENTITIES` by
            default.
        min_score: Spans scored below this are not redacted. On the dev split of the
            generated set (benchmarks/PII.md) 0.4 and 0.5 give the same recall and precision
            and 0.7 loses half the names (weak cues score 0.6); 0.4, the lower, also keeps a
            bare 9-digit SSN shape (0.45) and Presidio's phone score (0.4): when unsure, redact.
        context_seconds: Context words (either speaker) are looked for this far back from
            a number: an agent's "and the security code?" comes a few seconds before the
            customer's answer.
        audio_dir: When set, write each call's audio here with redacted spans silenced.
        audio_padding: Seconds of silence added before and after every redacted span (word
            times from ASR are off by up to ~0.2 s).
    """

    enabled: bool = True
    entities: tuple[str, ...] = ENTITIES
    min_score: float = 0.4
    context_seconds: float = 20.0
    audio_dir: str = ""
    audio_padding: float = 0.25

    def __post_init__(self) -> None:
        unknown = set(self.entities) - set(ENTITIES)
        if unknown:
            raise ValueError(
                f"unknown PII entity types {sorted(unknown)}; known: {', '.join(ENTITIES)}"
            )


@dataclass(frozen=True)
class Redaction:
    """One redacted span of one utterance: where and what kind, never the value.

    Attributes:
        redaction_id: ``<utterance_id>/r<N>``.
        call_id: The call.
        utterance_id: The utterance the words belong to (a span over two utterances gives
            one row each).
        entity_type: E.g. ``CREDIT_CARD``; the tag in the text is ``[CREDIT_CARD]``.
        start: Start of the first redacted word, seconds.
        end: End of the last redacted word, seconds.
        first_word: Index of the first redacted word in the utterance's words.
        num_words: Words redacted.
        detector: What found it (``digits``, ``presidio:EmailRecognizer``, ``name_cue``...).
        score: The detector's confidence in [0, 1].
    """

    redaction_id: str
    call_id: str
    utterance_id: str
    entity_type: str
    start: float
    end: float
    first_word: int
    num_words: int
    detector: str
    score: float


class RedactionError(RuntimeError):
    """Redaction of a call failed; the message never carries the call's text."""

    code = "RedactionFailed"


def tag(entity: str) -> str:
    return f"[{entity}]"


# --- 1. normalisation: words -> text with digits, and a map back to the words ---

UNITS = {"zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
         "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
         "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
            "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
            "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
            "thirtieth": 30}
REPEATS = {"double": 2, "triple": 3}
FILLERS = {"uh", "um", "er", "erm", "ah", "hmm", "mm"}
MONTHS = ("january february march april may june july august september october november "
          "december jan feb mar apr jun jul aug sep sept oct nov dec").split()
TLDS = {"com", "net", "org", "edu", "gov", "io", "co", "us", "uk", "ca", "info", "biz", "me"}
_STRIP = ".,;:!?\"'()[]"
_NUMERIC_WORD = re.compile(r"\$?\d[\d,./\-]*")


def word_key(text: str) -> str:
    """A word as the matchers see it: lower case, surrounding punctuation removed."""
    return text.strip().strip(_STRIP).lower()


@dataclass(frozen=True)
class Token:
    """A piece of normalised text and the range of source words it came from."""

    text: str
    first: int
    last: int  # inclusive


@dataclass(frozen=True)
class NormalText:
    """Normalised text of a run of words, with every character's source token."""

    text: str
    tokens: tuple[Token, ...]
    char_token: tuple[int, ...]  # token index of every character; -1 for the spaces

    def words_of(self, start: int, end: int) -> tuple[int, int] | None:
        """Source word range (inclusive) of characters ``start:end``, or None."""
        idx = [i for i in self.char_token[start:end] if i >= 0]
        if not idx:
            return None
        return self.tokens[min(idx)].first, self.tokens[max(idx)].last


def _number_at(keys: Sequence[str], i: int, after_number: bool) -> tuple[str, int] | None:
    """Digits spoken at ``keys[i:]`` and how many words they took, or None."""
    k = keys[i]
    nxt = keys[i + 1] if i + 1 < len(keys) else ""
    if k in REPEATS and nxt in UNITS:
        return str(UNITS[nxt]) * REPEATS[k], 2
    if k in ("oh", "o"):
        if after_number or nxt in UNITS or nxt in TEENS or nxt in TENS or nxt in REPEATS:
            return "0", 1
        return None
    value: int | None = None
    used = 0
    if k in UNITS:
        value, used = UNITS[k], 1
    elif k in TEENS:
        value, used = TEENS[k], 1
    elif k in TENS:
        value, used = TENS[k], 1
        if nxt in UNITS and UNITS[nxt] > 0 and nxt not in ("oh", "o"):
            value, used = value + UNITS[nxt], 2
    if value is None:
        return None
    j = i + used
    if j < len(keys) and keys[j] == "hundred" and 0 < value < 10:
        value *= 100
        j += 1
        if j < len(keys) and keys[j] == "and":
            j += 1 if j + 1 < len(keys) and _is_plain_number(keys[j + 1]) else 0
        rest = _number_at(keys, j, False) if j < len(keys) and keys[j] not in ("oh", "o") else None
        if rest and len(rest[0]) <= 2 and keys[j] not in REPEATS:
            value += int(rest[0])
            j += rest[1]
        used = j - i
    if j < len(keys) and keys[j] == "thousand" and 0 < value < 1000:
        value *= 1000
        j += 1
        rest = _number_at(keys, j, False) if j < len(keys) and keys[j] not in ("oh", "o") else None
        if rest and len(rest[0]) <= 3 and keys[j] not in REPEATS:
            value += int(rest[0])
            j += rest[1]
        used = j - i
    return str(value), used


def _is_plain_number(key: str) -> bool:
    return key in UNITS or key in TEENS or key in TENS


def _ordinal_at(keys: Sequence[str], i: int) -> tuple[str, int] | None:
    k = keys[i]
    nxt = keys[i + 1] if i + 1 < len(keys) else ""
    if k in TENS and nxt in ORDINALS and ORDINALS[nxt] < 10:
        return str(TENS[k] + ORDINALS[nxt]), 2
    if k in ORDINALS:
        return str(ORDINALS[k]), 1
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)", k)
    if m:
        return m.group(1), 1
    return None


def _near_month(keys: Sequence[str], i: int, used: int) -> bool:
    before = keys[max(0, i - 2):i]
    after = keys[i + used:i + used + 2]
    return any(k in MONTHS for k in before) or (
        len(after) == 2 and after[0] == "of" and after[1] in MONTHS
    )


def _split_hyphens(words: Sequence[str]) -> list[tuple[str, int]]:
    """(piece, source word) with spoken compounds ("twenty-one") split at hyphens."""
    out: list[tuple[str, int]] = []
    for n, w in enumerate(words):
        key = word_key(w)
        parts = key.split("-") if "-" in key and not _NUMERIC_WORD.fullmatch(key) else [key]
        if len(parts) > 1 and all(_is_plain_number(p) or p in ORDINALS for p in parts):
            out.extend((p, n) for p in parts)
        else:
            out.append((w, n))
    return out


def normalize(words: Sequence[str]) -> NormalText:
    """Words -> text with spoken numbers as digits and spoken e-mails written, mapped back."""
    pieces: list[tuple[str, int]] = []
    tail: list[int] = []  # last source word of each piece, with the fillers after it
    for piece, n in _split_hyphens(words):
        if pieces and word_key(piece) in FILLERS:  # "four one uh five": one number
            tail[-1] = n
            continue
        pieces.append((piece, n))
        tail.append(n)
    raw = [p for p, _ in pieces]
    src = [n for _, n in pieces]
    keys = [word_key(p) for p in raw]
    tokens: list[Token] = []
    i = 0
    while i < len(keys):
        email = _email_at(keys, raw, i, tokens)
        if email is not None:
            text, start_token, used = email
            first = tokens[start_token].first if start_token < len(tokens) else src[i]
            del tokens[start_token:]
            tokens.append(Token(text, first, tail[i + used - 1]))
            i += used
            continue
        after_number = bool(tokens) and tokens[-1].text[:1].isdigit()
        ordinal = _ordinal_at(keys, i)
        if ordinal and _near_month(keys, i, ordinal[1]):
            tokens.append(Token(ordinal[0], src[i], tail[i + ordinal[1] - 1]))
            i += ordinal[1]
            continue
        spelled_o = raw[i].strip(_STRIP) == "O" and not after_number  # a spelled letter
        number = None if spelled_o else _number_at(keys, i, after_number)
        if number is not None:
            digits, used = number
            trail = raw[i + used - 1].rstrip()
            punct = trail[len(trail.rstrip(",.;:")):]
            tokens.append(Token(digits + punct, src[i], tail[i + used - 1]))
            i += used
            continue
        tokens.append(Token(raw[i].strip(), src[i], tail[i]))
        i += 1
    parts: list[str] = []
    char_token: list[int] = []
    for n, t in enumerate(tokens):
        if n:
            parts.append(" ")
            char_token.append(-1)
        parts.append(t.text)
        char_token.extend([n] * len(t.text))
    return NormalText("".join(parts), tuple(tokens), tuple(char_token))


_CONNECTORS = {"dot": ".", "period": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
_LOCAL_STOP = {"is", "it's", "its", "email", "e-mail", "address", "at", "me", "to", "my", "mail",
               "it", "that's", "yes", "sure", "the", "and", "uh", "um", "send", "use"}
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.([a-z]{2,})")


def _email_at(
    keys: Sequence[str], raw: Sequence[str], i: int, tokens: list[Token]
) -> tuple[str, int, int] | None:
    """A spoken e-mail whose "at" is ``keys[i]``: (address, first token of it, words used)."""
    if keys[i] not in ("at", "@") or not tokens:
        return None
    # Domain: "gmail dot com" or "gmail.com"
    j = i + 1
    domain: list[str] = []
    while j < len(keys) and len(domain) < 7:
        k = keys[j]
        if _DOMAIN.fullmatch(k) and _DOMAIN.fullmatch(k).group(1) in TLDS:  # type: ignore[union-attr]
            domain.append(k)
            j += 1
            break
        if re.fullmatch(r"[a-z0-9-]+", k) and j + 1 < len(keys) and keys[j + 1] in ("dot", "."):
            domain += [k, "."]
            j += 2
            if j < len(keys) and keys[j] in TLDS:
                domain.append(keys[j])
                j += 1
                if not (j + 1 < len(keys) and keys[j] == "dot" and keys[j + 1] in TLDS):
                    break
            continue
        return None
    if not domain or domain[-1] == ".":
        return None
    # Local part, backwards over tokens: words joined by connectors, digits, spelled letters.
    local: list[str] = []
    t = len(tokens) - 1
    want = "word"
    while t >= 0 and len(local) < 12:
        text = word_key(tokens[t].text)
        if want == "word" and re.fullmatch(r"[a-z0-9._-]+", text) and text not in _LOCAL_STOP:
            local.insert(0, text)
            t -= 1
            prev = word_key(tokens[t].text) if t >= 0 else ""
            if prev in _CONNECTORS:
                want = "connector"
            elif len(text) == 1 and len(prev) == 1 and prev.isalnum():
                want = "word"  # spelled out: "j o h n"
            elif text.isdigit() and prev and prev not in _LOCAL_STOP and not prev.isdigit():
                want = "word"  # "smith 42"
            else:
                break
            continue
        if want == "connector" and text in _CONNECTORS:
            local.insert(0, _CONNECTORS[text])
            want = "word"
            t -= 1
            continue
        break
    if not local or local[0] in _CONNECTORS.values():
        return None
    address = "".join(local) + "@" + "".join(domain)
    return address, t + 1, j - i


# --- 2. detection on normalised text ---


@dataclass(frozen=True)
class Span:
    """A detected entity over characters ``start:end`` of a :class:`NormalText`."""

    start: int
    end: int
    entity: str
    score: float
    detector: str


CONTEXT = {
    CARD_CVV: re.compile(r"\b(cvv|cvc|cv2|security code|verification code|(three|3|four|4)"
                         r"[ -]digits?|back of the card|card code)\b"),
    CARD_EXPIRY: re.compile(r"\b(expir\w*|exp date|valid (thru|through)|good (thru|through))\b"),
    ROUTING_NUMBER: re.compile(r"\b(routing|aba|transit number)\b"),
    BANK_ACCOUNT: re.compile(r"\b(account|acct|checking|savings|member number)\b"),
    US_SSN: re.compile(r"\b(social|ssn|s s n|security number)\b"),
    PHONE_NUMBER: re.compile(r"\b(phone|cell|mobile|telephone|call (you|me) back|callback|"
                             r"reach (you|me)|contact number|number to reach)\b"),
    DATE_OF_BIRTH: re.compile(r"\b(birth|born|birthday|dob|d o b)\b"),
    CREDIT_CARD: re.compile(r"\b(card|visa|mastercard|amex|american express|discover|credit|"
                            r"debit)\b"),
    STREET_ADDRESS: re.compile(r"\b(zip|postal code|zip code)\b"),
}


def _luhn(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def _aba(digits: str) -> bool:
    from stdnum.us import rtn

    return rtn.is_valid(digits)


def _ssn_shape(digits: str) -> bool:
    from stdnum.us import ssn

    return ssn.is_valid(digits)


@lru_cache(maxsize=4096)
def _us_phone(digits: str) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse(digits, "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _month_year(digits: str) -> bool:
    if len(digits) == 4:
        return 1 <= int(digits[:2]) <= 12
    if len(digits) == 3:
        return 1 <= int(digits[:1]) <= 9
    if len(digits) == 6:  # MM YYYY
        return 1 <= int(digits[:2]) <= 12 and digits[2:4] in ("20", "19")
    return False


def _is_date(digits: str) -> bool:
    if len(digits) in (6, 8):
        month, day = int(digits[:2]), int(digits[2:4])
        year = digits[4:]
        return 1 <= month <= 12 and 1 <= day <= 31 and (len(year) == 2 or year[:2] in ("19", "20"))
    return False


WEAK_CUE_PENALTY = 25  # characters of context: "birth on the account"
_WEAK = {(BANK_ACCOUNT, 0.8), (CREDIT_CARD, 0.5)}


def classify_digits(digits: str, cues: dict[str, int]) -> tuple[str, float] | None:
    """Entity type and score of a run of ``digits`` given the context ``cues``.

    ``cues`` maps an entity type to how recent its cue word is (higher: nearer); an
    entity with a cue wins over one without, the nearest cue over farther ones.
    """
    n = len(digits)
    if 13 <= n <= 19 and _luhn(digits):
        return CREDIT_CARD, 0.95
    options: list[tuple[str, float]] = []  # with a cue
    plain: list[tuple[str, float]] = []  # without one
    if n == 9:
        if _aba(digits):
            (options if ROUTING_NUMBER in cues else plain).append((ROUTING_NUMBER, 0.9))
        if US_SSN in cues:
            options.append((US_SSN, 0.9))
        elif _ssn_shape(digits):
            plain.append((US_SSN, 0.45))
    if n in (10, 11) and _us_phone(digits):
        (options if PHONE_NUMBER in cues else plain).append((PHONE_NUMBER, 0.85))
    if n == 7 and PHONE_NUMBER in cues:
        options.append((PHONE_NUMBER, 0.7))
    if n in (3, 4) and CARD_CVV in cues:
        options.append((CARD_CVV, 0.85))
    if CARD_EXPIRY in cues and _month_year(digits):
        options.append((CARD_EXPIRY, 0.85))
    if DATE_OF_BIRTH in cues and _is_date(digits):
        options.append((DATE_OF_BIRTH, 0.85))
    if 5 <= n <= 17 and BANK_ACCOUNT in cues:
        options.append((BANK_ACCOUNT, 0.8))
    if 13 <= n <= 19 and CREDIT_CARD in cues:
        options.append((CREDIT_CARD, 0.6))  # a misheard digit breaks the Luhn check
    elif 4 <= n <= 12 and CREDIT_CARD in cues:
        options.append((CREDIT_CARD, 0.5))  # part of a card read out in pieces
    if n == 5 and STREET_ADDRESS in cues:
        options.append((STREET_ADDRESS, 0.7))
    if options:
        # Any number fits "account" or "part of a card": a checked or more specific reading
        # whose cue is close behind wins ("date of birth on the account?", "security code
        # on the back of the card?").
        return max(options, key=lambda o: (
            cues.get(o[0], -1) - (WEAK_CUE_PENALTY if o in _WEAK else 0), o[1]))
    if plain:
        return max(plain, key=lambda o: o[1])
    if n >= 12:  # a long number said on a call identifies something: keep it out
        return BANK_ACCOUNT, 0.5
    return None


_DIGIT_RUN = re.compile(r"\$?\d+(?:[ ,.\-/()]{1,4}\d+)*")
_GROUP = re.compile(r"\d+")


def digit_spans(text: NormalText, cues_at: Any) -> list[Span]:
    """Runs of digits, split into the best-classified pieces.

    A run is cut into groups (as spoken: "44 21" is two groups); the pieces chosen cover the
    most digits with the fewest pieces, so a card number followed by its expiry date in the
    same breath is found as both.
    """
    spans: list[Span] = []
    for run in _DIGIT_RUN.finditer(text.text):
        if run.group().startswith("$") or _is_amount(text.text, run):
            continue
        groups = [(m.start() + run.start(), m.end() + run.start(), m.group())
                  for m in _GROUP.finditer(run.group())]
        cues = cues_at(run.start())
        g = len(groups)
        empty: list[Span] = []
        best: list[tuple[int, int, list[Span]]] = [(0, 0, empty)] + [(-1, 0, empty)] * g
        for j in range(1, g + 1):
            for i in range(max(0, j - 24), j):
                if best[i][0] < 0:
                    continue
                digits = "".join(x[2] for x in groups[i:j])
                found = classify_digits(digits, cues) if len(digits) <= 19 else None
                covered = best[i][0] + (len(digits) if found else 0)
                pieces = best[i][1] + 1
                if covered > best[j][0] or (covered == best[j][0] and pieces < best[j][1]):
                    new = list(best[i][2])
                    if found:
                        new.append(Span(groups[i][0], groups[j - 1][1], found[0], found[1],
                                        "digits"))
                    best[j] = (covered, pieces, new)
        spans.extend(best[g][2])
    return spans


def _is_amount(text: str, run: re.Match[str]) -> bool:
    after = text[run.end():run.end() + 12].lower()
    return bool(re.match(r"\s*(dollars?|bucks|cents?|percent|%|minutes?|hours?|days?|"
                         r"months?|years? (old|ago)|gb|mb)\b", after))


_MONTH_RE = "(?:" + "|".join(MONTHS) + r")\.?"
_DATE_PATTERNS = [
    re.compile(rf"\b{_MONTH_RE} (?:the )?\d{{1,2}}(?:st|nd|rd|th)?,?(?: of)? "
               r"(?:\d{4}|\d{2} \d{1,2}|\d{2})\b", re.I),
    re.compile(rf"\b(?:the )?\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH_RE},? "
               r"(?:\d{4}|\d{2} \d{1,2}|\d{2})\b", re.I),
    re.compile(r"\b\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\b"),
]
_EXPIRY_PATTERN = re.compile(rf"\b{_MONTH_RE},? (?:of )?(?:\d{{4}}|\d{{2}} \d{{1,2}}|\d{{2}})\b",
                             re.I)
_STREET_SUFFIX = (r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|"
                  r"way|place|pl|terrace|circle|cir|parkway|pkwy|highway|hwy|trail|square|"
                  r"loop|crescent|row|alley)")
_ADDRESS = re.compile(
    r"\b\d+(?: \d+){0,2}(?: (?:north|south|east|west|n|s|e|w)\.?)?"
    r"(?: (?:\d+(?:st|nd|rd|th)|[A-Za-z][A-Za-z'\-]+)){1,3} " + _STREET_SUFFIX + r"\b\.?"
    r"(?:,? (?:apartment|apt|unit|suite|number|#)\.? ?[A-Za-z0-9]+(?: \d+)*)?"
    r"(?:(?:,? [A-Za-z][A-Za-z'\-]+){1,4},? \d(?: ?\d){4}\b)?",
    re.I,
)
_PO_BOX = re.compile(r"\bp\.? ?o\.? box \d+(?: \d+)*", re.I)


def pattern_spans(text: NormalText, cues_at: Any) -> list[Span]:
    """Street addresses, dates of birth and spoken expiry dates."""
    spans: list[Span] = []
    for pattern in (_ADDRESS, _PO_BOX):
        spans += [Span(m.start(), m.end(), STREET_ADDRESS, 0.85, "address_pattern")
                  for m in pattern.finditer(text.text)]
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text.text):
            cues = cues_at(m.start())
            if DATE_OF_BIRTH in cues and cues[DATE_OF_BIRTH] >= cues.get(CARD_EXPIRY, -1):
                spans.append(Span(m.start(), m.end(), DATE_OF_BIRTH, 0.85, "date_pattern"))
    for m in _EXPIRY_PATTERN.finditer(text.text):
        cues = cues_at(m.start())
        if CARD_EXPIRY in cues and cues[CARD_EXPIRY] > cues.get(DATE_OF_BIRTH, -1):
            spans.append(Span(m.start(), m.end(), CARD_EXPIRY, 0.85, "date_pattern"))
    return spans


_NAME_CUES_STRONG = re.compile(
    r"\b(?:my name is|my name's|name is|name's|first name is|last name is|surname is|"
    r"full name is|name on the (?:card|account) is|it's under|under the name|spelled|"
    r"mr|mrs|ms|miss|dr)\.?,? ", re.I)
_NAME_CUES_WEAK = re.compile(
    r"\b(?:this is|i'm|i am|it's|speaking with|talking to|talking with|thanks|thank you)"
    r",? ", re.I)
_NOT_NAMES = set(
    "a an the and or but so to of for from with at in on by is it its it's i i'm you your "
    "my me we our he she they them this that here there yes no not just calling call "
    "speaking sure okay ok well um uh hi hello hey good great fine sorry thanks thank "
    "please correct right that's how what when where why who can could would will "
    "also very really again actually about going trying looking having still new "
    "customer service support agent manager supervisor help account card number bank "
    "checking savings credit debit phone email address today tomorrow yesterday "
    "morning afternoon evening happy glad calling welcome sir ma'am madam name names first "
    "last middle full surname spelled spell".split()
)


def name_spans(text: NormalText, cased: bool) -> list[Span]:
    """Names after a cue: "my name is Dana Whitfield", "this is Omar", "Ms. Reyes".

    After a strong cue any word that is not a common word counts (up to three); after a
    weak cue ("this is", "thank you") only capitalised words do, and only in cased text.
    Letters spelled after a name ("W H I T") are part of it.
    """
    spans: list[Span] = []
    for cues, strong in ((_NAME_CUES_STRONG, True), (_NAME_CUES_WEAK, False)):
        if not strong and not cased:
            continue
        for cue in cues.finditer(text.text):
            pos = cue.end()
            end = pos
            count = 0
            for m in re.finditer(r"[A-Za-z][A-Za-z'\-]*\.?,?", text.text[pos:]):
                if m.start() != (end - pos) + (1 if count else 0):
                    break
                word = m.group().strip(".,")
                key = word.lower()
                if key in _NOT_NAMES or (len(word) == 1 and count == 0 and not strong):
                    break
                if (not strong or cased) and not word[:1].isupper():
                    break
                count += 1
                end = pos + m.start() + len(m.group().rstrip(".,"))
                if m.group().endswith(",") or count == 3:
                    break
            if count:
                spans.append(Span(pos, end, PERSON, 0.75 if strong else 0.6, "name_cue"))
    return spans


_SPELLED = re.compile(
    r"(?:,? (?:that's|that is|spelled|it's))?,?((?: [A-Za-z]\.?,?(?=[ ,.]|$)){2,})"
)


def spelled_spans(text: NormalText, found: Sequence[Span]) -> list[Span]:
    """Letters spelled out right after a name ("Whitfield, W H I T F I E L D")."""
    spans = []
    for span in found:
        if span.entity != PERSON:
            continue
        m = _SPELLED.match(text.text[span.end:])
        if m:
            spans.append(Span(span.end + m.start(1), span.end + m.end(1), PERSON, span.score,
                              "name_spelled"))
    return spans


class _PresidioRecognizers:
    """Presidio's pattern recognizers for written forms, without an NLP model download.

    Presidio's analyzer needs an NLP engine for tokens and lemmas; a blank spaCy English
    pipeline (tokenizer only, lower-cased lemmas) is enough for pattern recognizers with
    context words, and installs from PyPI with no model. tldextract (used by the e-mail
    recognizer) is pointed at its bundled suffix list so nothing is fetched.
    """

    ENTITY_MAP = {"CREDIT_CARD": CREDIT_CARD, "US_SSN": US_SSN, "PHONE_NUMBER": PHONE_NUMBER,
                  "EMAIL_ADDRESS": EMAIL_ADDRESS}

    def __init__(self) -> None:
        try:
            import spacy
            import tldextract
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
            from presidio_analyzer.predefined_recognizers import (
                CreditCardRecognizer,
                EmailRecognizer,
                PhoneRecognizer,
                UsSsnRecognizer,
            )
        except ImportError as e:  # pragma: no cover - a broken install
            raise RuntimeError("PII redaction requires presidio-analyzer (pip install "
                               "callscope)") from e
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
        )

        class BlankEngine(SpacyNlpEngine):  # type: ignore[misc]
            def load(self) -> None:
                nlp = spacy.blank("en")
                nlp.add_pipe("callscope_lower_lemma")
                self.nlp = {"en": nlp}  # type: ignore[assignment]

        from spacy.language import Language

        if "callscope_lower_lemma" not in Language.factories:
            @Language.component("callscope_lower_lemma")
            def _lower_lemma(doc: Any) -> Any:
                for token in doc:
                    token.lemma_ = token.lower_
                return doc

        engine = BlankEngine(models=[{"lang_code": "en", "model_name": "blank"}])
        engine.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in (CreditCardRecognizer(), EmailRecognizer(),
                           PhoneRecognizer(supported_regions=("US",)), UsSsnRecognizer()):
            registry.add_recognizer(recognizer)
        self.analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry,
                                       supported_languages=["en"])

    def spans(self, text: NormalText) -> list[Span]:
        results = self.analyzer.analyze(text.text, language="en",
                                        entities=list(self.ENTITY_MAP))
        return [
            Span(r.start, r.end, self.ENTITY_MAP[r.entity_type], float(r.score),
                 "presidio:" + str((r.recognition_metadata or {}).get("recognizer_name", "")))
            for r in results
        ]


# --- 3. a call: channels -> spans -> redacted utterances ---


@dataclass(frozen=True)
class _WordRef:
    utterance: int  # index into call.utterances
    word: int  # index into that utterance's words
    channel: int
    start: float
    end: float
    key: str


@dataclass
class _CallWords:
    """Every word of a call with its place, per channel and for context."""

    channels: dict[int, list[_WordRef]] = field(default_factory=dict)
    timeline: list[_WordRef] = field(default_factory=list)


def _call_words(utterances: Sequence[Utterance]) -> _CallWords:
    words = _CallWords()
    for u_idx, u in enumerate(utterances):
        for w_idx, w in enumerate(u.words):
            ref = _WordRef(u_idx, w_idx, u.channel, w.start, w.end, w.text)
            words.channels.setdefault(u.channel, []).append(ref)
            words.timeline.append(ref)
    for refs in words.channels.values():
        refs.sort(key=lambda r: (r.start, r.utterance, r.word))
    words.timeline.sort(key=lambda r: (r.start, r.utterance, r.word))
    return words


BACKCHANNELS = set(
    "okay ok mhm mm-hmm mm-hm uh-huh huh yeah yes yep right go ahead got it sure alright "
    "all and uh um hmm mm oh".split()
)


def _passages(refs: list[_WordRef], timeline: list[_WordRef], times: list[float]
              ) -> list[list[_WordRef]]:
    """A channel's words cut where the other party said more than a backchannel.

    One passage is searched as one text, so a number read out over two utterances with only
    "mm-hm" between them is found whole, but the digits of an answer are not glued to those
    of the next answer after the agent's next question.
    """
    import bisect

    passages: list[list[_WordRef]] = []
    for ref in refs:
        if passages and passages[-1][-1].utterance != ref.utterance:
            prev = passages[-1][-1]
            lo = bisect.bisect_right(times, prev.end - 0.01)
            hi = bisect.bisect_left(times, ref.start)
            between = [word_key(w.key) for w in timeline[lo:hi] if w.channel != ref.channel]
            if len(between) > 4 or any(k not in BACKCHANNELS for k in between):
                passages.append([])
        elif not passages:
            passages.append([])
        passages[-1].append(ref)
    return passages


class Redactor:
    """Finds PII in a call's utterances and returns them redacted (see the module doc)."""

    def __init__(self, config: PiiConfig | None = None):
        self.config = config or PiiConfig()
        self.presidio = _PresidioRecognizers()

    def find(self, utterances: Sequence[Utterance]) -> dict[tuple[int, int], Span]:
        """The span chosen for every redacted word, keyed by (utterance, word) index."""
        words = _call_words(utterances)
        times = [r.start for r in words.timeline]
        timeline_norm = [word_key(r.key) for r in words.timeline]
        chosen: dict[tuple[int, int], Span] = {}
        names: set[str] = set()
        cased = any(any(c.islower() for c in u.text) and any(c.isupper() for c in u.text)
                    for u in utterances)
        passages = [p for refs in words.channels.values()
                    for p in _passages(refs, words.timeline, times)]
        for refs in passages:
            text = normalize([r.key for r in refs])

            def cues_at(char: int, text: NormalText = text, refs: list[_WordRef] = refs
                        ) -> dict[str, int]:
                rng = text.words_of(char, char + 1)
                t0 = refs[rng[0]].start if rng else 0.0
                return _cues(timeline_norm, times, t0, self.config.context_seconds)

            spans = (digit_spans(text, cues_at) + pattern_spans(text, cues_at)
                     + self.presidio.spans(text))
            people = name_spans(text, cased)
            spans += people + spelled_spans(text, people)
            for span in spans:
                if span.entity not in self.config.entities or span.score < self.config.min_score:
                    continue
                rng = text.words_of(span.start, span.end)
                if rng is None:
                    continue
                for n in range(rng[0], rng[1] + 1):
                    key = (refs[n].utterance, refs[n].word)
                    if key not in chosen or _better(span, chosen[key]):
                        chosen[key] = span
                if span.entity == PERSON and span.detector == "name_cue":
                    names |= {word_key(refs[n].key) for n in range(rng[0], rng[1] + 1)}
        names = {n for n in names if len(n) > 1 and n not in _NOT_NAMES}
        if names and PERSON in self.config.entities:
            repeat = Span(0, 0, PERSON, 0.6, "name_repeat")
            for r in words.timeline:
                if word_key(r.key) in names and (r.utterance, r.word) not in chosen:
                    chosen[(r.utterance, r.word)] = repeat
        return chosen

    def redact(self, call: CallTranscript) -> tuple[CallTranscript, list[Redaction]]:
        """``call`` with PII words replaced by tags, and a row per redacted span."""
        chosen = self.find(call.utterances)
        new_utterances = []
        rows: list[Redaction] = []
        for u_idx, u in enumerate(call.utterances):
            if not any((u_idx, w) in chosen for w in range(len(u.words))):
                new_utterances.append(u)
                continue
            words = list(u.words)
            pieces: list[str] = []
            previous: Span | None = None
            for w_idx, w in enumerate(u.words):
                span = chosen.get((u_idx, w_idx))
                if span is None:
                    pieces.append(w.text.strip())
                    previous = None
                    continue
                words[w_idx] = replace(w, text=tag(span.entity))
                if (previous is not None and span.entity == previous.entity and rows
                        and rows[-1].utterance_id == u.utterance_id):
                    last = rows[-1]
                    rows[-1] = replace(last, end=w.end, num_words=last.num_words + 1)
                else:
                    pieces.append(tag(span.entity))
                    number = sum(r.utterance_id == u.utterance_id for r in rows) + 1
                    rows.append(Redaction(
                        redaction_id=f"{u.utterance_id}/r{number}",
                        call_id=u.call_id, utterance_id=u.utterance_id,
                        entity_type=span.entity, start=w.start, end=w.end, first_word=w_idx,
                        num_words=1, detector=span.detector, score=round(span.score, 3),
                    ))
                previous = span
            new_utterances.append(replace(u, words=tuple(words),
                                          text=" ".join(p for p in pieces if p)))
        return _with_utterances(call, tuple(new_utterances)), rows


def _better(a: Span, b: Span) -> bool:
    return (a.score, a.end - a.start) > (b.score, b.end - b.start)


def _cues(keys: Sequence[str], times: Sequence[float], t0: float, window: float
          ) -> dict[str, int]:
    """Entity -> position of its latest cue word in the ``window`` seconds up to ``t0``."""
    import bisect

    lo = bisect.bisect_left(times, t0 - window)
    hi = bisect.bisect_right(times, t0 + 0.01)
    context = " ".join(keys[lo:hi])
    cues: dict[str, int] = {}
    for entity, pattern in CONTEXT.items():
        starts = [m.start() for m in pattern.finditer(context)]
        if starts:
            cues[entity] = starts[-1]
    return cues


def _with_utterances(call: CallTranscript, utterances: tuple[Utterance, ...]) -> CallTranscript:
    """``call`` with new utterances, and each channel's words rebuilt from them."""
    # A separated mono channel is one pseudo-channel per role sharing the channel index.
    by_channel: dict[tuple[int, str], list[Word]] = {}
    for u in utterances:
        by_channel.setdefault((u.channel, u.role), []).extend(u.words)
    channels = []
    for channel in call.channels:
        words = sorted(by_channel.get((channel.channel, channel.role), []),
                       key=lambda w: (w.start, w.end))
        if len(words) != len(channel.words):
            raise RedactionError(
                f"channel {channel.channel}: {len(channel.words)} words but utterances hold "
                f"{len(words)}; cannot redact the channel's words"
            )
        channels.append(replace(channel, words=tuple(words)))
    return replace(call, utterances=utterances, channels=tuple(channels))


# --- 4. audio ---


def silence_intervals(
    utterances: Sequence[Utterance], redactions: Sequence[Redaction], duration: float,
    padding: float,
) -> list[tuple[float, float]]:
    """Merged, padded intervals to silence; a span without usable times takes its utterance.

    Raises:
        RedactionError: neither the span nor its utterance can be placed in the call.
    """
    by_id = {u.utterance_id: u for u in utterances}
    raw: list[tuple[float, float]] = []
    for r in redactions:
        start, end = r.start, r.end
        if not _placeable(start, end, duration):
            u = by_id.get(r.utterance_id)
            if u is None or not _placeable(u.start, u.end, duration):
                raise RedactionError(f"{r.redaction_id}: span cannot be placed in the audio")
            start, end = u.start, u.end
        raw.append((max(0.0, start - padding), min(duration, end + padding)))
    merged: list[tuple[float, float]] = []
    for start, end in sorted(raw):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _placeable(start: float, end: float, duration: float) -> bool:
    return (math.isfinite(start) and math.isfinite(end) and 0 <= start < end
            and start < duration + 0.5)


def write_redacted_audio(
    call: CallTranscript, redactions: Sequence[Redaction], out_dir: str, padding: float
) -> str:
    """Write ``call``'s audio (16 kHz, all channels) with redacted spans silenced."""
    import io

    import soundfile as sf
    from apache_beam.io.filesystems import FileSystems

    from pipeline.audio import load_call

    audio = load_call(call.spec)
    samples = audio.samples.copy()
    for start, end in silence_intervals(call.utterances, redactions, audio.duration, padding):
        samples[:, int(start * audio.sample_rate):int(math.ceil(end * audio.sample_rate))] = 0.0
    name = re.sub(r"[^A-Za-z0-9._-]", "_", call.call_id) + ".wav"
    path = FileSystems.join(out_dir, name)
    buffer = io.BytesIO()
    sf.write(buffer, samples.T, audio.sample_rate, format="WAV", subtype="PCM_16")
    if "://" not in out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with FileSystems.create(path) as f:
        f.write(buffer.getvalue())
    return path


# --- 5. Beam ---


class RedactFn(StageFn):
    """CallTranscript -> redacted CallTranscript, Redaction rows (``pii_redactions``)."""

    stage = "pii"

    def __init__(self, config: PiiConfig):
        super().__init__()
        self.config = config
        self.redacted = Metrics.counter("callscope", "pii_spans_redacted")

    def setup(self) -> None:
        self.redactor = Redactor(self.config)

    def run(self, element: CallTranscript) -> Iterator[Any]:
        try:
            call, rows = self.redactor.redact(element)
            if self.config.audio_dir:
                write_redacted_audio(call, rows, self.config.audio_dir, self.config.audio_padding)
        except RedactionError:
            raise
        except Exception as e:
            # The message of an arbitrary error may quote the text: keep only its type.
            raise RedactionError(f"redaction failed with {type(e).__name__}") from None
        self.redacted.inc(len(rows))
        yield call
        for row in rows:
            yield TaggedOutput(REDACTIONS, row)


class RedactPii(beam.PTransform):
    """Redact every transcript; a call whose redaction fails is failed, its text dropped.

    Input: a dict with ``transcripts`` (CallTranscript) and ``calls`` (CallSummary).
    Output: a dict with redacted ``transcripts``, ``calls`` (status ``failed`` where redaction
    failed), ``pii_redactions`` (Redaction) and ``dead_letter`` (DeadLetter).
    """

    def __init__(self, config: PiiConfig):
        super().__init__()
        self.config = config

    def expand(self, parts: dict[str, beam.PCollection]) -> dict[str, beam.PCollection]:
        transcripts, calls = parts["transcripts"], parts["calls"]
        if not self.config.enabled:
            empty = transcripts.pipeline | "NoRedactions" >> beam.Create([])
            none = transcripts.pipeline | "NoFailures" >> beam.Create([])
            return {"transcripts": transcripts, "calls": calls, REDACTIONS: empty,
                    DEAD_LETTER: none}
        redacted = transcripts | "Redact" >> beam.ParDo(RedactFn(self.config)).with_outputs(
            DEAD_LETTER, REDACTIONS, main="transcripts"
        )
        marked = (
            {
                "calls": calls | "KeyCalls" >> beam.Map(lambda c: (c.call_id, c)),
                "failed": redacted[DEAD_LETTER] | "KeyFailed" >> beam.Map(
                    lambda d: (d.call_id, d)),
            }
            | "JoinFailures" >> beam.CoGroupByKey()
            | "MarkFailed" >> beam.FlatMap(_mark_failed)
        )
        return {"transcripts": redacted.transcripts, "calls": marked,
                REDACTIONS: redacted[REDACTIONS], DEAD_LETTER: redacted[DEAD_LETTER]}


def _mark_failed(element: tuple[str, dict[str, list[Any]]]) -> list[CallSummary]:
    _, parts = element
    failed: list[DeadLetter] = parts["failed"]
    if not failed:
        return list(parts["calls"])
    return [replace(c, status="failed", num_utterances=0, num_words=0) for c in parts["calls"]]
