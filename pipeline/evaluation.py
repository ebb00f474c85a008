"""Scoring callscope's output against ground truth: word error rate and span matching.

Used by the tests and the benchmarks to state measured accuracy, never at run time.
"""

from __future__ import annotations

import re

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}


def normalize_text(text: str) -> list[str]:
    """Lower-case words without punctuation; small number words as digits."""
    text = text.lower().replace("-", " ")
    words = re.findall(r"[a-z0-9']+", text)
    return [_NUMBER_WORDS.get(w, w).strip("'") for w in words if w.strip("'")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` after normalisation (jiwer)."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(jiwer.wer(" ".join(ref), " ".join(hyp)))
