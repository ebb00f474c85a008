"""Facts stated in an answer, how two answers' facts contradict, and the reference knowledge base.

Sentence embeddings say whether two answers talk about the same thing, not whether they agree:
"shipping is $4.99" and "shipping is $9.99" embed almost identically. This module pulls out the
facts that embeddings miss and that a customer acts on:

* quantities: money, percentages, durations (normalised to days), clock times;
* dates (month and day, weekdays);
* yes/no polarity of the answer's opening;
* named options and policies (store credit vs refund to the card, UPS vs FedEx, ...), from a
  lexicon of synonyms grouped into families; only options of the same family are compared.

Two answers contradict on a dimension when both state it and the values cannot both be true
(quantity ranges that do not overlap, disjoint option sets, opposite polarity).

The knowledge base is a YAML or CSV file of approved question/answer pairs supplied by the
user (:func:`load_knowledge_base`).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MONEY = "money"
PERCENT = "percent"
DURATION = "duration"
AGE = "age"
COUNT = "count"
CLOCK = "clock"
DATE = "date"
WEEKDAYS = "weekdays"
CHARGE = "charge"
POLARITY = "polarity"
OPTION = "option"
SEMANTIC = "semantic"
KB = "knowledge_base"

QUANTITY_KINDS: tuple[str, ...] = (MONEY, PERCENT, DURATION, CLOCK, AGE)

# --- number words -> digits -------------------------------------------------------------------

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000}
# Lakh, crore, million and billion stay words ("5 lakh"): money amounts apply them.
_ARTICLE_UNITS = r"(day|week|month|year|hour|business day|working day|dollar|fortnight)"


def words_to_digits(text: str) -> str:
    """Lower-case ``text`` and write spelled-out numbers as digits ("twenty four" -> "24").

    Also reads "a week"/"an hour" as one, "a couple of days" as two and "half an hour" as 0.5,
    so that durations written either way compare equal.
    """
    text = text.lower().replace("\u2019", "'")
    # ASR writes decimals and percentages with stray spaces ("$12 .99", "10 %").
    text = re.sub(r"(\d)\s+\.(\d)", r"\1.\2", text)
    text = re.sub(r"(\d)\s+%", r"\1%", text)
    text = re.sub(
        r"\b(\d+(?:\.\d+)?)\s+(hundred|thousand)\b",
        lambda m: _fmt(float(m.group(1)) * _SCALES[m.group(2)]),
        text,
    )
    text = re.sub(r"\bhalf an? (hour|day)\b", r"0.5 \1", text)
    text = re.sub(r"\ba couple(?: of)? ", "2 ", text)
    text = re.sub(r"\b(tomorrow|next[- ]day|overnight)\b", r"\1 (1 day)", text)
    text = re.sub(rf"\b(?:a|an|one)\s+{_ARTICLE_UNITS}\b", r"1 \1", text)
    tokens = re.split(r"(\s+)", text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        value, j, trailing = _read_number(tokens, i)
        if j > i:
            out.append(_fmt(value) + trailing)
            i = j
        else:
            out.append(tokens[i])
            i += 1
    return "".join(out)


def _number_parts(token: str) -> list[str] | None:
    parts = [p for p in token.split("-") if p]
    if parts and all(p in _UNITS or p in _TENS or p in _SCALES for p in parts):
        return parts
    return None


def _continues(current: float, part: str) -> bool:
    """Whether number word ``part`` extends a number whose value so far is ``current``."""
    if part in _SCALES:
        return True
    rest = current % 100
    if part in _TENS:
        return rest == 0
    return rest == 0 or (rest % 10 == 0 and rest >= 20 and _UNITS[part] < 10)


def _read_number(tokens: Sequence[str], i: int) -> tuple[float, int, str]:
    """Read number words from ``tokens[i]`` on; return (value, next index, trailing punct)."""
    if not tokens[i] or tokens[i].isspace():
        return 0.0, i, ""
    total = current = 0.0
    seen = False
    j = end = i
    trailing = ""
    while j < len(tokens):
        raw = tokens[j]
        if raw.isspace() or raw == "":
            j += 1
            continue
        stripped = raw.rstrip(".,;:!?")
        parts = _number_parts(stripped)
        if parts is not None and seen and not _continues(current, parts[0]):
            break  # "twelve ninety nine" is two numbers (12 99), not 111
        if parts is None:
            if stripped == "and" and seen and raw == stripped:
                j += 1
                continue
            break
        for part in parts:
            if part in _UNITS:
                current += _UNITS[part]
            elif part in _TENS:
                current += _TENS[part]
            else:
                current = max(current, 1.0) * _SCALES[part]
                if _SCALES[part] >= 1000:
                    total += current
                    current = 0.0
        seen = True
        j += 1
        end = j
        if stripped != raw:
            trailing = raw[len(stripped) :]
            break
    if not seen:
        return 0.0, i, ""
    return total + current, end, trailing


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


# --- quantities -------------------------------------------------------------------------------

_NUM = r"(\d+(?:,\d+)*(?:\.\d+)?)"
_RANGE_SEP = r"\s*(?:to|-|\u2013|or|and|through)\s*"
_DAYS_PER = {
    "hour": 1 / 24, "day": 1.0, "night": 1.0, "week": 7.0, "fortnight": 14.0, "month": 365 / 12,
    "year": 365.0,
}  # fmt: skip


@dataclass(frozen=True)
class Quantity:
    """A number stated in an answer, as a closed interval in a canonical unit.

    Attributes:
        kind: ``money`` (currency units), ``percent``, ``duration`` (days), ``clock``
            (hour of day, 0-24), ``age`` (years of age) or ``count`` (of ``unit``).
        low: Lower end of the stated value or range.
        high: Upper end (equal to ``low`` for a single value).
        text: The words it was read from.
        unit: ISO currency code for money ("" when unknown), the counted noun for counts.
    """

    kind: str
    low: float
    high: float
    text: str
    unit: str = ""

    def overlaps(self, other: Quantity) -> bool:
        if self.unit and other.unit and self.unit != other.unit:
            return False  # 500 rupees and 500 dollars are not the same amount
        # Durations are loose by nature (a month is 28-31 days, "a year" vs "12 months"):
        # 5 %; amounts must match to the cent/percent point: 1 %.
        rel_tol = 0.05 if self.kind == DURATION else 0.01
        tol = rel_tol * max(abs(self.high), abs(other.high), 1.0)
        return self.low <= other.high + tol and other.low <= self.high + tol

    def describe(self) -> str:
        if self.kind == MONEY:
            if self.unit in ("", "USD"):
                return _range(self.low, self.high, "${:,.2f}")
            return self.unit + " " + _range(self.low, self.high, "{:,.2f}")
        if self.kind == AGE:
            return _range(self.low, self.high, "age {:g}")
        if self.kind == COUNT:
            return _range(self.low, self.high, "{:g} " + (self.unit or "items"))
        if self.kind == PERCENT:
            return _range(self.low, self.high, "{:g}%")
        if self.kind == DURATION:
            if self.high < 1:
                return _range(self.low * 24, self.high * 24, "{:g} h")
            return _range(self.low, self.high, "{:g} days")
        return "-".join(
            dict.fromkeys(f"{int(h)}:{round((h - int(h)) * 60):02d}" for h in (self.low, self.high))
        )


def _range(low: float, high: float, fmt: str) -> str:
    return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"


def _num(s: str) -> float:
    """A number as written: "12,000", Indian "1,00,000", or a decimal comma "4,99"."""
    if "," not in s:
        return float(s)
    if s.count(",") == 1 and len(s.split(",")[1].split(".")[0]) != 3:
        return float(s.replace(",", "."))
    return float(s.replace(",", ""))


_FREE = re.compile(
    r"\b(?:(?<!feel )(?<!interest )(?<!interest-)(?<!toll )(?<!hands )free(?! to)|"
    r"no (?:extra )?(?:charge|fee|cost)|free of charge|"
    r"(?:does not|doesn't|won't|will not) cost (?:you )?anything|at no (?:extra )?cost)\b"
)
# Currency markers -> ISO code. Symbols and codes before the amount, names after it
# ("Rs 12,000", "INR 5 lakh", "12,000 rupees", "€20", "20 euros").
_CURRENCY_BEFORE = {
    "us$": "USD", "$": "USD", "usd": "USD", "a$": "AUD", "aud": "AUD", "c$": "CAD",
    "cad": "CAD", "s$": "SGD", "sgd": "SGD", "€": "EUR", "eur": "EUR", "£": "GBP",
    "gbp": "GBP", "₹": "INR", "rs.": "INR", "rs": "INR", "inr": "INR", "¥": "JPY",
    "jpy": "JPY", "aed": "AED", "chf": "CHF",
}  # fmt: skip
_CURRENCY_AFTER = {
    "dollars": "USD", "dollar": "USD", "bucks": "USD", "usd": "USD", "euros": "EUR",
    "euro": "EUR", "eur": "EUR", "pounds": "GBP", "pound": "GBP", "quid": "GBP", "gbp": "GBP",
    "rupees": "INR", "rupee": "INR", "rs": "INR", "rs.": "INR", "inr": "INR", "/-": "INR",
    "yen": "JPY", "jpy": "JPY", "dirhams": "AED", "dirham": "AED", "aed": "AED",
    "aud": "AUD", "cad": "CAD", "sgd": "SGD", "francs": "CHF", "chf": "CHF",
}  # fmt: skip
_MONEY_SCALE = {
    "thousand": 1e3, "k": 1e3, "lakh": 1e5, "lakhs": 1e5, "lac": 1e5, "lacs": 1e5,
    "crore": 1e7, "crores": 1e7, "cr": 1e7, "million": 1e6, "mn": 1e6, "m": 1e6,
    "billion": 1e9, "bn": 1e9,
}  # fmt: skip


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_CUR_B = rf"(?<![a-z])(?:{_alternation(_CURRENCY_BEFORE)})"
_CUR_A = rf"(?:{_alternation(_CURRENCY_AFTER)})(?![a-z])"
_SCALE_WORD = rf"(?:\s*(?:{_alternation(_MONEY_SCALE)})(?![a-z]))?"
_AMOUNT = rf"{_NUM}{_SCALE_WORD}"
_MONEY_PATTERNS = (
    re.compile(rf"\b{_NUM}\s*dollars?\s*(?:and\s*)?{_NUM}\s*cents?\b()"),
    # "Rs 12,000 to Rs 24,000", "$5-$10", "INR 5 lakh"
    re.compile(rf"({_CUR_B})\s?{_AMOUNT}(?:{_RANGE_SEP}(?:{_CUR_B})?\s?{_AMOUNT})?"),
    # "12,000 to 24,000 rupees", "5 lakh rupees", "20 euros"
    re.compile(rf"\b{_AMOUNT}(?:{_RANGE_SEP}{_AMOUNT})?\s*({_CUR_A})"),
    # "2.5 lakh", "1 crore" without a currency: amounts of money in Indian usage
    re.compile(rf"\b{_NUM}\s*(?:lakhs?|lacs?|crores?)(?![a-z])"),
)


def _amount(match_text: str) -> list[float]:
    """The amounts in a money match, scale words applied ("5 lakh" -> 500000)."""
    values = []
    for m in re.finditer(rf"{_NUM}{_SCALE_WORD.replace('(?:', '(', 1)}", match_text):
        scale = m.group(2)
        values.append(_num(m.group(1)) * (_MONEY_SCALE[scale.strip()] if scale else 1.0))
    return values


def _currency(match_text: str) -> str:
    head = re.match(_CUR_B, match_text)
    if head:
        return _CURRENCY_BEFORE[head.group(0)]
    tail = re.search(_CUR_A + r"\s*$", match_text)
    return _CURRENCY_AFTER[tail.group(0).strip()] if tail else ""
_PRICE_CONTEXT = re.compile(r"\b(?:cost|costs|price|priced|fee|charge|charges|pay|extra|is)\b")
_NOT_AFTER_AMOUNT = r"(?!\s*(?:%|percent|days?|weeks?|months?|years?|hours?|am|pm|business|working|"
_NOT_AFTER_AMOUNT += r"dollars?|payments?|installments?))"
_SPOKEN_PRICE = re.compile(r"\b(\d{1,4}) ([1-9]\d)\b" + _NOT_AFTER_AMOUNT)
_CENTS = re.compile(rf"\b{_NUM}\s*cents?\b")
_PERCENT = re.compile(rf"\b{_NUM}(?:{_RANGE_SEP}{_NUM})?\s*(?:%|percent|per cent)")
_DURATION = re.compile(
    rf"\b{_NUM}(?:{_RANGE_SEP}{_NUM})?\s*(?:-\s*)?(?:(?:full|whole|extra|more|additional|"
    r"business|working|calendar)\s+)?"
    r"(hour|day|night|week|fortnight|month|year)s?\b"
)
_AGE_CONTEXT = re.compile(
    r"\b(?:age|aged|ages|old|born|birthday|senior citizens?|minors?|parents|children|kids|"
    r"child|adults?|elderly|entry)\b"
)
_SCHEDULE_WORDS = re.compile(r"\b\d+\s+days?\s+(?:a|per|1)\s+week\b|\b24\s*/\s*7\b")
_CLOCK_RANGE = re.compile(
    r"\b(\d{1,2})(?::(\d\d))?\s+(?:to|until|till|-)\s+(\d{1,2})(?::(\d\d))?\b" + _NOT_AFTER_AMOUNT
)
_SCHEDULE_CONTEXT = re.compile(
    r"\b(?:open|hours|available|call|support|closed?|line|staffed|reach)\b"
)
_CLOCK = re.compile(
    r"\b(\d{1,2})(?::(\d\d))?\s*(a\.?m\.?|p\.?m\.?|o'clock|in the morning|in the afternoon|"
    r"in the evening|at night)(?![a-z])"
    r"|\b(noon|midday|midnight)\b"
)


_AGE_NUM = rf"{_NUM}(?:\s*(?:to|-|\u2013|and)\s*{_NUM})?"
_AGE_PATTERNS = (
    # "65 years old", "18-65 years of age", "aged 18 to 65", "age limit of 70 years",
    # "up to the age of 65", "entry age 18"
    re.compile(rf"\b{_AGE_NUM}\s*(?:years?|yrs?)?(?:\s*-\s*|\s+)(?:old|of age)\b"),
    re.compile(
        rf"\b(?:aged?|ages)\s+(?:limit\s+|limits\s+)?(?:is\s+|of\s+|between\s+|from\s+)?"
        rf"(?:up\s+to\s+|upto\s+|till\s+)?{_AGE_NUM}(?:\s*(?:years?|yrs?))?"
    ),
)
_COUNT_NOUNS = {
    **{w: "mode" for w in ("mode", "modes")}, **{w: "option" for w in ("option", "options")},
    **{w: "way" for w in ("way", "ways")}, **{w: "type" for w in ("type", "types")},
    **{w: "plan" for w in ("plan", "plans")}, **{w: "method" for w in ("method", "methods")},
    **{w: "variant" for w in ("variant", "variants")},
    **{w: "installment" for w in ("installment", "installments", "instalment", "instalments")},
    **{w: "transaction" for w in ("transaction", "transactions")},
    **{w: "withdrawal" for w in ("withdrawal", "withdrawals")},
    **{w: "person" for w in ("person", "persons", "people", "adults", "adult", "guests",
                             "guest", "members", "member")},
    **{w: "child" for w in ("child", "children", "kids", "kid")},
    **{w: "nominee" for w in ("nominee", "nominees")},
    **{w: "bag" for w in ("bag", "bags", "suitcase", "suitcases", "pieces of luggage")},
    **{w: "pet" for w in ("pet", "pets", "dogs", "dog")},
    **{w: "time" for w in ("times",)},
}  # fmt: skip
_COUNT = re.compile(
    rf"\b(\d+|only|single)\s+(?:(?:the|a|an|one)\s+)?(?:[a-z][a-z-]*\s+)?"
    rf"({_alternation(_COUNT_NOUNS)})\b"
)


def extract_quantities(norm: str) -> tuple[Quantity, ...]:
    """Quantities in ``norm``, a text already passed through :func:`words_to_digits`."""
    found: list[Quantity] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, low: float, high: float, m: re.Match[str], unit: str = "") -> None:
        if any(m.start() < e and s < m.end() for s, e in taken):
            return
        taken.append((m.start(), m.end()))
        lo, hi = min(low, high), max(low, high)
        found.append(Quantity(kind, lo, hi, m.group(0).strip(), unit))

    for n, pattern in enumerate(_MONEY_PATTERNS):
        for m in pattern.finditer(norm):
            if n == 0:  # "4 dollars and 99 cents"
                value = _num(m.group(1)) + _num(m.group(2)) / 100
                add(MONEY, value, value, m, "USD")
                continue
            amounts = _amount(m.group(0))
            if amounts:
                add(MONEY, amounts[0], amounts[-1], m, _currency(m.group(0).strip()))
    if _PRICE_CONTEXT.search(norm):
        for m in _SPOKEN_PRICE.finditer(norm):  # "twelve ninety nine"
            value = _num(m.group(1)) + _num(m.group(2)) / 100
            add(MONEY, value, value, m)
    for m in _CENTS.finditer(norm):
        add(MONEY, _num(m.group(1)) / 100, _num(m.group(1)) / 100, m, "USD")
    for m in _FREE.finditer(norm):
        add(MONEY, 0.0, 0.0, m)
    for pattern in _AGE_PATTERNS:
        for m in pattern.finditer(norm):
            low = _num(m.group(1))
            add(AGE, low, _num(m.group(2)) if m.group(2) else low, m)
    for m in _COUNT.finditer(norm):
        noun = _COUNT_NOUNS[m.group(2)]
        if m.group(1) in ("only", "single") and m.group(2) != noun:
            continue  # "only annual and monthly modes" names modes, it counts none
        value = _num(m.group(1)) if m.group(1) not in ("only", "single") else 1.0
        add(COUNT, value, value, m, noun)
    for m in _PERCENT.finditer(norm):
        low = _num(m.group(1))
        add(PERCENT, low, _num(m.group(2)) if m.group(2) else low, m)
    for m in _SCHEDULE_WORDS.finditer(norm):
        taken.append((m.start(), m.end()))  # "seven days a week" is a schedule, not a delay
    for m in _DURATION.finditer(norm):
        if _AGE_CONTEXT.search(norm[max(0, m.start() - 40) : m.end() + 25]):
            # "parents are covered up to 65 years (of age)": an age limit, not a delay.
            low = _num(m.group(1))
            if m.group(3) == "year":
                add(AGE, low, _num(m.group(2)) if m.group(2) else low, m)
                continue
        per = _DAYS_PER[m.group(3)]
        low = _num(m.group(1)) * per
        add(DURATION, low, (_num(m.group(2)) * per) if m.group(2) else low, m)
    for m in _CLOCK.finditer(norm):
        if m.group(4):
            hour = 0.0 if m.group(4) == "midnight" else 12.0
        else:
            hour = float(m.group(1)) % 12 + (float(m.group(2)) / 60 if m.group(2) else 0.0)
            if m.group(3).startswith(("p", "in the afternoon", "in the evening", "at night")):
                hour += 12
        add(CLOCK, hour, hour, m)
    if _SCHEDULE_CONTEXT.search(norm):
        # Opening hours said bare, "nine to five": the end is in the afternoon/evening.
        for m in _CLOCK_RANGE.finditer(norm):
            start, end = float(m.group(1)), float(m.group(3))
            if not (1 <= start <= 12 and 1 <= end <= 12):
                continue
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            found.append(Quantity(CLOCK, start, start, m.group(0)))
            end = end + 12 if end <= start else end
            found.append(Quantity(CLOCK, end, end, m.group(0)))
    return tuple(found)


# --- dates ------------------------------------------------------------------------------------

_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE = re.compile(
    r"\b(" + "|".join(_MONTHS) + r")\s+(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?\b"
    r"|\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\s+of\s+(" + "|".join(_MONTHS) + r")\b"
)
_WEEKDAY_RANGE = re.compile(
    r"\b(" + "|".join(_WEEKDAYS) + r")s?\s*(?:to|through|thru|-|until|till)\s*("
    + "|".join(_WEEKDAYS)
    + r")s?\b"
)
_WEEKDAY = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")s?\b")


def extract_dates(norm: str) -> frozenset[str]:
    """Calendar dates (``MM-DD``) named in ``norm``."""
    dates: set[str] = set()
    for m in _DATE.finditer(norm):
        month = m.group(1) or m.group(4)
        day = m.group(2) or m.group(3)
        dates.add(f"{_MONTHS.index(month) + 1:02d}-{int(day):02d}")
    return frozenset(dates)


_ALL_WEEK = re.compile(
    r"\b(?:7 days (?:a|1|per) week|every day|everyday|daily|all week|24/7|"
    r"including weekends|weekends included|weekends too)\b"
)


_CLOSED_ON = re.compile(
    r"\b(?:closed (?:on |every |all day )*|except (?:for )?(?:on )?)("
    + "|".join(_WEEKDAYS)
    + r")s?\b"
)


def extract_weekdays(norm: str) -> frozenset[str]:
    """The days of the week a schedule names ("Monday to Friday", "weekdays", "every day")."""
    closed = {m.group(1)[:3] for m in _CLOSED_ON.finditer(norm)}
    norm = _CLOSED_ON.sub(" ", norm)
    if _ALL_WEEK.search(norm):
        return frozenset(w[:3] for w in _WEEKDAYS if w[:3] not in closed)
    days: set[str] = set()
    rest = norm
    for m in _WEEKDAY_RANGE.finditer(norm):
        a, b = _WEEKDAYS.index(m.group(1)), _WEEKDAYS.index(m.group(2))
        for k in range(a, (b if b >= a else b + 7) + 1):
            days.add(_WEEKDAYS[k % 7][:3])
        rest = rest.replace(m.group(0), " ")
    if re.search(r"\bweekdays\b|\bon weekdays?\b", rest):
        days.update(w[:3] for w in _WEEKDAYS[:5])
    if re.search(r"\bweekends?\b", rest):
        days.update({"sat", "sun"})
    for m in _WEEKDAY.finditer(rest):
        days.add(m.group(1)[:3])
    return frozenset(days)


# --- polarity ---------------------------------------------------------------------------------

_YES_START = re.compile(
    r"^(?:(?:oh|well|so|okay|ok|right|um|uh),?\s+)*(?:yes|yeah|yep|yup|sure|of course|"
    r"absolutely|definitely|certainly|correct|that's right|that is right|indeed)\b"
)
_NO_START = re.compile(
    r"^(?:(?:oh|well|so|okay|ok|right|um|uh),?\s+)*(?:no|nope|nah)\b(?!\s+(?:problem|worries))"
)
_NEGATION = re.compile(
    r"\b(?:not|cannot|can't|cant|don't|doesn't|didn't|won't|wouldn't|isn't|aren't|wasn't|"
    r"shouldn't|couldn't|never|unfortunately|afraid not|no longer|unable|not able|"
    r"not possible|impossible|(?:is|are) non-?refundable|"
    r"there (?:is|are|'s) no(?!\s+(?:charge|fee|fees|cost|extra|additional|need|problem|"
    r"restrictions?|limits?))|(?:offers?|has|have|provides?|accepts?|allows?) no|"
    r"no-smoking|non-smoking|smoke-free|"
    r"no\s+(?:\w+\s+){0,2}(?:is|are)?\s*(?:allowed|permitted|available|offered|provided)|"
    r"(?:is|are) (?:strictly )?prohibited|(?:is|are) (?:entirely |completely )?non-?\w+ing)\b"
)
_AFFIRM = re.compile(
    r"\b(?:you can|you could|we can|we do|we will|it is|it's|that's fine|that is fine|"
    r"no problem|you're able|you are able|is possible|it does|you do|we accept|we offer|"
    r"we allow|allowed|included|is covered|are covered|you will|you'll|offers?|accepts?|"
    r"provides?|has|have|does have|does offer|includes|is available|are available|"
    r"(?:is|are) welcome|welcomes|can be used|friendly|permitted)\b"
)
_CHECKING = re.compile(
    r"\b(?:let me|one moment|give me a|hold on|bear with me|i'll check|i will check|"
    r"let's see|checking)\b"
)
_CONDITIONAL = re.compile(r"^(?:if|when|unless|as long as|provided)\b")
_NOT_NEGATION = re.compile(r"\b(?:do not worry|don't worry|not to worry|not a problem)\b")
_CONTRAST = re.compile(r"\b(?:but|however|although|unfortunately)\b")


def extract_polarity(norm: str) -> str | None:
    """``yes``, ``no`` or None: how the answer opens, for yes/no questions.

    An explicit "yes"/"no" at the start decides, unless a "yes" is followed in the same
    sentence by "but"/"however" and a negation. Without one, a negated verb in the first
    sentence ("we can't", "unfortunately") reads as no and an affirmative one as yes.
    "No problem" and "no fee" are not negations of the answer.
    """
    sentences = re.split(r"(?<=[.!?])\s+", norm.strip())
    # "Sure, let me check that for you. ..." is no answer yet: read the next sentence.
    while len(sentences) > 1 and _CHECKING.search(sentences[0]):
        sentences = sentences[1:]
    first = sentences[0]
    later = sentences[1:]
    if _NO_START.search(first):
        # An answer that opens "no" and later opens a sentence with "yes" (or the reverse)
        # joins two replies ("Yes, price match covers it. No, returns are free."): unclear.
        return None if any(_YES_START.search(x) for x in later) else "no"
    if _YES_START.search(first):
        if any(_NO_START.search(x) for x in later):
            return None
        after = first[_YES_START.search(first).end() :]  # type: ignore[union-attr]
        contrast = _CONTRAST.search(after)
        if contrast and _NEGATION.search(after[contrast.start() :]):
            return "no"
        return "yes"
    if _CONDITIONAL.match(first):
        return None  # "When the cancellation is not made in time, ...": no yes or no
    first = _NOT_NEGATION.sub(" ", first)
    if _NEGATION.search(first):
        return "no"
    if _AFFIRM.search(first):
        return "yes"
    return None


# --- options ----------------------------------------------------------------------------------

DEFAULT_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    # Family -> canonical option -> phrases (lower case, matched on word boundaries). Common
    # contact-centre policies; extend per deployment with ``ConsistencyConfig.options`` or
    # the ``options`` section of the knowledge base.
    "refund_method": {
        "store_credit": ("store credit", "credit on your account", "account credit", "voucher",
                         "gift card", "credit note"),
        "original_payment": ("original payment", "back to your card", "back on your card",
                             "to your card", "on your card", "refund to the card",
                             "same card", "money back", "cash refund", "full refund",
                             "to your bank", "back to your account", "card you paid with",
                             "account you paid with", "card you used", "the way you paid"),
        "exchange_only": ("exchange only", "only exchange", "only an exchange",
                          "only do exchanges", "swap it", "exchange it for"),
    },
    "carrier": {
        "ups": ("ups",), "fedex": ("fedex", "fed ex"), "usps": ("usps", "postal service"),
        "dhl": ("dhl",), "royal_mail": ("royal mail",),
    },
    "channel": {
        "online": ("online", "website", "web site", "in the app", "account settings",
                   "your account page", "self-service", "self service", "portal"),
        "phone": ("by phone", "over the phone", "call us", "give us a call", "phone line"),
        "in_store": ("in store", "in-store", "in person", "at the store", "at any store",
                     "a branch", "the branch"),
        "email": ("email", "e-mail"),
        "mail": ("by mail", "by post", "in writing", "written letter", "letter"),
        "chat": ("live chat", "chat"),
    },
    "payment": {
        "paypal": ("paypal",),
        "credit_card": ("credit card", "visa", "mastercard", "master card", "amex",
                        "american express", "discover card", "diners club"),
        "debit_card": ("debit card", "maestro"),
        "bank_transfer": ("bank transfer", "wire transfer"),
        "cash": ("cash on delivery", "in cash", "cash"),
        # "check" alone is mostly the verb ("check in", "please check"): cheque phrases only.
        "check": ("cheque", "by check", "personal check", "paper check"),
        "apple_pay": ("apple pay",), "google_pay": ("google pay",),
    },
    "frequency": {
        "annual": ("annual", "annually", "yearly", "per year", "once a year", "every year",
                   "per annum"),
        "half_yearly": ("half-yearly", "half yearly", "semi-annual", "semi-annually",
                        "semiannual", "twice a year", "every six months", "every 6 months"),
        "quarterly": ("quarterly", "every quarter", "every three months",
                      "every 3 months"),
        "monthly": ("monthly", "every month", "once a month"),
        "weekly": ("weekly", "every week", "once a week"),
        "single": ("single premium", "one-time", "one time", "lump sum", "lump-sum"),
    },
    "currency": {
        "usd": ("usd", "dollars", "us dollars", "u.s. dollars", "american dollars"),
        "eur": ("eur", "euro", "euros"), "gbp": ("gbp", "pounds sterling", "british pounds"),
        "inr": ("inr", "indian rupees", "rupees"), "aud": ("aud", "australian dollars"),
        "cad": ("cad", "canadian dollars"), "aed": ("aed", "dirhams"), "jpy": ("jpy", "yen"),
        "sgd": ("sgd", "singapore dollars"), "chf": ("chf", "swiss francs"),
    },
    "shipping_speed": {
        "express": ("express", "overnight", "next day", "next-day"),
        "standard": ("standard shipping", "standard delivery", "regular shipping", "ground"),
    },
}  # fmt: skip


def compile_options(
    options: Mapping[str, Mapping[str, Sequence[str]]],
) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """Turn an option lexicon into (family, option, pattern) triples, longest phrase first."""
    triples = []
    for family, opts in options.items():
        for option, phrases in opts.items():
            for phrase in phrases:
                triples.append((family, option, phrase))
    triples.sort(key=lambda t: -len(t[2]))
    return tuple(
        # Plurals name the same option ("credit cards", "vouchers").
        (f, o, re.compile(r"\b" + re.escape(p).replace(r"\ ", r"\s+") + r"(?:s|es)?\b"))
        for f, o, p in triples
    )


_DEFAULT_COMPILED = compile_options(DEFAULT_OPTIONS)


_ONLY_BEFORE = re.compile(
    r"\b(?:only|solely|exclusively)\s+(?:[a-z-]+\s+){0,3}$"
)
_ONLY_AFTER = re.compile(r"^(?:\s+[a-z-]+)?\s+(?:only|alone)\b")


@dataclass(frozen=True)
class OptionSet:
    """The options of one family an answer names, and whether it says they are the only ones
    ("only annual mode", "by phone only")."""

    options: frozenset[str]
    exclusive: bool = False

    def describe(self) -> str:
        return ", ".join(sorted(self.options)) + (" only" if self.exclusive else "")


def exclusive_families(
    norm: str, compiled: tuple[tuple[str, str, re.Pattern[str]], ...] = _DEFAULT_COMPILED
) -> frozenset[str]:
    """Families whose option is named with "only"/"just"/"solely" before or "only" after."""
    out = set()
    for family, _option, pattern in compiled:
        for m in pattern.finditer(norm):
            if _ONLY_BEFORE.search(norm[max(0, m.start() - 40) : m.start()]) or _ONLY_AFTER.match(
                norm[m.end() : m.end() + 25]
            ):
                out.add(family)
    return frozenset(out)


def extract_options(
    norm: str, compiled: tuple[tuple[str, str, re.Pattern[str]], ...] = _DEFAULT_COMPILED
) -> frozenset[tuple[str, str]]:
    """(family, option) pairs named in ``norm``; a longer phrase hides shorter ones in it."""
    found: set[tuple[str, str]] = set()
    taken: list[tuple[int, int]] = []
    for family, option, pattern in compiled:
        for m in pattern.finditer(norm):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            # "not X" / "no X" names X as excluded; it is not the option offered.
            before = norm[max(0, m.start() - 12) : m.start()]
            after = norm[m.end() : m.end() + 16]
            if re.search(r"\b(?:not|no|don't|doesn't|never|n't)\s+(?:\w+\s+)?$", before) or (
                re.match(r"\s+(?:is|are)\s+not\b|\s+(?:isn't|aren't)\b", after)
            ):
                taken.append((m.start(), m.end()))
                continue
            taken.append((m.start(), m.end()))
            found.add((family, option))
    return frozenset(found)


_NAME = re.compile(r"\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)+)\b")
_NOT_NAMES = {"I", "Okay", "Yes", "No", "Sorry", "Thank", "Thanks"}


def extract_names(text: str) -> frozenset[str]:
    """Named plans, products or programmes: capitalised multi-word phrases inside a sentence
    ("our Flex Pay plan"). Sentence-initial words are skipped (capitalised anyway)."""
    names = set()
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        body = sentence.split(" ", 1)[1] if " " in sentence else ""
        for m in _NAME.finditer(body):
            words = [w for w in m.group(1).split() if w not in _NOT_NAMES]
            if len(words) >= 2:
                names.add(" ".join(words).lower())
    return frozenset(names)


# --- answer facts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerFacts:
    """Checkable facts of one answer.

    Attributes:
        quantities: Money, percentages, durations and clock times.
        dates: Calendar dates (``MM-DD``) and weekdays (``mon``).
        polarity: ``yes``/``no``/None, see :func:`extract_polarity`.
        options: (family, option) pairs, see :func:`extract_options`.
    """

    quantities: tuple[Quantity, ...] = ()
    dates: frozenset[str] = frozenset()
    polarity: str | None = None
    options: frozenset[tuple[str, str]] = frozenset()
    weekdays: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    charge: str | None = None
    exclusive: frozenset[str] = frozenset()

    def values(self) -> dict[str, Any]:
        """Dimension -> comparable value: quantity kinds -> tuple of Quantity, ``date`` ->
        frozenset, ``polarity`` -> str, ``option:<family>`` -> frozenset of options."""
        out: dict[str, Any] = {}
        for kind in QUANTITY_KINDS:
            qs = tuple(q for q in self.quantities if q.kind == kind)
            if qs:
                out[kind] = qs
        if self.dates:
            out[DATE] = self.dates
        if self.weekdays:
            out[WEEKDAYS] = self.weekdays
        # Capitalised names ("Sum Assured", "Life Option") are kept for the record but are
        # no dimension: two answers naming different product terms do not contradict.
        if self.charge:
            out[CHARGE] = self.charge
        if self.polarity:
            out[POLARITY] = self.polarity
        families: dict[str, set[str]] = {}
        for family, option in self.options:
            families.setdefault(family, set()).add(option)
        for family, opts in families.items():
            out[f"{OPTION}:{family}"] = OptionSet(frozenset(opts), family in self.exclusive)
        counts: dict[str, list[Quantity]] = {}
        for q in self.quantities:
            if q.kind == COUNT:
                counts.setdefault(f"{COUNT}:{q.unit}", []).append(q)
        out.update({dim: tuple(qs) for dim, qs in counts.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantities": [
                {"kind": q.kind, "low": q.low, "high": q.high, "text": q.text, "unit": q.unit}
                for q in self.quantities
            ],
            "dates": sorted(self.dates),
            "polarity": self.polarity,
            "options": sorted(f"{f}/{o}" for f, o in self.options),
            "weekdays": sorted(self.weekdays),
            "names": sorted(self.names),
            "charge": self.charge,
            "exclusive": sorted(self.exclusive),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnswerFacts:
        return cls(
            quantities=tuple(Quantity(**q) for q in data.get("quantities") or ()),
            dates=frozenset(data.get("dates") or ()),
            weekdays=frozenset(data.get("weekdays") or ()),
            names=frozenset(data.get("names") or ()),
            charge=data.get("charge"),
            exclusive=frozenset(data.get("exclusive") or ()),
            polarity=data.get("polarity"),
            options=frozenset(
                tuple(o.split("/", 1)) for o in data.get("options") or ()  # type: ignore[misc]
            ),
        )


_FEE_WORDS = re.compile(r"\b(?:fee|fees|charge|charged|keep|restocking|penalty|deduct)\b")


def extract_charge(norm: str, quantities: Sequence[Quantity]) -> str | None:
    """``free`` or ``paid``: whether the answer says something costs money at all.

    "There is no fee" and "we keep 15 percent as a restocking fee" state no comparable
    amount (money vs percent) but contradict each other all the same.
    """
    money = [q for q in quantities if q.kind == MONEY]
    if any(q.high > 0 for q in money):
        return "paid"
    if any(q.kind == PERCENT and q.high > 0 for q in quantities) and _FEE_WORDS.search(norm):
        return "paid"
    if money:
        return "free"
    return None


def extract_facts(
    text: str, compiled_options: tuple[tuple[str, str, re.Pattern[str]], ...] | None = None
) -> AnswerFacts:
    """All checkable facts of an answer ``text``."""
    norm = words_to_digits(text)
    quantities = extract_quantities(norm)
    compiled = compiled_options or _DEFAULT_COMPILED
    return AnswerFacts(
        exclusive=exclusive_families(norm, compiled),
        quantities=quantities,
        charge=extract_charge(norm, quantities),
        dates=extract_dates(norm),
        polarity=extract_polarity(norm),
        options=extract_options(norm, compiled),
        weekdays=extract_weekdays(norm),
        names=extract_names(text),
    )


def values_agree(dimension: str, a: Any, b: Any) -> bool:
    """Whether two values of one dimension (from :meth:`AnswerFacts.values`) can both be true.

    Quantities agree when every quantity of one side overlaps some quantity of the other, in
    either direction (one answer may give more detail: "$5, or $15 express" vs "$5"). Dates
    and options agree when one set contains the other or they share a member... for options,
    when they share an option; for dates, when one set contains the other.
    """
    if dimension in QUANTITY_KINDS or dimension.startswith(COUNT):
        a_in_b = all(any(x.overlaps(y) for y in b) for x in a)
        b_in_a = all(any(y.overlaps(x) for x in a) for y in b)
        return a_in_b or b_in_a
    if dimension == DATE:
        return bool(a <= b or b <= a)
    if dimension == WEEKDAYS:
        # "open on Saturdays" names part of "open every day": only disjoint days disagree
        # in full; a schedule answer often covers the days the customer asked about.
        return bool(a <= b or b <= a)
    if dimension == CHARGE:
        return bool(a == b)
    if dimension == POLARITY:
        return bool(a == b)
    if dimension.startswith(OPTION):
        # Sets of options: the same set agrees; one answer may name fewer of the options
        # unless it says they are the only ones; two different lists do not agree
        # ("USD and EUR" vs "USD and GBP", "only annual" vs "annual, monthly, quarterly").
        sa, sb = _option_set(a), _option_set(b)
        if sa.options == sb.options:
            return True
        if sa.options < sb.options:
            return not sa.exclusive
        if sb.options < sa.options:
            return not sb.exclusive
        return False
    raise ValueError(f"unknown fact dimension {dimension!r}")


def _option_set(value: Any) -> OptionSet:
    return value if isinstance(value, OptionSet) else OptionSet(frozenset(value))


def describe_value(dimension: str, value: Any) -> str:
    """A short human-readable rendering of a dimension's value ("free", "$4.99", "INR
    12,000.00", "annual only")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value  # polarity, charge: one word ("free" is not the letters e, e, f, r)
    if isinstance(value, OptionSet):
        return value.describe()
    if isinstance(value, tuple):
        return ", ".join(q.describe() for q in value)
    return ", ".join(sorted(value))


# --- knowledge base ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeEntry:
    """One approved question/answer pair.

    Attributes:
        entry_id: Id from the file, or ``kb-<n>``.
        question: The approved question (or one phrasing of it).
        answer: The approved answer.
        paraphrases: Other phrasings of the question, used to match it to question groups.
    """

    entry_id: str
    question: str
    answer: str
    paraphrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnowledgeBase:
    """Approved answers and, optionally, extra option vocabulary (see :data:`DEFAULT_OPTIONS`)."""

    entries: tuple[KnowledgeEntry, ...]
    options: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    source: str = ""


def load_knowledge_base(path: str | Path) -> KnowledgeBase:
    """Read approved question/answer pairs from YAML or CSV.

    YAML: a list of entries, or a mapping with ``entries`` (or ``questions``/``topics``) and
    an optional ``options`` lexicon (family -> option -> phrases). An entry has ``question``
    (or ``questions``: a list whose first item is the canonical one, or ``paraphrases``) and
    ``answer`` (or ``approved_answer``), and optionally ``id``. CSV: columns ``question`` and
    ``answer``, optionally ``id``.

    Raises:
        ValueError: If the file is missing, of an unknown type, or an entry lacks a question
            or an answer.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"knowledge base {p} does not exist")
    suffix = p.suffix.lower()
    options: dict[str, dict[str, tuple[str, ...]]] = {}
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:  # pragma: no cover - pyyaml ships with apache-beam
            raise RuntimeError("reading a YAML knowledge base requires pyyaml") from e
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        raw_entries: Iterable[Any]
        if isinstance(data, list):
            raw_entries = data
        elif isinstance(data, dict):
            raw_entries = data.get("entries") or data.get("questions") or data.get("topics") or []
            if isinstance(raw_entries, dict):
                raw_entries = [{"id": k, **v} for k, v in raw_entries.items()]
            for family, opts in (data.get("options") or {}).items():
                options[str(family)] = {str(o): tuple(map(str, ph)) for o, ph in opts.items()}
        else:
            raise ValueError(f"knowledge base {p}: expected a list or mapping at the top")
    elif suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as f:
            raw_entries = list(csv.DictReader(f))
    else:
        raise ValueError(f"knowledge base {p}: unknown type {suffix!r} (use .yaml, .yml or .csv)")
    entries = []
    for n, raw in enumerate(raw_entries):
        if not isinstance(raw, dict):
            raise ValueError(f"knowledge base {p}: entry {n} is not a mapping")
        questions = raw.get("questions") or raw.get("paraphrases") or []
        if isinstance(questions, str):
            questions = [questions]
        question = raw.get("question") or raw.get("canonical_question") or (
            questions[0] if questions else None
        )
        answer = raw.get("answer") or raw.get("approved_answer") or raw.get("correct_answer")
        if isinstance(answer, list):
            answer = answer[0] if answer else None
        if not question or not answer:
            raise ValueError(f"knowledge base {p}: entry {n} needs a question and an answer")
        entries.append(
            KnowledgeEntry(
                entry_id=str(raw.get("id") or raw.get("group_id") or raw.get("topic") or f"kb-{n}"),
                question=str(question),
                answer=str(answer),
                paraphrases=tuple(str(q) for q in questions if q != question),
            )
        )
    if not entries:
        raise ValueError(f"knowledge base {p} has no entries")
    logger.info("knowledge base %s: %d entries", p, len(entries))
    return KnowledgeBase(entries=tuple(entries), options=options, source=str(p))
