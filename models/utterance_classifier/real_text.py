"""Real-text utterances from the public dialogue corpora in ``../shared/corpora``.

The corpora are third-party text: nothing here copies them into the repository. Each
loader reads one corpus through a path option and yields :class:`RealUtterance` items whose
``utterance_id`` (``<corpus>:<dialogue>:<turn>``) is stable across runs, so annotations can be
stored as ids + labels only and the text reloaded when training or evaluating.

Context is the other party's previous turn (``""`` when the corpus has none), as the
pipeline feeds the classifier. Twitter handles are masked (``@user``); MultiWOZ is
detokenised.

``split_of(corpus, dialogue)`` is the frozen train/dev/test assignment (a stable hash of the
dialogue, 60/20/20 within each corpus), decided before any annotation was used for training.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CORPORA_ENV = "CALLSCOPE_CORPORA"
"""Environment variable naming the corpora folder (default ``../shared/corpora``)."""

SPLIT_FRACTIONS = (("train", 60), ("dev", 20), ("test", 20))
"""Percent of dialogues per split; each corpus is split on its own dialogue ids."""


@dataclass(frozen=True)
class RealUtterance:
    """One turn of a real dialogue corpus.

    Attributes:
        utterance_id: ``<corpus>:<dialogue>:<turn>``, stable across runs.
        corpus: corpus folder name.
        dialogue_id: dialogue (call, thread, chat) id inside the corpus.
        role: ``agent`` or ``customer``.
        text: the turn's text (handles masked, MultiWOZ detokenised).
        context: the other party's previous turn, ``""`` when there is none.
    """

    utterance_id: str
    corpus: str
    dialogue_id: str
    role: str
    text: str
    context: str

    @property
    def split(self) -> str:
        """Frozen split of this utterance's dialogue (see :func:`split_of`)."""
        return split_of(self.corpus, self.dialogue_id)


def split_of(corpus: str, dialogue_id: str) -> str:
    """Frozen split of a dialogue: a stable hash, 60/20/20 train/dev/test.

    Args:
        corpus: corpus name.
        dialogue_id: dialogue id within the corpus.

    Returns:
        ``train``, ``dev`` or ``test``.
    """
    digest = hashlib.sha1(f"{corpus}:{dialogue_id}".encode()).hexdigest()
    bucket = int(digest[:8], 16) % 100
    edge = 0
    for name, share in SPLIT_FRACTIONS:
        edge += share
        if bucket < edge:
            return name
    raise AssertionError("split fractions must sum to 100")


def default_corpora_dir() -> Path:
    """The corpora folder: ``$CALLSCOPE_CORPORA`` or ``../shared/corpora`` of the repo."""
    env = os.environ.get(CORPORA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "corpora"


_HANDLE = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")
_SPACES = re.compile(r"\s+")


def mask_twitter(text: str) -> str:
    """Mask Twitter handles (``@user``) and links (``<url>``); collapse whitespace."""
    text = _URL.sub("<url>", text)
    text = _HANDLE.sub("@user", text)
    return _SPACES.sub(" ", text).strip()


_DETOK = (
    (re.compile(r" (n't|'s|'m|'re|'ve|'ll|'d)\b", re.IGNORECASE), r"\1"),
    (re.compile(r" ([.,!?;:%)])"), r"\1"),
    (re.compile(r"([($]) "), r"\1"),
    (re.compile(r"\s+"), " "),
)


def detokenize(text: str) -> str:
    """Undo MultiWOZ's (ConvLab-2) tokenisation: ``does n't`` -> ``doesn't``, ``a .`` -> ``a.``."""
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text.strip()


def _with_context(
    corpus: str, dialogue_id: str, turns: list[tuple[str, str, str]]
) -> Iterator[RealUtterance]:
    """Items for ``(turn_id, role, text)`` turns in order; context = other role's last turn."""
    last: dict[str, str] = {"agent": "", "customer": ""}
    for turn_id, role, text in turns:
        if not text:
            continue
        other = "customer" if role == "agent" else "agent"
        yield RealUtterance(
            f"{corpus}:{dialogue_id}:{turn_id}", corpus, dialogue_id, role, text, last[other]
        )
        last[role] = text


_HV_NOISE = re.compile(r"\[[a-z_ ]+\]|<unk>")


def load_harper_valley(root: Path) -> Iterator[RealUtterance]:
    """Harper Valley Bank calls: one item per speech segment with words (noise tokens dropped)."""
    with gzip.open(root / "harper_valley" / "calls.jsonl.gz", "rt") as f:
        for line in f:
            call = json.loads(line)
            turns = sorted(call["turns"], key=lambda t: t["offset_ms"])
            rows = []
            for t in turns:
                text = _SPACES.sub(" ", _HV_NOISE.sub(" ", t["human_transcript"])).strip()
                role = "agent" if t["speaker_role"] == "agent" else "customer"
                rows.append((str(t["index"]), role, text))
            yield from _with_context("harper_valley", call["id"], rows)


def load_multiwoz(root: Path) -> Iterator[RealUtterance]:
    """MultiWOZ 2.1 validation + test dialogues (USER = customer, SYSTEM = agent), detokenised."""
    for name in ("val", "test"):
        with gzip.open(root / "multiwoz" / f"{name}.jsonl.gz", "rt") as f:
            for line in f:
                d = json.loads(line)
                rows = [
                    (
                        str(t["turn_index"]),
                        "agent" if t["speaker"] == "SYSTEM" else "customer",
                        detokenize(t["text"]),
                    )
                    for t in d["turns"]
                ]
                yield from _with_context("multiwoz", d["dialogue_id"], rows)


def load_twitter(root: Path) -> Iterator[RealUtterance]:
    """IBM Twitter customer-care threads (dev + test); the final agent reply is the last turn."""
    for name in ("dev", "test"):
        with gzip.open(root / "ibm_twitter_customer_care" / f"{name}.json.gz", "rt") as f:
            threads = json.load(f)
        for thread in threads:
            dialogue = thread["dialogHeader"]["sessionID"]
            rows = []
            for i, msg in enumerate(thread["dialogContent"]):
                role = "agent" if "agent" in msg else "customer"
                rows.append((str(i), role, mask_twitter(msg["message"])))
            final = thread.get("agentURL") or {}
            if final.get("url_utterance"):
                rows.append((str(len(rows)), "agent", mask_twitter(final["url_utterance"])))
            yield from _with_context("ibm_twitter_customer_care", dialogue, rows)


def load_dstc10(root: Path) -> Iterator[RealUtterance]:
    """DSTC10 Track 2 spoken conversations, longest prefix of each (U = customer ASR, S = agent)."""
    with gzip.open(root / "dstc10_track2" / "task2" / "data" / "val" / "logs.json.gz", "rt") as f:
        logs = json.load(f)
    longest: dict[str, list[dict[str, str]]] = {}
    for inst in logs:
        key = inst[0]["text"]
        if len(inst) > len(longest.get(key, [])):
            longest[key] = inst
    for key, inst in longest.items():
        dialogue = hashlib.sha1(key.encode()).hexdigest()[:12]
        rows = [
            (str(i), "agent" if t["speaker"] == "S" else "customer", t["text"].strip())
            for i, t in enumerate(inst)
        ]
        yield from _with_context("dstc10_track2", dialogue, rows)


def load_dstc9_responses(root: Path) -> Iterator[RealUtterance]:
    """DSTC9 Track 1 human agent responses (val + written test), no dialogue context.

    ``sf_spoken`` test items are skipped: they duplicate DSTC10's validation labels.
    """
    sources = (
        ("val", root / "dstc9_track1" / "data" / "val" / "labels.json.gz"),
        ("test", root / "dstc9_track1" / "data_eval" / "test" / "labels.json.gz"),
    )
    for name, path in sources:
        with gzip.open(path, "rt") as f:
            items = json.load(f)
        for i, item in enumerate(items):
            if not item.get("target") or not item.get("response"):
                continue
            if item.get("source") == "sf_spoken":
                continue
            dialogue = f"{name}-{i}"
            text = _SPACES.sub(" ", item["response"]).strip()
            yield RealUtterance(
                f"dstc9_track1:{dialogue}:0", "dstc9_track1", dialogue, "agent", text, ""
            )


def load_abcd(root: Path) -> Iterator[RealUtterance]:
    """ABCD sample chats (system ``action`` turns dropped)."""
    with open(root / "abcd" / "abcd_sample.json") as f:
        convos = json.load(f)
    for convo in convos:
        rows = [
            (str(i), speaker, text.strip())
            for i, (speaker, text) in enumerate(convo["original"])
            if speaker in ("agent", "customer")
        ]
        yield from _with_context("abcd", str(convo["convo_id"]), rows)


def load_multidogo(root: Path) -> Iterator[RealUtterance]:
    """MultiDoGO customer turns (turn level, all domains and splits); agent turns are absent."""
    base = root / "multidogo" / "paper_splits" / "splits_annotated_at_turn_level"
    seen: set[str] = set()
    for domain in sorted(p.name for p in base.iterdir() if p.is_dir()):
        for name in ("train", "dev", "test"):
            with gzip.open(base / domain / f"{name}.tsv.gz", "rt", newline="") as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    turn = str(int(float(row["turnNumber"])))
                    dialogue = row["conversationId"]
                    uid = f"multidogo:{dialogue}:{turn}"
                    text = _SPACES.sub(" ", row["utterance"]).strip()
                    if uid in seen or not text:
                        continue
                    seen.add(uid)
                    yield RealUtterance(uid, "multidogo", dialogue, "customer", text, "")


LOADERS: dict[str, Callable[[Path], Iterator[RealUtterance]]] = {
    "harper_valley": load_harper_valley,
    "multiwoz": load_multiwoz,
    "ibm_twitter_customer_care": load_twitter,
    "dstc10_track2": load_dstc10,
    "dstc9_track1": load_dstc9_responses,
    "abcd": load_abcd,
    "multidogo": load_multidogo,
}
"""Corpus name -> loader; the corpus name is the first part of every utterance id."""


def load_corpus(name: str, corpora_dir: Path | None = None) -> list[RealUtterance]:
    """All utterances of one corpus.

    Raises:
        ValueError: unknown corpus name.
        FileNotFoundError: the corpora folder lacks the corpus.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown corpus {name!r}; known: {sorted(LOADERS)}")
    root = corpora_dir or default_corpora_dir()
    if not (root / name).is_dir():
        raise FileNotFoundError(
            f"corpus folder {root / name} not found (set --corpora or ${CORPORA_ENV})"
        )
    return list(LOADERS[name](root))


def load_all(corpora_dir: Path | None = None) -> dict[str, RealUtterance]:
    """Every utterance of every corpus, keyed by utterance id."""
    out: dict[str, RealUtterance] = {}
    for name in LOADERS:
        for item in load_corpus(name, corpora_dir):
            out[item.utterance_id] = item
    return out


def load_by_ids(ids: set[str], corpora_dir: Path | None = None) -> dict[str, RealUtterance]:
    """Utterances for the given ids (only the corpora those ids name are read).

    Raises:
        KeyError: an id is not in its corpus (the corpus changed since annotation).
    """
    corpora = {i.split(":", 1)[0] for i in ids}
    out: dict[str, RealUtterance] = {}
    for name in sorted(corpora):
        for item in load_corpus(name, corpora_dir):
            if item.utterance_id in ids:
                out[item.utterance_id] = item
    missing = ids - out.keys()
    if missing:
        raise KeyError(
            f"{len(missing)} annotated ids not found in the corpora, e.g. {sorted(missing)[:3]}"
        )
    return out
