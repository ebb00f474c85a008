"""Question grouping that cannot snowball: fixed exemplars, then average linkage.

Which questions "ask the same thing" is decided in two steps, both linear in the number of
questions for a bounded number of distinct questions:

1. **Micro-clusters around fixed exemplars** (:func:`add_to_exemplars`). A question joins the
   most similar exemplar when their cosine is at least ``join_threshold`` and their slots do
   not clash (:func:`question_slots`); otherwise it becomes an exemplar itself. Exemplars
   never move, so a cluster cannot drift towards its neighbours the way a running centroid
   does (the old leader clustering grew one 465-586 question cluster on a 77-intent set).
   The state is one row per exemplar (a running sum and a count), never the questions, so it
   is a small combiner accumulator; two states merge by folding one's exemplars into the
   other's (:func:`merge_exemplar_sets`).
2. **Average linkage between micro-clusters** (:func:`link`). Two clusters merge when the
   mean cosine over all pairs of their members, ``sum_A . sum_B / (n_A n_B)`` (exact from the
   running sums), is at least ``link_threshold``, their slots do not clash and, when answers
   are known, their answers' mean cosine is at least ``answer_threshold``. A diffuse cluster
   has a low mean pairwise similarity to everything, so merging slows down as clusters grow
   instead of speeding up. Mutually-nearest pairs merge in rounds (average linkage is
   reducible, so this gives the greedy agglomerative result); one round costs O(M^2) for M
   micro-clusters.

A group's id is a hash of its exemplar question (the largest micro-cluster's exemplar, ties
broken by text), so ids do not depend on the order in which workers' states were merged.

Slots (:func:`question_slots`) keep apart questions that embed close but ask about different
things: the action ("cancel" vs "change" the policy), the product type in front of a
product noun ("business loan" vs "personal loan", "gold bar" vs "silver bar"), and the named
entity ("parking at the Acorn Guest House" vs "at the Lensfield Hotel"). The lexicons are
:data:`ACTIONS`, :data:`VEHICLES`, :data:`PRODUCT_TYPES` and :data:`PRODUCT_NOUNS`; entities
are capitalised names after "at/in/from/to/of/for/with (the)" inside a sentence.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Canonical action -> words that name it (lower case, whole words). Only actions that
# contact-centre questions contrast ("cancel or change my booking") are listed; verbs that
# every question uses ("get", "know", "check") are not slots.
ACTIONS: dict[str, tuple[str, ...]] = {
    "cancel": ("cancel", "cancels", "cancelled", "canceled", "cancelling", "canceling",
               "cancellation", "terminate", "termination", "discontinue", "call off"),
    "change": ("change", "changes", "changing", "update", "updating", "modify", "modification",
               "edit", "amend", "alter", "switch"),
    "renew": ("renew", "renewal", "renewing", "extend", "extension"),
    "surrender": ("surrender", "surrendering"),
    "add": ("add", "adding"),
    "remove": ("remove", "removing", "delete", "deleting"),
    "open": ("open", "opening", "sign up", "signing up", "set up", "enroll", "enrol"),
    "close": ("close", "closing"),
    "block": ("block", "freeze", "lock"),
    "unblock": ("unblock", "unfreeze", "unlock"),
    "increase": ("increase", "raise"),
    "decrease": ("decrease", "reduce", "lower"),
    "reset": ("reset",),
    "activate": ("activate", "activation"),
    "dispute": ("dispute",),
    "transfer": ("transfer", "transferring"),
    "check_in": ("check in", "check-in", "checkin"),
    "check_out": ("check out", "check-out", "checkout"),
}  # fmt: skip
# What a parking/transport question is about: "park my car" vs "park my bike".
VEHICLES: dict[str, tuple[str, ...]] = {
    "car": ("car", "cars", "auto", "vehicle", "vehicles"),
    "bike": ("bike", "bikes", "bicycle", "bicycles", "cycle"),
    "motorcycle": ("motorcycle", "motorbike", "scooter"),
}

# Product types (canonical -> words) compared when they stand right before a product noun.
PRODUCT_TYPES: dict[str, tuple[str, ...]] = {
    "gold": ("gold",), "silver": ("silver",), "platinum": ("platinum",),
    "business": ("business", "commercial"), "personal": ("personal",),
    "home": ("home", "house", "housing"), "car": ("car", "auto", "motor", "vehicle"),
    "health": ("health", "medical"), "life": ("life",), "travel": ("travel",),
    "student": ("student", "education"), "credit": ("credit",), "debit": ("debit",),
    "savings": ("savings", "saving"), "checking": ("checking",),
    "fixed": ("fixed",), "recurring": ("recurring",), "joint": ("joint",),
    "term": ("term",), "pet": ("pet",), "renters": ("renters", "renter's", "tenant"),
    "gift": ("gift",),
}  # fmt: skip
PRODUCT_NOUNS: frozenset[str] = frozenset(
    "loan loans card cards account accounts bar bars coin coins insurance policy policies "
    "plan plans cover coverage deposit deposits mortgage bond bonds fund funds".split()
)

_WORD = re.compile(r"[a-z][a-z']*")


def _phrase_index(lexicon: Mapping[str, Sequence[str]]) -> list[tuple[str, re.Pattern[str]]]:
    pairs = [(canon, phrase) for canon, phrases in lexicon.items() for phrase in phrases]
    pairs.sort(key=lambda p: -len(p[1]))
    return [(c, re.compile(r"\b" + re.escape(p).replace(r"\ ", r"\s+") + r"\b")) for c, p in pairs]


_ACTION_PATTERNS = _phrase_index(ACTIONS)
_VEHICLE_PATTERNS = _phrase_index(VEHICLES)
_PRODUCT_TYPE_OF = {w: canon for canon, words in PRODUCT_TYPES.items() for w in words}

Slots = frozenset[tuple[str, str]]


@functools.lru_cache(maxsize=65536)
def question_slots(text: str) -> Slots:
    """(family, value) slots of a question: ``("action", "cancel")`` and
    ``("type:loan", "business")`` for "Can I cancel my business loan?"."""
    norm = text.lower().replace("\u2019", "'")
    slots: set[tuple[str, str]] = set()
    for canon, pattern in _ACTION_PATTERNS:
        if pattern.search(norm):
            slots.add(("action", canon))
    for canon, pattern in _VEHICLE_PATTERNS:
        if pattern.search(norm):
            slots.add(("vehicle", canon))
    for name in _entity_names(text):
        slots.add((ENTITY, name))
    words = _WORD.findall(norm)
    for k in range(1, len(words)):
        head = words[k]
        if head in PRODUCT_NOUNS and words[k - 1] in _PRODUCT_TYPE_OF:
            noun = head[:-1] if head.endswith("s") and head[:-1] in PRODUCT_NOUNS else head
            slots.add((f"type:{noun}", _PRODUCT_TYPE_OF[words[k - 1]]))
    return frozenset(slots)


ENTITY = "entity"
_NAME_RUN = re.compile(
    r"\b[A-Z][\w'&.-]*(?:\s+(?:(?:and|of|the|&|de|la)\s+)?[A-Z][\w'&.-]*)*"
)
_PLACE_BEFORE = re.compile(r"\b(?:at|in|from|near|to|of|for|with)\s+(?:the\s+)?$")
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday "
    "friday saturday sunday".split()
)
_NOT_ENTITIES = frozenset({"i", "i'm", "i'd", "i've", "i'll", "ok", "okay", "hi", "hello"})


def _entity_names(text: str) -> set[str]:
    """Capitalised names inside a sentence ("... at the Acorn Guest House?"): the entity a
    question is about. Sentence-initial words are capitalised anyway and are skipped."""
    names = set()
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        for m in _NAME_RUN.finditer(sentence):
            # Only a name the question is asked about, "... at/in/from (the) X": callers'
            # own names ("this is Amanda"), months and acronyms are no entity.
            if m.start() == 0 or not _PLACE_BEFORE.search(sentence[: m.start()]):
                continue
            name = m.group(0).lower().rstrip(".")
            if name not in _NOT_ENTITIES and name.split()[0] not in _CALENDAR:
                names.add(name)
    return names


def _is_name(m: re.Match[str], sentence: str) -> bool:
    """A capitalised run that names a place or company: several words ("Acorn Guest
    House"), or one word after "at"/"in"/"from"/"the" ("at Graffiti"); not "WiFi" or
    "Visa" alone, which say what is asked."""
    if m.start() == 0 or m.group(0).lower().rstrip(".") in _NOT_ENTITIES:
        return False
    if len(m.group(0).split()) >= 2:
        return True
    return bool(re.search(r"\b(?:at|in|from|near|to|the|of)\s+$", sentence[: m.start()]))


def mask_entities(text: str) -> str:
    """``text`` without its entity names, for the grouping embedding.

    "Is there WiFi at the Acorn Guest House?" and "Is there parking at the Acorn Guest
    House?" embed close because of the shared name; without it the embedding compares what
    is asked, and the entity slot (:func:`question_slots`, from the unmasked text) keeps
    "WiFi at Acorn" apart from "WiFi at Alpha-Milton".
    """
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        kept = _NAME_RUN.sub(
            lambda m, sent=sentence: "" if _is_name(m, sent) else m.group(0), sentence
        )
        out.append(re.sub(r"\s+([?.!,])", r"\1", re.sub(r"\s{2,}", " ", kept)).strip())
    return " ".join(out)


def slots_clash(a: Slots, b: Slots) -> bool:
    """Whether two slot sets name different values of one family and share none of it
    ("cancel" vs "change"; "cancel" vs "cancel or change" does not clash). Entities clash
    unless one question's names include the other's ("WiFi at Acorn House" vs "WiFi at
    Alpha House" clash; "WiFi at Acorn House" vs "at Acorn House" do not)."""
    if not a or not b:
        return False
    ents_a = {v for f, v in a if f == ENTITY}
    ents_b = {v for f, v in b if f == ENTITY}
    if ents_a and ents_b and not (ents_a <= ents_b or ents_b <= ents_a):
        return True
    fam_a: dict[str, set[str]] = {}
    for family, value in a:
        if family != ENTITY:
            fam_a.setdefault(family, set()).add(value)
    fam_b: dict[str, set[str]] = {}
    for family, value in b:
        if family != ENTITY:
            fam_b.setdefault(family, set()).add(value)
    return any(f in fam_b and not (vals & fam_b[f]) for f, vals in fam_a.items())


def group_id_of(exemplar_question: str) -> str:
    """Stable group id: a hash of the exemplar question's normalised text (``g3f2a...``)."""
    norm = " ".join(exemplar_question.lower().split())
    return "g" + hashlib.sha1(norm.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class GroupingConfig:
    """Thresholds of the grouping (cosines of MiniLM sentence embeddings).

    Attributes:
        join_threshold: Cosine to an exemplar needed to join its micro-cluster (0.80: chosen
            on the dev sets, NatCS insurance and CLINC150 val, see benchmarks/CONSISTENCY.md;
            paraphrases of one request score 0.7-0.9, requests on one subject 0.5-0.75).
        link_threshold: Mean pairwise cosine needed to merge two micro-clusters (0.50: chosen
            on the same dev sets).
        answer_threshold: When answers are known, the mean pairwise cosine of the answers
            needed to join or merge (0.60: on the planted-conflict dev set of real FAQ
            answers, ``benchmarks/eval_answers.py``, 0.55/0.60/0.65 give precision
            0.78/0.77/0.82 and recall 0.89/0.90/0.92; at 0.65 the generated scenarios' "you
            pay the remaining months" answers split off from the "$50 fee" group, so that
            contradiction is no longer found and their recall falls to 0.896).
        respect_slots: Keep questions with clashing action or product-type slots apart.
    """

    join_threshold: float = 0.75
    link_threshold: float = 0.45
    answer_threshold: float = 0.60
    respect_slots: bool = True

    def __post_init__(self) -> None:
        for name in ("join_threshold", "link_threshold", "answer_threshold"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a cosine in [-1, 1], got {value}")


@dataclass
class ExemplarSet:
    """Micro-clusters around fixed exemplars: the combiner state of the grouping.

    Attributes:
        exemplars: ``(M, d)`` unit question vectors of the exemplars (fixed once chosen).
        texts: Exemplar question per micro-cluster.
        slots: Exemplar slots per micro-cluster.
        sums: ``(M, d)`` sum of the member question vectors.
        answer_sums: ``(M, d)`` sum of the member answer vectors, or None without answers.
        counts: Members per micro-cluster.
    """

    exemplars: np.ndarray
    texts: list[str] = field(default_factory=list)
    slots: list[Slots] = field(default_factory=list)
    sums: np.ndarray | None = None
    answer_sums: np.ndarray | None = None
    counts: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.counts)


def empty_exemplar_set() -> ExemplarSet:
    return ExemplarSet(np.zeros((0, 0), np.float32))


def _best_joinable(
    sims: np.ndarray,
    slots: Slots,
    candidates: list[Slots],
    config: GroupingConfig,
    answer_sims: np.ndarray | None = None,
) -> int:
    """Index of the most similar candidate at or above ``join_threshold`` whose slots do not
    clash with ``slots`` (and whose answers are at least ``answer_threshold`` similar, when
    ``answer_sims`` is given); -1 when none."""
    ok = sims >= config.join_threshold
    if answer_sims is not None:
        ok &= answer_sims >= config.answer_threshold
    above = np.flatnonzero(ok)
    for j in above[np.argsort(-sims[above], kind="stable")]:
        if not (config.respect_slots and slots_clash(slots, candidates[int(j)])):
            return int(j)
    return -1


def add_to_exemplars(
    state: ExemplarSet,
    vectors: np.ndarray,
    texts: Sequence[str],
    config: GroupingConfig,
    answer_vectors: np.ndarray | None = None,
) -> ExemplarSet:
    """Add questions to ``state``: each joins its best exemplar or becomes one.

    O(len(vectors) * M). Questions are taken in text order so that one batch gives the same
    exemplars whatever order its elements came in.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 0:
        return state
    n, d = vectors.shape
    order = sorted(range(n), key=lambda k: (texts[k], k))
    m = state.size
    cap = m + n
    ex = np.zeros((cap, d), np.float32)
    sums = np.zeros((cap, d), np.float32)
    has_answers = answer_vectors is not None
    ans = np.zeros((cap, d), np.float32) if has_answers else None
    if m:
        ex[:m] = state.exemplars
        assert state.sums is not None
        sums[:m] = state.sums
        if ans is not None and state.answer_sums is not None:
            ans[:m] = state.answer_sums
    out_texts = list(state.texts)
    out_slots = list(state.slots)
    counts = list(state.counts)
    for k in order:
        v = vectors[k]
        s = question_slots(texts[k])
        a_sims = None
        if ans is not None and m:
            assert answer_vectors is not None
            a_sims = (ans[:m] @ answer_vectors[k]) / np.asarray(counts, np.float32)
        j = _best_joinable(ex[:m] @ v, s, out_slots, config, a_sims) if m else -1
        if j < 0:
            j = m
            ex[j] = v
            out_texts.append(texts[k])
            out_slots.append(s)
            counts.append(0)
            m += 1
        sums[j] += v
        if ans is not None:
            assert answer_vectors is not None
            ans[j] += answer_vectors[k]
        counts[j] += 1
    return ExemplarSet(
        ex[:m], out_texts, out_slots, sums[:m], ans[:m] if ans is not None else None, counts
    )


def merge_exemplar_sets(sets: Sequence[ExemplarSet], config: GroupingConfig) -> ExemplarSet:
    """Fold several states into one: the micro-clusters of each join an exemplar of the
    merged state (same rule as a question) or are added as they are. Exemplars are taken
    in text order, so the merge does not depend on the order of ``sets``."""
    parts = [s for s in sets if s.size]
    if not parts:
        return empty_exemplar_set()
    rows = sorted(
        ((p, k) for p in parts for k in range(p.size)), key=lambda pk: pk[0].texts[pk[1]]
    )
    d = parts[0].exemplars.shape[1]
    with_answers = all(p.answer_sums is not None for p in parts)
    cap = len(rows)
    ex = np.zeros((cap, d), np.float32)
    sums = np.zeros((cap, d), np.float32)
    ans = np.zeros((cap, d), np.float32) if with_answers else None
    texts: list[str] = []
    slots: list[Slots] = []
    counts: list[int] = []
    m = 0
    for p, k in rows:
        a_sims = None
        if ans is not None and m:
            assert p.answer_sums is not None
            a_sims = (ans[:m] @ p.answer_sums[k]) / (
                np.asarray(counts, np.float32) * p.counts[k]
            )
        j = _best_joinable(ex[:m] @ p.exemplars[k], p.slots[k], slots, config, a_sims) if m else -1
        if j < 0:
            j = m
            ex[j] = p.exemplars[k]
            texts.append(p.texts[k])
            slots.append(p.slots[k])
            counts.append(0)
            m += 1
        assert p.sums is not None
        sums[j] += p.sums[k]
        if ans is not None:
            assert p.answer_sums is not None
            ans[j] += p.answer_sums[k]
        counts[j] += p.counts[k]
    return ExemplarSet(ex[:m], texts, slots, sums[:m], ans[:m] if ans is not None else None,
                       counts)


@dataclass(frozen=True)
class Grouping:
    """Groups found by :func:`link`.

    Attributes:
        group_ids: One id per group (hash of its exemplar question).
        exemplar_questions: The exemplar question of each group.
        micro_group: Group index of each micro-cluster of the linked state.
        state: The micro-clusters (exemplars, slots, sums, counts).
        means: ``(G, d)`` mean member question vector per group (not normalised: its dot
            product with a question vector is that question's average-linkage similarity).
        answer_means: ``(G, d)`` the same for answers, or None.
        slots: Union of the member micro-clusters' slots per group.
    """

    group_ids: tuple[str, ...]
    exemplar_questions: tuple[str, ...]
    micro_group: np.ndarray
    state: ExemplarSet
    means: np.ndarray
    answer_means: np.ndarray | None
    slots: tuple[Slots, ...]

    @property
    def size(self) -> int:
        return len(self.group_ids)


def link(state: ExemplarSet, config: GroupingConfig) -> Grouping:
    """Average-linkage agglomeration of the micro-clusters of ``state`` (see module doc)."""
    m = state.size
    if m == 0:
        return Grouping((), (), np.zeros(0, int), state, np.zeros((0, 0), np.float32), None, ())
    assert state.sums is not None
    sums = state.sums.astype(np.float64)
    ans = state.answer_sums.astype(np.float64) if state.answer_sums is not None else None
    counts = np.asarray(state.counts, dtype=np.float64)
    slots = [set(s) for s in state.slots]
    members: list[list[int]] = [[k] for k in range(m)]
    alive = np.ones(m, dtype=bool)
    while True:
        idx = np.flatnonzero(alive)
        if len(idx) < 2:
            break
        sims = (sums[idx] @ sums[idx].T) / np.outer(counts[idx], counts[idx])
        if ans is not None:
            asims = (ans[idx] @ ans[idx].T) / np.outer(counts[idx], counts[idx])
            sims[asims < config.answer_threshold] = -np.inf
        np.fill_diagonal(sims, -np.inf)
        sims[sims < config.link_threshold] = -np.inf
        best = np.full(len(idx), -1)
        for a in range(len(idx)):
            row = sims[a]
            cand = np.flatnonzero(np.isfinite(row))
            for b in cand[np.argsort(-row[cand], kind="stable")]:
                if config.respect_slots and slots_clash(
                    frozenset(slots[idx[a]]), frozenset(slots[idx[int(b)]])
                ):
                    sims[a, b] = sims[b, a] = -np.inf
                    continue
                best[a] = int(b)
                break
        merged = False
        for a in range(len(idx)):
            b = best[a]
            if b > a and best[b] == a:
                i, j = idx[a], idx[b]
                sums[i] += sums[j]
                if ans is not None:
                    ans[i] += ans[j]
                counts[i] += counts[j]
                slots[i] |= slots[j]
                members[i].extend(members[j])
                alive[j] = False
                merged = True
        if not merged:
            break
    roots = np.flatnonzero(alive)
    exemplars = []
    for r in roots:
        top = max(members[r], key=lambda k: (state.counts[k], [-ord(c) for c in state.texts[k]]))
        exemplars.append(state.texts[top])
    order = sorted(range(len(roots)), key=lambda g: group_id_of(exemplars[g]))
    micro_group = np.zeros(m, dtype=int)
    for g, pos in enumerate(order):
        for k in members[int(roots[pos])]:
            micro_group[k] = g
    roots_sorted = roots[order]
    means = (sums[roots_sorted] / counts[roots_sorted, None]).astype(np.float32)
    answer_means = (
        (ans[roots_sorted] / counts[roots_sorted, None]).astype(np.float32)
        if ans is not None
        else None
    )
    return Grouping(
        group_ids=tuple(group_id_of(exemplars[r]) for r in order),
        exemplar_questions=tuple(exemplars[r] for r in order),
        micro_group=micro_group,
        state=state,
        means=means,
        answer_means=answer_means,
        slots=tuple(frozenset(slots[r]) for r in roots_sorted),
    )


def assign(
    grouping: Grouping,
    vectors: np.ndarray,
    texts: Sequence[str],
    config: GroupingConfig,
    answer_vectors: np.ndarray | None = None,
) -> np.ndarray:
    """Group index of each question: the group of its joinable exemplar, else the group
    with the highest average-linkage similarity whose slots do not clash, else the nearest
    group. Every question given to :func:`add_to_exemplars` of the linked state has one."""
    vectors = np.asarray(vectors, dtype=np.float32)
    out = np.full(len(vectors), -1, dtype=int)
    if grouping.size == 0:
        return out
    ex_sims = vectors @ grouping.state.exemplars.T
    link_sims = vectors @ grouping.means.T
    micro_answer_sims = None
    if answer_vectors is not None and grouping.state.answer_sums is not None:
        counts = np.asarray(grouping.state.counts, np.float32)
        micro_answer_sims = (answer_vectors @ grouping.state.answer_sums.T) / counts
    for k in range(len(vectors)):
        s = question_slots(texts[k])
        a_sims = micro_answer_sims[k] if micro_answer_sims is not None else None
        j = _best_joinable(ex_sims[k], s, grouping.state.slots, config, a_sims)
        if j >= 0:
            out[k] = grouping.micro_group[j]
            continue
        row = link_sims[k]
        for g in np.argsort(-row, kind="stable"):
            if config.respect_slots and slots_clash(s, grouping.slots[int(g)]):
                continue
            out[k] = int(g)
            break
        else:
            out[k] = int(row.argmax())
    return out


def group_questions(
    vectors: np.ndarray,
    texts: Sequence[str],
    config: GroupingConfig | None = None,
    answer_vectors: np.ndarray | None = None,
    batch_size: int = 512,
) -> tuple[list[str], Grouping]:
    """Group id of each question, in one process (the Beam stage runs the same steps as a
    combiner). Batches are added and merged as a combiner would."""
    config = config or GroupingConfig()
    state = empty_exemplar_set()
    for start in range(0, len(vectors), batch_size):
        stop = start + batch_size
        part = add_to_exemplars(
            empty_exemplar_set(),
            vectors[start:stop],
            texts[start:stop],
            config,
            answer_vectors[start:stop] if answer_vectors is not None else None,
        )
        state = merge_exemplar_sets([state, part], config)
    grouping = link(state, config)
    index = assign(grouping, vectors, texts, config, answer_vectors)
    return [grouping.group_ids[g] for g in index], grouping
