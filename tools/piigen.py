"""Generated contact-center dialogues with planted PII, spoken several ways, and its truth.

Each dialogue is a list of turns; each turn a list of words, each word labelled with the
PII entity type it belongs to (or None). Values are random (card numbers pass the Luhn
check, routing numbers the ABA check) and read out as an ASR system writes them: grouped
digits, digit words ("four four two one"), pairs ("forty four twenty one"), "double"/"oh",
written e-mails and spoken ones ("dot ... at ... dot com"), dates as words and numbers.
Dialogues also hold hard negatives: amounts, counts, delivery dates, times, years.

A long number is sometimes read over two customer utterances with an agent "mm-hm" between
them (``split``): the redactor must find it whole.

    python -m tools.piigen --seed 1 --n 5      # print five dialogues with their labels

No text is taken from a corpus: every phrase is written here.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

from pipeline.pii import (
    BANK_ACCOUNT,
    CARD_CVV,
    CARD_EXPIRY,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    EMAIL_ADDRESS,
    PERSON,
    PHONE_NUMBER,
    ROUTING_NUMBER,
    STREET_ADDRESS,
    US_SSN,
)

DIGIT_WORDS = "zero one two three four five six seven eight nine".split()
TEEN_WORDS = ("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen "
              "nineteen").split()
TENS_WORDS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
MONTHS = ("January February March April May June July August September October November "
          "December").split()
ORDINAL_WORDS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
                 "twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth "
                 "nineteenth twentieth").split()
FIRST_NAMES = ("Dana Omar Priya Lucas Mei Tomasz Aisha Connor Elena Jamal Hiroshi Sofia "
               "Marcus Ingrid Rafael Noor Keisha Dmitri Leila Owen Beatriz Tariq Hannah "
               "Viktor Yuki Grace Mateo Fatima Liam Zara").split()
LAST_NAMES = ("Whitfield Haddad Raman Moreau Chen Kowalski Okafor Brennan Petrova Hughes "
              "Tanaka Alvarez Lindqvist Osei Novak Fernandes Gallagher Nakamura Abbott "
              "Castillo Duarte Ivanova Mensah Sorensen Kapoor Reyes Baptiste Lindgren "
              "Farouk Quinlan").split()
STREETS = ("Maple Oak Cedar Willow Birchwood Lakeview Sunset Highland Meadow Ridge Harbor "
           "Chestnut Juniper Hawthorne Elm Pine").split()
SUFFIXES = "Street Avenue Road Lane Drive Court Boulevard Way Place Terrace".split()
CITIES = [("Springfield", "Illinois"), ("Riverton", "Wyoming"), ("Fairview", "Oregon"),
          ("Lakewood", "Colorado"), ("Greenville", "Ohio"), ("Madison", "Wisconsin"),
          ("Franklin", "Tennessee"), ("Salem", "Massachusetts")]
DOMAINS = ["gmail", "yahoo", "outlook", "hotmail", "icloud", "proton", "comcast"]
TLDS = ["com", "com", "com", "net", "org"]
AREA_CODES = ["415", "312", "646", "206", "503", "617", "702", "404", "512", "919", "213"]
COMPANY = ["Northwind", "Bluebird Bank", "Tessera Mobile", "Harbor Print", "Crestline Energy"]


# Phrasings only the test split uses (held out): the redactor was tuned without them.
HELD_OUT_PHRASES = {
    "Can I get the card number, please?": ["Could you read me the number on the card?",
                                           "Go ahead with the digits on the card."],
    "And the expiration date?": ["What's the expiry on it?",
                                 "And the month and year it expires?"],
    "And the security code?": ["And the CVC code?", "The three digits on the back, please?"],
    "And the account number?": ["And your checking account number?"],
    "Can you confirm your social?": ["Could I get your SSN to verify your identity?"],
    "Can I get a contact number?": ["What's a good number to call you back on?"],
    "Can I get an email address on file?": ["What's your email?"],
    "What's the address on the account?": ["Where do you live?"],
    "And your date of birth?": ["When were you born?", "And your DOB?"],
    "I can help with that. Can I have your full name?": ["Sure. Who am I speaking with?"],
    "Yes, my name is": ["Yeah, this is", "It's"],
}
HELD_OUT_DISTRACTORS = [
    ("agent", "Your ticket number is 48213."),
    ("agent", "I'll give you a reference number, seven seven four one oh two."),
    ("customer", "I paid one thousand two hundred dollars last year."),
]


@dataclass
class Dialogue:
    """Turns of (role, [(word, entity or None)]).

    "uh" sometimes falls inside a long value. With ``held_out`` (the test split) phrasings
    from :data:`HELD_OUT_PHRASES` replace the usual ones half the time and some dialogues
    come lower-case without punctuation (an ASR without punctuation).
    """

    dialogue_id: str
    rng: random.Random = field(default_factory=random.Random, repr=False)
    held_out: bool = False
    uncased: bool = False
    turns: list[tuple[str, list[tuple[str, str | None]]]] = field(default_factory=list)

    def say(self, role: str, *parts: str | tuple[str, str]) -> None:
        """Add a turn: plain strings are unlabelled, (text, entity) pairs are PII."""
        words: list[tuple[str, str | None]] = []
        for part in parts:
            if isinstance(part, tuple):
                pii = part[0].split()
                if len(pii) >= 6 and self.rng.random() < 0.2:
                    pii.insert(self.rng.randint(2, len(pii) - 2), "uh")
                words += [(w, part[1]) for w in pii]
            else:
                if self.held_out and part in HELD_OUT_PHRASES and self.rng.random() < 0.5:
                    part = self.rng.choice(HELD_OUT_PHRASES[part])
                words += [(w, None) for w in part.split()]
        if self.uncased:
            words = [(w.lower().strip(".,?!"), e) for w, e in words]
            words = [(w, e) for w, e in words if w]
        self.turns.append((role, words))

    def entities(self) -> list[tuple[int, int, int, str]]:
        """(turn, first word, end word, type) of every planted entity."""
        out = []
        for t, (_, words) in enumerate(self.turns):
            start = None
            for i, (_, ent) in enumerate(words + [("", None)]):
                if start is not None and (ent != words[start][1] or i == len(words)):
                    out.append((t, start, i, words[start][1] or ""))
                    start = None
                if ent is not None and start is None:
                    start = i
        return out


# --- values ---


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        return luhn_complete("4", 16, rng)
    if kind < 0.85:
        return luhn_complete(str(rng.randint(51, 55)), 16, rng)
    return luhn_complete(rng.choice(["34", "37"]), 15, rng)


def routing_number(rng: random.Random) -> str:
    while True:
        body = f"{rng.choice(['0', '1', '2', '3'])}{rng.randrange(10)}" + "".join(
            str(rng.randrange(10)) for _ in range(6))
        weights = (3, 7, 1, 3, 7, 1, 3, 7)
        total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
        check = (10 - total % 10) % 10
        return body + str(check)


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    return rng.choice(AREA_CODES) + str(rng.randint(2, 9)) + f"{rng.randint(0, 99):02d}" + \
        f"{rng.randint(0, 9999):04d}"


# --- spoken forms ---


def digit_words(digits: str, rng: random.Random, oh: float = 0.5, double: float = 0.4) -> str:
    """Digits read one by one: "four four two one", with "oh" and "double" sometimes."""
    out: list[str] = []
    i = 0
    while i < len(digits):
        d = digits[i]
        if i + 1 < len(digits) and digits[i + 1] == d and rng.random() < double:
            if i + 2 < len(digits) and digits[i + 2] == d and rng.random() < 0.5:
                out.append("triple " + _digit(d, rng, oh))
                i += 3
                continue
            out.append("double " + _digit(d, rng, oh))
            i += 2
            continue
        out.append(_digit(d, rng, oh))
        i += 1
    return " ".join(out)


def _digit(d: str, rng: random.Random, oh: float) -> str:
    return "oh" if d == "0" and rng.random() < oh else DIGIT_WORDS[int(d)]


def pair_words(two: str) -> str:
    """ "44" -> "forty four", "05" -> "oh five", "10" -> "ten"."""
    n = int(two)
    if two[0] == "0":
        return "oh " + DIGIT_WORDS[n]
    if n < 20:
        return TEEN_WORDS[n - 10]
    return TENS_WORDS[n // 10] + ("" if n % 10 == 0 else " " + DIGIT_WORDS[n % 10])


def read_number(digits: str, groups: list[int], rng: random.Random) -> str:
    """A number as an ASR system may write it, in the given digit groups."""
    parts, i = [], 0
    for g in groups:
        parts.append(digits[i:i + g])
        i += g
    style = rng.choice(["digits", "words", "words", "pairs", "mixed"])
    if style == "digits":
        sep = rng.choice([" ", " ", "-", ", "])
        return sep.join(parts)
    if style == "words":
        return ", ".join(digit_words(p, rng) for p in parts)
    if style == "pairs":  # people read even groups in pairs, odd ones digit by digit
        return ", ".join(" ".join(pair_words(p[k:k + 2]) for k in range(0, len(p), 2))
                         if len(p) % 2 == 0 else digit_words(p, rng) for p in parts)
    return ", ".join(p if rng.random() < 0.5 else digit_words(p, rng) for p in parts)


def year_words(year: int) -> str:
    if 2000 <= year < 2010:
        return "two thousand" + ("" if year == 2000 else " " + DIGIT_WORDS[year - 2000])
    return pair_words(str(year)[:2]) + " " + pair_words(str(year)[2:])


# --- the dialogue ---


def _card(d: Dialogue, rng: random.Random) -> None:
    number = card_number(rng)
    groups = [4, 6, 5] if len(number) == 15 else [4, 4, 4, 4]
    d.say("agent", rng.choice(["Can I get the card number, please?",
                               "What's the long number on the front of the card?",
                               "Okay, go ahead with the card number whenever you're ready."]))
    if rng.random() < 0.35:  # read over two utterances with a backchannel between
        cut = groups[0] + groups[1]
        d.say("customer", "Sure, it's", (read_number(number[:cut], groups[:2], rng), CREDIT_CARD))
        d.say("agent", rng.choice(["Mm-hm.", "Okay.", "Uh-huh."]))
        d.say("customer", (read_number(number[cut:], groups[2:], rng), CREDIT_CARD))
    else:
        d.say("customer", rng.choice(["Yeah, it's", "Sure,", "It is", "Okay, so"]),
              (read_number(number, groups, rng), CREDIT_CARD))
    if rng.random() < 0.7:
        month, year = rng.randint(1, 12), rng.randint(2025, 2032)
        d.say("agent", rng.choice(["And the expiration date?", "When does it expire?",
                                   "And the expiry date on the card?"]))
        style = rng.random()
        if style < 0.3:
            value = f"{month:02d}/{year % 100:02d}"
        elif style < 0.6:
            value = pair_words(f"{month:02d}") + " " + pair_words(f"{year % 100:02d}")
        elif style < 0.8:
            value = MONTHS[month - 1] + " " + year_words(year)
        else:
            value = digit_words(f"{month:02d}{year % 100:02d}", rng)
        d.say("customer", rng.choice(["It's", "Expires", ""]), (value, CARD_EXPIRY))
    if rng.random() < 0.7:
        code = "".join(str(rng.randrange(10)) for _ in range(4 if len(number) == 15 else 3))
        d.say("agent", rng.choice(["And the three digit security code on the back?",
                                   "Last thing, the CVV?", "And the security code?"]))
        value = code if rng.random() < 0.4 else digit_words(code, rng)
        d.say("customer", rng.choice(["It's", "", "Uh,"]), (value, CARD_CVV))


def _bank(d: Dialogue, rng: random.Random) -> None:
    routing = routing_number(rng)
    account = "".join(str(rng.randrange(10)) for _ in range(rng.randint(8, 12)))
    d.say("agent", "For the direct debit I'll need the routing number first.")
    d.say("customer", "Okay, the routing number is", (read_number(routing, [3, 3, 3], rng),
                                                      ROUTING_NUMBER))
    d.say("agent", "And the account number?")
    n = len(account)
    d.say("customer", rng.choice(["It's", "Account is", "Sure,"]),
          (read_number(account, [4] * (n // 4) + ([n % 4] if n % 4 else []), rng), BANK_ACCOUNT))


def _ssn(d: Dialogue, rng: random.Random) -> None:
    value = ssn(rng)
    d.say("agent", rng.choice(["To verify, can I have your social security number?",
                               "I'll need the last, actually the full SSN, please.",
                               "Can you confirm your social?"]))
    d.say("customer", rng.choice(["Yes, it's", "Sure,", "It's"]),
          (read_number(value, [3, 2, 4], rng), US_SSN))


def _phone(d: Dialogue, rng: random.Random) -> None:
    value = phone(rng)
    d.say("agent", rng.choice(["What's the best phone number to reach you?",
                               "And a callback number in case we get disconnected?",
                               "Can I get a contact number?"]))
    if rng.random() < 0.25:
        spoken = f"({value[:3]}) {value[3:6]}-{value[6:]}"
    else:
        spoken = read_number(value, [3, 3, 4], rng)
    d.say("customer", rng.choice(["Sure, it's", "You can reach me at", "It's"]),
          (spoken, PHONE_NUMBER))


def _email(d: Dialogue, rng: random.Random, first: str, last: str) -> None:
    domain, tld = rng.choice(DOMAINS), rng.choice(TLDS)
    d.say("agent", rng.choice(["And what email should we send the confirmation to?",
                               "Can I get an email address on file?"]))
    style = rng.random()
    f, la = first.lower(), last.lower()
    if style < 0.3:
        value = f"{f}.{la}@{domain}.{tld}"
    elif style < 0.7:
        value = f"{f} dot {la} at {domain} dot {tld}"
    elif style < 0.85:
        value = f"{f[0]}{la} {rng.randint(2, 99)} at {domain} dot {tld}"
    else:
        value = f"{f} underscore {la} at {domain}.{tld}"
    d.say("customer", rng.choice(["It's", "Sure,", "Yeah it's"]), (value, EMAIL_ADDRESS))


def _address(d: Dialogue, rng: random.Random) -> None:
    number = rng.randint(10, 9899)
    street = f"{rng.choice(STREETS)} {rng.choice(SUFFIXES)}"
    city, state = rng.choice(CITIES)
    zipcode = f"{rng.randint(10000, 99899)}"
    d.say("agent", rng.choice(["Can you confirm the billing address?",
                               "What's the address on the account?"]))
    house = str(number) if rng.random() < 0.5 else (
        " ".join(pair_words(f"{number:04d}"[k:k + 2]) for k in (0, 2)) if number >= 1000
        else digit_words(str(number), rng))
    value = f"{house} {street}"
    if rng.random() < 0.3:
        value += f", apartment {rng.randint(1, 30)}{rng.choice('ABCD')}"
    if rng.random() < 0.7:
        zip_spoken = zipcode if rng.random() < 0.5 else digit_words(zipcode, rng)
        value += f", {city}, {state} {zip_spoken}"
    d.say("customer", rng.choice(["It's", "Sure, it's", "Yeah,"]), (value, STREET_ADDRESS))


def _dob(d: Dialogue, rng: random.Random) -> None:
    year, month, day = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    d.say("agent", rng.choice(["And your date of birth?", "Can you confirm your birthday?",
                               "What's the date of birth on the account?"]))
    style = rng.random()
    if style < 0.25:
        value = f"{MONTHS[month - 1]} {day}, {year}"
    elif style < 0.5:
        value = f"{MONTHS[month - 1]} {ORDINAL_WORDS[day - 1] if day <= 20 else _ord(day)} " \
                f"{year_words(year)}"
    elif style < 0.65:
        value = f"{month:02d}/{day:02d}/{year}"
    elif style < 0.8:
        value = f"the {ORDINAL_WORDS[day - 1] if day <= 20 else _ord(day)} of " \
                f"{MONTHS[month - 1]}, {year_words(year)}"
    else:
        value = f"{pair_words(f'{month:02d}')} {pair_words(f'{day:02d}')} " \
                f"{pair_words(str(year)[2:])}"
    d.say("customer", rng.choice(["It's", "Sure,", "I was born"]), (value, DATE_OF_BIRTH))


def _ord(day: int) -> str:
    tens = TENS_WORDS[day // 10]
    return tens if day % 10 == 0 else f"{tens} {ORDINAL_WORDS[day % 10 - 1]}"


def _distractors(d: Dialogue, rng: random.Random) -> None:
    """Numbers and dates that are not PII."""
    options = [
        ("customer", f"I was charged {rng.choice(['twenty five', 'forty nine', 'two hundred and five', 'ninety nine'])} dollars twice."),  # noqa: E501
        ("agent", f"The fee is ${rng.randint(5, 99)}.{rng.randint(10, 99)} per month."),
        ("customer", f"I've called {rng.choice(['three', 'four', 'five'])} times about this."),
        ("agent", f"It should arrive on {rng.choice(MONTHS)} {rng.choice(ORDINAL_WORDS[:20])}."),  # noqa: E501
        ("agent", f"Our hours are nine to {rng.choice(['five', 'six', 'seven'])} Monday to Friday."),  # noqa: E501
        ("customer", f"I've been a customer since {year_words(rng.randint(2001, 2020))}."),
        ("agent", "That will take two to three business days."),
        ("customer", f"The order had {rng.choice(['two', 'six', 'twelve'])} items in it."),
        ("agent", f"Your plan is {rng.choice(['forty', 'sixty', 'eighty'])} gigabytes."),
        ("customer", "My first name is on the first line of the form, right?"),
    ]
    if d.held_out:
        options += HELD_OUT_DISTRACTORS
    for role, text in rng.sample(options, 3):
        d.say(role, text)


def dialogue(dialogue_id: str, rng: random.Random, held_out: bool = False) -> Dialogue:
    """One call: greeting, an issue with distractors, then several PII questions."""
    d = Dialogue(dialogue_id, rng, held_out, uncased=held_out and rng.random() < 0.3)
    agent = rng.choice(FIRST_NAMES)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = rng.choice(COMPANY)
    if rng.random() < 0.6:
        d.say("agent", f"Thank you for calling {company}, this is", (agent + ",", PERSON),
              "how can I help you today?")
    else:
        d.say("agent", f"Thank you for calling {company}, how can I help you?")
    d.say("customer", "Hi, I have a problem with my bill.")
    _distractors(d, rng)
    d.say("agent", "I can help with that. Can I have your full name?")
    style = rng.random()
    if style < 0.4:
        d.say("customer", "Yes, my name is", (f"{first} {last}.", PERSON))
    elif style < 0.7:
        spelled = " ".join(last.upper())
        d.say("customer", "Sure, it's", (f"{first} {last},", PERSON), "that's",
              (spelled + ".", PERSON))
    else:
        d.say("customer", "First name is", (first + ",", PERSON), "last name is",
              (last + ".", PERSON))
    d.say("agent", "Thank you,", (first + ".", PERSON), "One moment.")
    steps = [lambda: _card(d, rng), lambda: _bank(d, rng), lambda: _ssn(d, rng),
             lambda: _phone(d, rng), lambda: _email(d, rng, first, last),
             lambda: _address(d, rng), lambda: _dob(d, rng)]
    for step in rng.sample(steps, rng.randint(3, 5)):
        step()
    d.say("agent", "Great, you're all set. Anything else?")
    d.say("customer", "No, that's it, thanks.")
    return d


def dialogues(seed: int, n: int, held_out: bool = False) -> list[Dialogue]:
    """``n`` dialogues from ``seed``; ``held_out`` adds the phrasings kept for testing."""
    rng = random.Random(seed)
    return [dialogue(f"pii-{seed}-{i:04d}", rng, held_out) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--held-out", action="store_true", help="the test split's variants")
    args = parser.parse_args()
    for d in dialogues(args.seed, args.n, args.held_out):
        print(f"# {d.dialogue_id}")
        for role, words in d.turns:
            text = " ".join(f"{w}<{e}>" if e else w for w, e in words)
            print(f"{role:8} {text}")
        print()


if __name__ == "__main__":
    main()
