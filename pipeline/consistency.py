"""Knowledge consistency: does the same question get the same answer from every agent?

The stage reads the ``utterances`` and ``calls`` tables and runs as Beam transforms:

1. **Extract** question/answer pairs per call (:func:`extract_qa_pairs`): each customer
   question (the classifier's ``question`` label when the table has labels, or the question
   form of the text) and the agent turns that follow, up to the next customer question or a
   change of topic.
2. **Embed** question and answer with the MiniLM sentence encoder of the utterance classifier
   (``pipeline.classifier.embed_texts``), in batches, the model loaded once per worker.
3. **Group** questions that ask the same thing (:mod:`pipeline.grouping`). A question joins
   a group of the persistent, versioned index ``question_groups`` when its average-linkage
   similarity to the group's questions (and, looser, its answer's to the group's answers)
   is high enough and its action/product slots do not clash ("cancel" vs "change",
   "business loan" vs "personal loan"); O(N*G), one matrix product per batch. The rest
   form new groups: micro-clusters around fixed exemplars in a combiner whose accumulator
   holds one running sum per micro-cluster (never the questions), then average linkage
   between micro-clusters. Group ids hash the exemplar question, so they do not depend on
   merge order. No step compares all questions with each other.
4. **Compare** the answers of each group (``GroupByKey`` on the group id,
   :func:`compare_group`): the checkable facts of each answer (:mod:`pipeline.knowledge`:
   money, percentages, durations, times, dates, yes/no, named options) vote per dimension;
   answers that contradict the majority value, or the approved answer of a matching
   knowledge-base entry, are outlier variants. Answers that agree in different words state
   compatible facts and are not flagged.

Outputs under ``OUT_DIR`` (folders of Parquet parts, schemas in :mod:`pipeline.schemas`):
``consistency_findings/`` (rewritten each run), ``consistency_qa_pairs/v<N>-*.parquet`` and
``question_groups/v<N>-*.parquet`` (one new version per run; an incremental run reads the
newest index version and the earlier QA pairs, so new calls join existing groups and old
answers take part in the comparison; a call seen again replaces its earlier pairs).
"""

from __future__ import annotations

import glob
import importlib
import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput

from pipeline.grouping import (
    ExemplarSet,
    Grouping,
    GroupingConfig,
    add_to_exemplars,
    assign,
    empty_exemplar_set,
    link,
    mask_entities,
    merge_exemplar_sets,
    question_slots,
    slots_clash,
)
from pipeline.knowledge import (
    AGE,
    CHARGE,
    DURATION,
    KB,
    MONEY,
    PERCENT,
    POLARITY,
    SEMANTIC,
    WEEKDAYS,
    AnswerFacts,
    KnowledgeBase,
    compile_options,
    describe_value,
    extract_facts,
    load_knowledge_base,
    values_agree,
)
from pipeline.knowledge import DEFAULT_OPTIONS as DEFAULT_OPTION_LEXICON
from pipeline.records import AGENT, CUSTOMER, ConsistencyFinding, QAPair
from pipeline.schemas import CONSISTENCY_FINDINGS, CONSISTENCY_QA_PAIRS, QUESTION_GROUPS
from pipeline.sinks import read_table

logger = logging.getLogger(__name__)

Embedder = Callable[[Sequence[str]], np.ndarray]

QA_TABLE = "consistency_qa_pairs"
GROUPS_TABLE = "question_groups"
FINDINGS_TABLE = "consistency_findings"
UNMATCHED = "unmatched"
# Finding kind of answers to one question that differ with no majority value (1 vs 1,
# 2 vs 2): every side is a finding, none is called right.
DISAGREEMENT = "disagreement"


@dataclass(frozen=True)
class ConsistencyConfig:
    """Settings of the consistency stage.

    Attributes:
        embedder: ``module:function`` of the sentence encoder, ``texts -> (n, d)`` float32
            L2-normalised; the classifier's MiniLM encoder by default.
        embedding_model: Name stored with the group index; an index built with another
            model is not reused.
        max_answer_turns: Agent utterances at most in one answer (4: an answer rarely runs
            longer, and later turns drift to other matters).
        max_answer_delay: The first answer turn must start within this many seconds of the
            question's end (30 s allows a short lookup; later speech is not "the answer").
        topic_change_words: A customer utterance that is not a question but has this many
            words or more changes the topic and ends the answer (6: longer than
            backchannels and acknowledgements such as "okay, thank you so much").
        question_weight: Weight of the question embedding in the vector that matches a group
            to a knowledge-base entry, the rest is the answer's (0.5; see
            :func:`joint_vectors`).
        grouping: Thresholds of the question grouping (:class:`GroupingConfig`: fixed
            exemplars, then average linkage, with action/product slots kept apart).
        min_majority: Answers needed in the majority value of a dimension before others are
            called outliers (2: one agent against one is a disagreement without a majority).
        semantic_threshold: An answer with no contradicting fact whose embedding has cosine
            below this to the majority answers' mean is a ``semantic`` outlier; None turns
            the check off (default: the hard facts are what the findings are about, and
            differently worded agreeing answers must not be flagged).
        fact_gap_coverage: Share of a group's answers that must state one agreed fact (e.g.
            "$50 fee") before an answer stating no fact at all is checked for saying
            something else ("you pay the remaining months") (0.75).
        fact_gap_threshold: Such an answer is a ``semantic`` outlier when its embedding has
            cosine below this to the mean of the fact-stating majority answers (0.65: on the
            generated scenarios agreeing wordings score 0.79 or more, a different policy in
            other words 0.6); None turns the check off.
        kb_threshold: Cosine similarity of a knowledge-base entry's grouping vector to a
            group centroid needed to use it as that group's reference (0.7: stricter than
            grouping, a wrong reference flags every answer).
        batch_size: Texts per encoder call.
        options: Extra option lexicon merged over :data:`pipeline.knowledge.DEFAULT_OPTIONS`.
    """

    embedder: str = "pipeline.classifier:embed_texts"
    embedding_model: str = "all-MiniLM-L6-v2"
    max_answer_turns: int = 4
    max_answer_delay: float = 30.0
    topic_change_words: int = 6
    question_weight: float = 0.5
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    min_majority: int = 2
    semantic_threshold: float | None = None
    fact_gap_coverage: float = 0.5
    fact_gap_threshold: float | None = 0.65
    kb_threshold: float = 0.7
    batch_size: int = 64
    options: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if ":" not in self.embedder:
            raise ValueError(f"embedder must be 'module:function', got {self.embedder!r}")
        if not 0.0 <= self.question_weight <= 1.0:
            raise ValueError(f"question_weight must be in [0, 1], got {self.question_weight}")
        if self.max_answer_turns < 1 or self.min_majority < 1 or self.batch_size < 1:
            raise ValueError("max_answer_turns, min_majority and batch_size must be >= 1")

    def option_lexicon(self) -> dict[str, dict[str, tuple[str, ...]]]:
        merged = {family: dict(opts) for family, opts in DEFAULT_OPTION_LEXICON.items()}
        for family, opts in self.options.items():
            merged.setdefault(family, {}).update({k: tuple(v) for k, v in opts.items()})
        return merged


def load_embedder(spec: str) -> Embedder:
    """Import ``module:function`` (the encoder) and return the function."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RuntimeError(f"consistency needs the sentence encoder {spec!r}: {e}") from e
    fn = getattr(module, name, None)
    if fn is None:
        raise RuntimeError(f"{module_name} has no function {name!r}")
    return fn  # type: ignore[no-any-return]


# --- 1. question/answer pairs ---------------------------------------------------------------

_LEAD_FILLERS = re.compile(
    r"^(?:(?:hi|hello|hey|yeah|yes|okay|ok|so|um|uh|and|also|well|right|alright|oh|"
    r"thanks|thank you|great|perfect|one more thing|another question|quick question)"
    r"[,.!]?\s+)+",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^(?:what|what's|whats|when|where|which|who|whom|whose|why|how|how's|can|could|do|does|"
    r"did|is|are|was|were|will|would|should|shall|may|might|have|has|am|isn't|aren't|"
    r"don't|doesn't|won't|can't)\b",
    re.IGNORECASE,
)
_QUESTION_PHRASE = re.compile(
    r"\b(?:i was wondering|i'm wondering|i wonder|i want to know|i'd like to know|"
    r"i would like to know|can you tell me|could you tell me|do you know|any idea)\b",
    re.IGNORECASE,
)
_YES_NO_START = re.compile(
    r"^(?:can|could|do|does|did|is|are|was|were|will|would|should|shall|may|might|have|"
    r"has|am|isn't|aren't|don't|doesn't|won't|can't)\b",
    re.IGNORECASE,
)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s.strip()]


def _is_question_sentence(sentence: str) -> bool:
    core = _LEAD_FILLERS.sub("", sentence.strip())
    return (
        core.endswith("?")
        or bool(_QUESTION_START.match(core))
        or bool(_QUESTION_PHRASE.search(core))
    )


def question_focus(text: str) -> str | None:
    """The question sentences of a customer utterance, without leading fillers; None if none.

    "Hi, I ordered a jacket. How long does shipping take?" -> "How long does shipping take?"
    """
    picked = [s for s in _sentences(text) if _is_question_sentence(s)]
    if not picked:
        return None
    focus = " ".join(picked[-2:])
    return _LEAD_FILLERS.sub("", focus).strip() or None


def is_yes_no_question(question: str) -> bool:
    """Whether ``question`` asks for yes or no ("Can I ...", "Is there ...")."""
    core = _QUESTION_PHRASE.sub("", _LEAD_FILLERS.sub("", question)).strip(" ,")
    core = re.sub(r"^(?:if|whether)\s+", "", core, flags=re.IGNORECASE)
    return bool(_YES_NO_START.match(core)) or core.lower().startswith(("if ", "whether "))


@dataclass(frozen=True)
class UtteranceRow:
    """The columns of an ``utterances`` row that the stage uses."""

    utterance_id: str
    call_id: str
    role: str
    start: float
    end: float
    text: str
    labels: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UtteranceRow:
        labels = row.get("labels") or ()
        if isinstance(labels, str):
            labels = (labels,)
        if row.get("label"):
            labels = (*labels, row["label"])
        return cls(
            utterance_id=str(row["utterance_id"]),
            call_id=str(row["call_id"]),
            role=str(row["role"]),
            start=float(row["start"]),
            end=float(row["end"]),
            text=str(row.get("text") or ""),
            labels=tuple(str(x) for x in labels),
        )


def extract_qa_pairs(
    utterances: Iterable[UtteranceRow],
    agent_id: str | None,
    started_at: str | None,
    config: ConsistencyConfig,
) -> list[QAPair]:
    """Question/answer pairs of one call.

    A customer utterance is a question when the classifier labelled it ``question`` or when
    it has the form of one (ends with "?", opens with a question word or auxiliary, or "I
    was wondering ..."). The answer is the agent utterances after it, up to
    ``max_answer_turns``, ended by the next customer question or by a customer utterance of
    ``topic_change_words`` words or more (a new topic); short customer replies ("okay",
    "mm-hm") do not end it. A question without an agent reply gives no pair.
    """
    ordered = sorted(utterances, key=lambda u: (u.start, u.utterance_id))
    pairs: list[QAPair] = []
    for i, u in enumerate(ordered):
        if u.role != CUSTOMER:
            continue
        focus = question_focus(u.text)
        if focus is None and "question" in u.labels:
            focus = _LEAD_FILLERS.sub("", u.text).strip() or None
        if focus is None:
            continue
        answer: list[UtteranceRow] = []
        for v in ordered[i + 1 :]:
            if v.role == AGENT:
                if not answer and v.start - u.end > config.max_answer_delay:
                    break
                # "Is there anything else I can help with?" closes the answer; it is no part
                # of it (a question as the first reply is a clarifying question: kept).
                if answer and question_focus(v.text) is not None:
                    break
                answer.append(v)
                if len(answer) >= config.max_answer_turns:
                    break
            elif v.role == CUSTOMER:
                if question_focus(v.text) is not None or "question" in v.labels:
                    break
                if len(v.text.split()) >= config.topic_change_words:
                    break
        answer = [a for a in answer if a.text.strip()]
        if not answer:
            continue
        pairs.append(
            QAPair(
                qa_id=u.utterance_id,
                call_id=u.call_id,
                agent_id=agent_id,
                started_at=started_at,
                question_utterance_id=u.utterance_id,
                question_text=focus,
                question_start=u.start,
                question_end=u.end,
                answer_utterance_ids=tuple(a.utterance_id for a in answer),
                answer_text=" ".join(a.text.strip() for a in answer),
                answer_start=answer[0].start,
                answer_end=answer[-1].end,
            )
        )
    return pairs


class ExtractQAPairs(beam.DoFn):
    """(call_id, {"utterances": rows, "calls": rows}) -> QAPair."""

    def __init__(self, config: ConsistencyConfig):
        self.config = config
        self.pairs = Metrics.counter(__name__, "qa_pairs")
        self.calls = Metrics.counter(__name__, "calls_with_utterances")

    def process(self, element: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[QAPair]:
        _, joined = element
        rows = [UtteranceRow.from_row(r) for r in joined["utterances"]]
        if not rows:
            return
        self.calls.inc()
        calls = list(joined["calls"])
        agent_id = calls[0].get("agent_id") if calls else None
        started_at = calls[0].get("started_at") if calls else None
        for pair in extract_qa_pairs(rows, agent_id, started_at, self.config):
            self.pairs.inc()
            yield pair


# --- 2. embeddings --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedQA:
    """A QA pair with its embeddings, facts and (once grouped) its group.

    Attributes:
        pair: The pair.
        question_vector: Sentence embedding of the question (L2-normalised).
        answer_vector: Sentence embedding of the answer (L2-normalised).
        facts: Checkable facts of the answer.
        group_id: The question group, once assigned.
        index_version: Index version the pair was grouped in.
    """

    pair: QAPair
    question_vector: np.ndarray = field(repr=False, compare=False)
    answer_vector: np.ndarray = field(repr=False, compare=False)
    facts: AnswerFacts
    group_id: str | None = None
    index_version: int = 0


def joint_vectors(
    question_vectors: np.ndarray, answer_vectors: np.ndarray, question_weight: float
) -> np.ndarray:
    """Grouping vectors: ``[sqrt(w) q, sqrt(1-w) a]``, unit length for unit ``q`` and ``a``.

    Their cosine is ``w cos(q, q') + (1-w) cos(a, a')``. Sentence embeddings put "how long
    does shipping take" nearer to "how much does shipping cost" than to "when will my order
    get here"; the answers ("3-5 business days" vs "$4.99") separate them, and answers that
    contradict each other in a number still embed close together, so the answer side does
    not split a group along the very contradictions the stage looks for.
    """
    q = np.asarray(question_vectors, dtype=np.float32)
    a = np.asarray(answer_vectors, dtype=np.float32)
    if q.shape != a.shape:
        raise ValueError(f"question and answer vectors differ in shape: {q.shape} vs {a.shape}")
    return np.concatenate(
        [np.sqrt(question_weight) * q, np.sqrt(1.0 - question_weight) * a], axis=-1
    ).astype(np.float32)


class EmbedQAPairs(beam.DoFn):
    """Batches of QAPair -> EmbeddedQA, one encoder call per batch (model loaded in setup)."""

    def __init__(self, config: ConsistencyConfig):
        self.config = config
        self.embedded = Metrics.counter(__name__, "qa_pairs_embedded")
        self._embed: Embedder | None = None
        self._compiled: Any = None

    def setup(self) -> None:
        self._embed = load_embedder(self.config.embedder)
        self._compiled = compile_options(self.config.option_lexicon())

    def process(self, batch: Sequence[QAPair]) -> Iterator[EmbeddedQA]:
        assert self._embed is not None
        # Entity names are masked for the embedding only (see grouping.mask_entities); slots
        # and facts are read from the full text.
        texts = [mask_entities(p.question_text) for p in batch] + [
            mask_entities(p.answer_text) for p in batch
        ]
        vectors = np.asarray(self._embed(texts), dtype=np.float32)
        n = len(batch)
        for k, pair in enumerate(batch):
            self.embedded.inc()
            yield EmbeddedQA(
                pair=pair,
                question_vector=vectors[k],
                answer_vector=vectors[n + k],
                facts=extract_facts(pair.answer_text, self._compiled),
            )


# --- 3. grouping ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupIndex:
    """The persistent question groups (one version of ``question_groups``).

    Attributes:
        version: Index version (0: empty, no run yet).
        group_ids: One id per group.
        centroids: ``(G, 2d)`` per group the mean member question vector joined with the
            mean member answer vector, not normalised: a vector's dot product with a mean is
            its average-linkage similarity to the group (:mod:`pipeline.grouping`).
        canonical_questions: Readable question per group (its slots are the group's).
        embedding_model: Encoder the centroids come from.
    """

    version: int
    group_ids: tuple[str, ...]
    centroids: np.ndarray = field(repr=False, compare=False)
    canonical_questions: tuple[str, ...] = ()
    embedding_model: str = ""

    @property
    def size(self) -> int:
        return len(self.group_ids)

    def nearest(
        self,
        questions: np.ndarray,
        answers: np.ndarray,
        texts: Sequence[str],
        config: GroupingConfig,
    ) -> np.ndarray:
        """Index of the group each question joins by average linkage (question similarity at
        least ``link_threshold``, answer similarity at least ``answer_threshold``, slots not
        clashing with the group's question); -1 when none. O(N*G)."""
        out = np.full(len(questions), -1)
        if self.size == 0 or len(questions) == 0:
            return out
        d = questions.shape[1]
        if self.centroids.shape[1] != 2 * d:
            raise ValueError(
                f"question_groups v{self.version} holds {self.centroids.shape[1]}-d centroids, "
                f"not question+answer means of {2 * d}; use a fresh output folder"
            )
        q_sims = questions @ self.centroids[:, :d].T
        a_sims = answers @ self.centroids[:, d:].T
        ok = (q_sims >= config.link_threshold) & (a_sims >= config.answer_threshold)
        group_slots = [question_slots(q) for q in self.canonical_questions]
        for k in range(len(questions)):
            cand = np.flatnonzero(ok[k])
            slots = question_slots(texts[k])
            for g in cand[np.argsort(-q_sims[k, cand], kind="stable")]:
                if not (config.respect_slots and slots_clash(slots, group_slots[int(g)])):
                    out[k] = int(g)
                    break
        return out


def _version_files(out_dir: str, table: str) -> dict[int, list[str]]:
    files: dict[int, list[str]] = defaultdict(list)
    for path in glob.glob(os.path.join(out_dir, table, "v*.parquet")):
        m = re.match(r"v(\d+)-", os.path.basename(path))
        if m:
            files[int(m.group(1))].append(path)
    return files


def load_group_index(out_dir: str, embedding_model: str | None = None) -> GroupIndex:
    """The newest version of ``question_groups`` under ``out_dir`` (empty if none).

    Raises:
        ValueError: If the index was built with a different ``embedding_model``.
    """
    versions = _version_files(out_dir, GROUPS_TABLE)
    if not versions:
        return GroupIndex(0, (), np.zeros((0, 0), np.float32))
    version = max(versions)
    table = pa.concat_tables(
        pq.read_table(f, schema=QUESTION_GROUPS) for f in sorted(versions[version])
    ).sort_by("group_id")
    models = set(table.column("embedding_model").to_pylist())
    if embedding_model and models and models != {embedding_model}:
        raise ValueError(
            f"question_groups v{version} in {out_dir} was built with {sorted(models)}, "
            f"not {embedding_model!r}; use a fresh output folder"
        )
    centroids = np.asarray(table.column("centroid").to_pylist(), dtype=np.float32)
    if len(centroids) == 0:
        centroids = np.zeros((0, 0), np.float32)
    return GroupIndex(
        version=version,
        group_ids=tuple(table.column("group_id").to_pylist()),
        centroids=centroids,
        canonical_questions=tuple(table.column("canonical_question").to_pylist()),
        embedding_model=embedding_model or "",
    )


def _stack(batch: Sequence[EmbeddedQA]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return (
        np.stack([e.question_vector for e in batch]),
        np.stack([e.answer_vector for e in batch]),
        [e.pair.question_text for e in batch],
    )


class AssignToIndex(beam.DoFn):
    """Batches of EmbeddedQA -> (group_id, EmbeddedQA) for those that join an indexed group;
    the others go to the ``unmatched`` output. The index is read in setup."""

    def __init__(self, out_dir: str, config: ConsistencyConfig, version: int):
        self.out_dir = out_dir
        self.config = config
        self.version = version
        self.matched = Metrics.counter(__name__, "questions_matched_existing_group")
        self._index: GroupIndex | None = None

    def setup(self) -> None:
        self._index = load_group_index(self.out_dir, self.config.embedding_model)

    def process(self, batch: Sequence[EmbeddedQA]) -> Iterator[Any]:
        assert self._index is not None
        questions, answers, texts = _stack(batch)
        best = self._index.nearest(questions, answers, texts, self.config.grouping)
        for e, k in zip(batch, best, strict=True):
            if k >= 0:
                self.matched.inc()
                yield _with_group(e, self._index.group_ids[int(k)], self.version)
            else:
                yield TaggedOutput(UNMATCHED, e)


def _with_group(e: EmbeddedQA, group_id: str, version: int) -> tuple[str, EmbeddedQA]:
    return group_id, EmbeddedQA(
        e.pair, e.question_vector, e.answer_vector, e.facts, group_id, version
    )


class ExemplarGrouping(beam.CombineFn):
    """Batches of unmatched EmbeddedQA -> :class:`Grouping` of the new groups.

    The accumulator is an :class:`ExemplarSet` (one running sum per micro-cluster, never
    the questions), so the combine is lifted and stays small; partial states merge by
    folding exemplars, and the output links them by average linkage.
    """

    def __init__(self, config: GroupingConfig):
        self.config = config

    def create_accumulator(self) -> ExemplarSet:
        return empty_exemplar_set()

    def add_input(self, accumulator: ExemplarSet, batch: Sequence[EmbeddedQA]) -> ExemplarSet:
        questions, answers, texts = _stack(batch)
        part = add_to_exemplars(empty_exemplar_set(), questions, texts, self.config, answers)
        return merge_exemplar_sets([accumulator, part], self.config)

    def merge_accumulators(self, accumulators: Iterable[ExemplarSet]) -> ExemplarSet:
        return merge_exemplar_sets(list(accumulators), self.config)

    def extract_output(self, accumulator: ExemplarSet) -> Grouping:
        return link(accumulator, self.config)


class AssignToNewGroups(beam.DoFn):
    """Batches of unmatched EmbeddedQA -> (group_id, EmbeddedQA) in the new groups."""

    def __init__(self, config: ConsistencyConfig, version: int):
        self.config = config
        self.version = version
        self.created = Metrics.counter(__name__, "questions_in_new_groups")

    def process(self, batch: Sequence[EmbeddedQA], grouping: Grouping) -> Iterator[Any]:
        questions, answers, texts = _stack(batch)
        index = assign(grouping, questions, texts, self.config.grouping, answers)
        for e, g in zip(batch, index, strict=True):
            self.created.inc()
            yield _with_group(e, grouping.group_ids[int(g)], self.version)


def _joint_batch(batch: Sequence[EmbeddedQA], weight: float) -> np.ndarray:
    return joint_vectors(
        np.stack([e.question_vector for e in batch]),
        np.stack([e.answer_vector for e in batch]),
        weight,
    )


class GroupQuestions(beam.PTransform):
    """EmbeddedQA -> (group_id, EmbeddedQA): an indexed group it joins, else a new group."""

    def __init__(self, out_dir: str, config: ConsistencyConfig, version: int):
        super().__init__()
        self.out_dir = out_dir
        self.config = config
        self.version = version

    def expand(self, embedded: beam.PCollection) -> beam.PCollection:
        cfg = self.config
        assigned = (
            embedded
            | "BatchForIndex" >> beam.BatchElements(min_batch_size=16, max_batch_size=512)
            | "NearestIndexedGroup"
            >> beam.ParDo(AssignToIndex(self.out_dir, cfg, self.version)).with_outputs(
                UNMATCHED, main="matched"
            )
        )
        unmatched_batches = assigned[UNMATCHED] | "BatchUnmatched" >> beam.BatchElements(
            min_batch_size=16, max_batch_size=512
        )
        grouping = unmatched_batches | "NewGroups" >> beam.CombineGlobally(
            ExemplarGrouping(cfg.grouping)
        )
        new = unmatched_batches | "AssignNewGroups" >> beam.ParDo(
            AssignToNewGroups(cfg, self.version), beam.pvalue.AsSingleton(grouping)
        )
        return (assigned["matched"], new) | "AllAssigned" >> beam.Flatten()


# --- 4. comparing answers -------------------------------------------------------------------

_SEVERITY = {
    CHARGE: "high", MONEY: "high", PERCENT: "high", POLARITY: "high", KB: "high", AGE: "high",
    DURATION: "medium",
    SEMANTIC: "low", DISAGREEMENT: "low",
}  # fmt: skip
_SEVERITY_ORDER = ("none", "low", "medium", "high")


def severity_of(kinds: Iterable[str]) -> str:
    """Highest severity of the contradiction ``kinds`` (money, percent and yes/no: high;
    durations, times, dates and options: medium; wording only: low)."""
    levels = [_SEVERITY.get(k, "medium") for k in kinds]
    return max(levels, key=_SEVERITY_ORDER.index) if levels else "none"


# Facts said in too many ways (or too incidentally: "every month left on the contract") to
# tell whether an answer speaks to the agreed fact; the fact-gap check ignores them.
_SOFT_DIMS = frozenset({POLARITY, WEEKDAYS, "option:frequency"})

# Cluster index of a semantic conflict with the approved answer (0: with the majority).
KB_GAP = 1


@dataclass(frozen=True)
class Reference:
    """A knowledge-base entry matched to a group: the approved answer's facts."""

    entry_id: str
    answer: str
    values: dict[str, Any]
    answer_vector: np.ndarray | None = field(default=None, repr=False, compare=False)


def canonical_question(members: Sequence[EmbeddedQA]) -> str:
    """The member question nearest to the group's mean question embedding; among near ties
    (within 0.02) the shortest that ends with "?" reads best."""
    q = np.stack([m.question_vector for m in members])
    mean = q.mean(axis=0)
    sims = q @ (mean / max(float(np.linalg.norm(mean)), 1e-12))
    top = float(sims.max())
    near = [k for k in range(len(members)) if sims[k] >= top - 0.02]

    def key(k: int) -> tuple[int, int, str]:
        text = members[k].pair.question_text
        return (0 if text.endswith("?") else 1, len(text), text)

    best = min(near, key=key)
    text = members[best].pair.question_text
    return text[0].upper() + text[1:] if text else text


def compare_group(
    group_id: str,
    members: Sequence[EmbeddedQA],
    config: ConsistencyConfig,
    reference: Reference | None = None,
) -> list[ConsistencyFinding]:
    """Answer variants of one question group; empty when all answers agree.

    For each fact dimension (money, duration, polarity, ``option:<family>``, ...), the
    answers that state it are clustered by agreement (:func:`values_agree` with the
    cluster's first, most common value); the cluster given by the most agents (then the most
    answers) is the majority value when it has at least ``min_majority`` answers and is
    strictly ahead of the runner-up. With a
    knowledge-base ``reference`` that states the dimension, the reference value decides
    instead. Answers whose value disagrees are outliers on that dimension; polarity counts
    only for yes/no questions. An answer's variant is the set of (dimension, value cluster)
    it disagrees on; variant 0 is the answers that disagree on nothing.
    """
    if not members:
        return []
    members = sorted(members, key=lambda m: m.pair.qa_id)
    question = canonical_question(members)
    yes_no = sum(is_yes_no_question(m.pair.question_text) for m in members) * 2 > len(members)
    values = [m.facts.values() for m in members]
    dims = sorted({d for v in values for d in v})
    conflicts: list[dict[str, int]] = [{} for _ in members]  # dim -> cluster index
    expected: dict[str, str] = {}
    cluster_values: dict[tuple[str, int], Any] = {}
    disputed: dict[str, str] = {}  # dimension without a majority -> its sides
    for dim in dims:
        if dim == POLARITY and not yes_no:
            continue
        stating = [k for k, v in enumerate(values) if dim in v]
        clusters: list[tuple[Any, list[int]]] = []
        counts = Counter(_hashable(values[k][dim]) for k in stating)
        for k in sorted(stating, key=lambda k: -counts[_hashable(values[k][dim])]):
            for rep, ks in clusters:
                if values_agree(dim, rep, values[k][dim]):
                    ks.append(k)
                    break
            else:
                clusters.append((values[k][dim], [k]))
        clusters = _bridge_clusters(dim, clusters, values, stating)
        ref_value = reference.values.get(dim) if reference else None
        if ref_value is not None:
            agreeing = [
                c for c, (rep, _) in enumerate(clusters) if values_agree(dim, ref_value, rep)
            ]
            majority = agreeing[0] if agreeing else -1
            expected[dim] = describe_value(dim, ref_value)
        else:
            if len(clusters) < 2:
                continue
            # The majority is the value most agents give (then most answers): an agent who
            # repeats a wrong answer in every call must not outvote several agents who
            # word the right one differently (and not always with the same facts).
            support = [
                (len({members[k].pair.agent_id for k in ks}), len(ks)) for _, ks in clusters
            ]
            ranked = sorted(support, reverse=True)
            if ranked[0][1] < config.min_majority or ranked[0] == ranked[1]:
                # No majority (1 vs 1, 2 vs 2): every side is reported as a disagreement.
                disputed[dim] = " | ".join(describe_value(dim, rep) for rep, _ in clusters)
                majority = -1
            else:
                majority = support.index(ranked[0])
                expected[dim] = describe_value(dim, clusters[majority][0])
        for c, (rep, ks) in enumerate(clusters):
            if c == majority:
                continue
            cluster_values[(dim, c)] = rep
            for k in ks:
                conflicts[k][dim] = c
    majority_members: set[int] = set()
    # In a yes/no question the yes or no is the fact; elsewhere it is manner of speaking.
    soft = _SOFT_DIMS - {POLARITY} if yes_no else _SOFT_DIMS
    for dim in dims:
        if dim in _SOFT_DIMS:
            # Yes/no and days are said in too many ways for "states none of it" to mean
            # "says something else"; the fact gap is about amounts and named options.
            continue
        stating = [k for k, v in enumerate(values) if dim in v and dim not in conflicts[k]]
        if len(stating) >= config.fact_gap_coverage * len(members):
            majority_members.update(stating)
    if config.fact_gap_threshold is not None and len(majority_members) >= config.min_majority:
        mean = np.stack([members[k].answer_vector for k in sorted(majority_members)]).mean(0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        for k in range(len(members)):
            # Checked: answers that state no hard fact (a "yes" or "every month" does not
            # speak to "a $50 fee").
            if conflicts[k] or any(dim not in soft for dim in values[k]):
                continue
            if float(members[k].answer_vector @ mean) < config.fact_gap_threshold:
                conflicts[k][SEMANTIC] = 0
                cluster_values[(SEMANTIC, 0)] = None
    if (
        reference is not None
        and reference.values
        and reference.answer_vector is not None
        and config.fact_gap_threshold is not None
    ):
        # The approved answer states a fact; an answer that states none of the approved
        # facts and reads unlike the approved answer contradicts it in other words
        # ("you pay off the remainder of the contract" against "a flat fee of $50").
        for k in range(len(members)):
            if conflicts[k] or any(dim in values[k] for dim in reference.values):
                continue
            if float(members[k].answer_vector @ reference.answer_vector) < (
                config.fact_gap_threshold
            ):
                conflicts[k][SEMANTIC] = KB_GAP
                cluster_values[(SEMANTIC, KB_GAP)] = None
    if config.semantic_threshold is not None:
        clean = [k for k in range(len(members)) if not conflicts[k]]
        if len(clean) >= config.min_majority:
            mean = np.stack([members[k].answer_vector for k in clean]).mean(axis=0)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            for k in clean:
                if not values[k] and float(members[k].answer_vector @ mean) < (
                    config.semantic_threshold
                ):
                    conflicts[k][SEMANTIC] = 0
                    cluster_values[(SEMANTIC, 0)] = None
    if not any(conflicts):
        return []
    variants: dict[tuple[tuple[str, int], ...], list[int]] = defaultdict(list)
    for k, conflict in enumerate(conflicts):
        variants[tuple(sorted(conflict.items()))].append(k)
    order = sorted(variants, key=lambda sig: (len(sig) > 0, -len(variants[sig]), sig))
    findings = []
    for n, sig in enumerate(order):
        ks = variants[sig]
        kinds = tuple(dim for dim, _ in sig)
        if any(dim in disputed for dim in kinds):
            kinds = (DISAGREEMENT, *kinds)
        if reference is not None and sig:
            against_kb = any(
                dim in reference.values or (dim == SEMANTIC and c == KB_GAP) for dim, c in sig
            )
            kinds = (*kinds, KB) if against_kb else kinds
        stated = "; ".join(
            f"{dim}: {describe_value(dim, cluster_values[(dim, c)])}"
            for dim, c in sig
            if dim != SEMANTIC
        )
        if not sig:
            stated = "; ".join(f"{d}: {v}" for d, v in sorted(expected.items()))
        mems = [members[k] for k in ks]
        findings.append(
            ConsistencyFinding(
                finding_id=f"{group_id}/v{n}",
                group_id=group_id,
                canonical_question=question,
                variant=n,
                is_majority=not sig,
                kinds=kinds,
                severity=severity_of(kinds),
                reference="knowledge_base" if reference is not None else "majority",
                stated=stated,
                expected="; ".join(
                    [f"{dim}: {expected[dim]}" for dim, _ in sig if dim in expected]
                    + [f"{dim}: no majority ({disputed[dim]})" for dim, _ in sig if dim in disputed]
                ),
                num_answers=len(ks),
                agent_ids=tuple(sorted({m.pair.agent_id or "" for m in mems})),
                call_ids=tuple(sorted({m.pair.call_id for m in mems})),
                question_utterance_ids=tuple(m.pair.question_utterance_id for m in mems),
                answer_utterance_ids=tuple(a for m in mems for a in m.pair.answer_utterance_ids),
                answer_texts=tuple(m.pair.answer_text for m in mems),
                kb_entry_id=reference.entry_id if reference else None,
                kb_answer=reference.answer if reference else None,
            )
        )
    return findings


def _bridge_clusters(
    dim: str,
    clusters: list[tuple[Any, list[int]]],
    values: Sequence[dict[str, Any]],
    stating: Sequence[int],
) -> list[tuple[Any, list[int]]]:
    """Merge value clusters that one answer agrees with both of: "10% for seniors" and "50%
    for children" are two halves of "10% for seniors, 50% for children", not rivals."""
    if len(clusters) < 2:
        return clusters
    merged = [(rep, list(ks)) for rep, ks in clusters]
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if any(
                    values_agree(dim, values[k][dim], merged[i][0])
                    and values_agree(dim, values[k][dim], merged[j][0])
                    for k in stating
                ):
                    merged[i] = (merged[i][0], merged[i][1] + merged[j][1])
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _hashable(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple((q.kind, q.low, q.high, q.unit) for q in value)
    return value


@dataclass(frozen=True)
class GroupSummary:
    """One row of ``question_groups``: a group's centroid and what it holds."""

    group_id: str
    canonical_question: str
    num_questions: int
    num_calls: int
    num_agents: int
    index_version: int
    created_version: int
    centroid: np.ndarray = field(repr=False, compare=False)
    embedding_model: str = ""


class CompareGroups(beam.DoFn):
    """(group_id, EmbeddedQA members) -> ConsistencyFinding; GroupSummary to ``groups``."""

    def __init__(self, config: ConsistencyConfig, version: int, kb: KnowledgeBase | None):
        self.config = config
        self.version = version
        self.kb = kb
        self.groups = Metrics.counter(__name__, "question_groups")
        self.inconsistent = Metrics.counter(__name__, "inconsistent_groups")
        self._kb_vectors: np.ndarray | None = None
        self._kb_refs: list[Reference] = []

    def setup(self) -> None:
        if self.kb is None:
            return
        embed = load_embedder(self.config.embedder)
        compiled = compile_options({**self.config.option_lexicon(), **self.kb.options})
        questions = [e.question for e in self.kb.entries]
        answers = [e.answer for e in self.kb.entries]
        vectors = np.asarray(embed(questions + answers), dtype=np.float32)
        n = len(questions)
        self._kb_vectors = joint_vectors(vectors[:n], vectors[n:], self.config.question_weight)
        self._kb_refs = [
            Reference(
                e.entry_id, e.answer, extract_facts(e.answer, compiled).values(), vectors[n + i]
            )
            for i, e in enumerate(self.kb.entries)
        ]

    def process(self, element: tuple[str, Iterable[EmbeddedQA]]) -> Iterator[Any]:
        group_id, it = element
        members = list(it)
        self.groups.inc()
        reference = None
        if self._kb_vectors is not None and len(self._kb_vectors):
            joint = _joint_batch(members, self.config.question_weight).mean(axis=0)
            joint /= max(float(np.linalg.norm(joint)), 1e-12)
            sims = self._kb_vectors @ joint
            best = int(sims.argmax())
            if sims[best] >= self.config.kb_threshold:
                reference = self._kb_refs[best]
        findings = compare_group(group_id, members, self.config, reference)
        if findings:
            self.inconsistent.inc()
        yield from findings
        # Means, not unit vectors: their dot product with a new question's vectors is its
        # average-linkage similarity to the group (see GroupIndex.nearest).
        centroid = np.concatenate(
            [
                np.stack([m.question_vector for m in members]).mean(axis=0),
                np.stack([m.answer_vector for m in members]).mean(axis=0),
            ]
        )
        yield TaggedOutput(
            "groups",
            GroupSummary(
                group_id=group_id,
                canonical_question=canonical_question(members),
                num_questions=len(members),
                num_calls=len({m.pair.call_id for m in members}),
                num_agents=len({m.pair.agent_id for m in members}),
                index_version=self.version,
                created_version=min(m.index_version for m in members),
                centroid=centroid.astype(np.float32),
                embedding_model=self.config.embedding_model,
            ),
        )


# --- rows -----------------------------------------------------------------------------------


def qa_row(e: EmbeddedQA) -> dict[str, Any]:
    row = e.pair.to_dict()
    row["answer_utterance_ids"] = list(e.pair.answer_utterance_ids)
    row.update(
        group_id=e.group_id,
        index_version=e.index_version,
        facts=json.dumps(e.facts.to_dict(), sort_keys=True),
        question_embedding=e.question_vector.astype(np.float32).tolist(),
        answer_embedding=e.answer_vector.astype(np.float32).tolist(),
    )
    return row


def qa_from_row(row: dict[str, Any]) -> EmbeddedQA:
    pair_fields = {k: row[k] for k in QAPair.__dataclass_fields__}
    return EmbeddedQA(
        pair=QAPair.from_dict(pair_fields),
        question_vector=np.asarray(row["question_embedding"], dtype=np.float32),
        answer_vector=np.asarray(row["answer_embedding"], dtype=np.float32),
        facts=AnswerFacts.from_dict(json.loads(row["facts"])),
        group_id=row["group_id"],
        index_version=int(row["index_version"]),
    )


def group_row(g: GroupSummary) -> dict[str, Any]:
    return {
        "group_id": g.group_id,
        "canonical_question": g.canonical_question,
        "num_questions": g.num_questions,
        "num_calls": g.num_calls,
        "num_agents": g.num_agents,
        "index_version": g.index_version,
        "created_version": g.created_version,
        "centroid": g.centroid.tolist(),
        "embedding_model": g.embedding_model,
    }


def finding_row(f: ConsistencyFinding) -> dict[str, Any]:
    row = f.to_dict()
    for name, value in row.items():
        if isinstance(value, tuple):
            row[name] = list(value)
    return row


# --- the pipeline ---------------------------------------------------------------------------


def _parquet_files(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
    return sorted(glob.glob(path))


class _ReadRows(beam.PTransform):
    """Rows of Parquet files as dicts (only ``columns`` that the files have)."""

    def __init__(self, files: Sequence[str], columns: Sequence[str]):
        super().__init__()
        self.files = list(files)
        self.columns = list(columns)

    def expand(self, p: beam.pvalue.PBegin) -> beam.PCollection:
        if not self.files:
            return p | "None" >> beam.Create([])
        present = set(pq.read_schema(self.files[0]).names)
        columns = [c for c in self.columns if c in present]
        return (
            p
            | "Files" >> beam.Create(self.files)
            | "Read" >> beam.io.ReadAllFromParquet(columns=columns)
        )


def _latest_row(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The newest version's row of one qa_id (a call run again has a row in each version)."""
    return max(rows, key=lambda r: (int(r["index_version"]), str(r["group_id"])))


def _drop_replaced(row: dict[str, Any], new_calls: dict[str, None]) -> bool:
    return row["call_id"] not in new_calls


def build_consistency(
    p: beam.Pipeline,
    utterance_files: Sequence[str],
    call_files: Sequence[str],
    out_dir: str,
    config: ConsistencyConfig,
    kb: KnowledgeBase | None = None,
) -> dict[str, beam.PCollection]:
    """Add the consistency stage to ``p``; return its QA pairs, findings and groups."""
    index = load_group_index(out_dir, config.embedding_model)
    version = index.version + 1
    old_qa_files = [f for files in _version_files(out_dir, QA_TABLE).values() for f in files]

    utterances = (
        p
        | "ReadUtterances"
        >> _ReadRows(
            utterance_files,
            ["call_id", "utterance_id", "role", "start", "end", "text", "labels", "label"],
        )
        | "KeyUtterancesByCall" >> beam.Map(lambda r: (r["call_id"], r))
    )
    calls = (
        p
        | "ReadCalls" >> _ReadRows(call_files, ["call_id", "agent_id", "started_at"])
        | "KeyCallsByCall" >> beam.Map(lambda r: (r["call_id"], r))
    )
    pairs = (
        {"utterances": utterances, "calls": calls}
        | "JoinCalls" >> beam.CoGroupByKey()
        | "ExtractQAPairs" >> beam.ParDo(ExtractQAPairs(config))
    )
    embedded = (
        pairs
        | "BatchForEncoder"
        >> beam.BatchElements(min_batch_size=8, max_batch_size=config.batch_size)
        | "Embed" >> beam.ParDo(EmbedQAPairs(config))
    )
    assigned = embedded | "GroupQuestions" >> GroupQuestions(out_dir, config, version)
    new_call_ids = (
        pairs
        | "NewCallIds" >> beam.Map(lambda q: q.call_id)
        | "UniqueCalls" >> beam.Distinct()
        | "AsKeys" >> beam.Map(lambda c: (c, None))
    )
    old = (
        p
        | "ReadEarlierQAPairs" >> _ReadRows(old_qa_files, CONSISTENCY_QA_PAIRS.names)
        | "KeyEarlierByQA" >> beam.Map(lambda r: (r["qa_id"], r))
        | "LatestRowPerQA" >> beam.CombinePerKey(_latest_row)
        | "DropQAKey" >> beam.Values()
        | "DropReplacedCalls"
        >> beam.Filter(_drop_replaced, beam.pvalue.AsDict(new_call_ids))
        | "EarlierQA" >> beam.Map(qa_from_row)
        | "KeyEarlier" >> beam.Map(lambda e: (e.group_id, e))
    )
    compared = (
        (assigned, old)
        | "AllQAPairs" >> beam.Flatten()
        | "ByGroup" >> beam.GroupByKey()
        | "CompareAnswers"
        >> beam.ParDo(CompareGroups(config, version, kb)).with_outputs("groups", main="findings")
    )
    prefix = f"v{version:06d}"
    _ = (
        assigned
        | "QARows" >> beam.Map(lambda kv: qa_row(kv[1]))
        | "WriteQAPairs" >> _write(out_dir, QA_TABLE, CONSISTENCY_QA_PAIRS, prefix, 0)
    )
    _ = (
        compared["groups"]
        | "GroupRows" >> beam.Map(group_row)
        | "WriteGroups" >> _write(out_dir, GROUPS_TABLE, QUESTION_GROUPS, prefix, 1)
    )
    _ = (
        compared["findings"]
        | "FindingRows" >> beam.Map(finding_row)
        | "WriteFindings" >> _write(out_dir, FINDINGS_TABLE, CONSISTENCY_FINDINGS, "part", 1)
    )
    return {"qa_pairs": assigned, "findings": compared["findings"], "groups": compared["groups"]}


def _write(out_dir: str, table: str, schema: pa.Schema, prefix: str, shards: int) -> Any:
    return beam.io.WriteToParquet(
        FileSystems.join(out_dir, table, prefix),
        schema,
        file_name_suffix=".parquet",
        num_shards=shards,
        codec="zstd",
    )


@dataclass(frozen=True)
class ConsistencyResult:
    """What a consistency run did.

    Attributes:
        out_dir: Where the tables are.
        index_version: The ``question_groups`` version this run wrote.
        num_qa_pairs: QA pairs extracted from the input (this run's calls).
        num_groups: Question groups after the run.
        num_findings: Outlier variants (findings other than majorities).
    """

    out_dir: str
    index_version: int
    num_qa_pairs: int
    num_groups: int
    num_findings: int


def run_consistency(
    utterances: str,
    calls: str | None,
    out_dir: str,
    kb_path: str | None = None,
    pipeline_options: PipelineOptions | None = None,
    config: ConsistencyConfig | None = None,
) -> ConsistencyResult:
    """Run the consistency stage over the utterances of many calls.

    Args:
        utterances: ``utterances`` table: a folder of Parquet files or a glob.
        calls: ``calls`` table (folder or glob) for agent ids and call times, or None.
        out_dir: Where to write ``consistency_findings/``, ``question_groups/`` and
            ``consistency_qa_pairs/``; an index found there from an earlier run is reused.
        kb_path: Optional knowledge base of approved answers (YAML or CSV).
        pipeline_options: Beam options; FnApiRunner in this process when None.
        config: Stage settings; defaults when None.

    Raises:
        ValueError: If no utterance files match, or the knowledge base is invalid.
    """
    config = config or ConsistencyConfig()
    utterance_files = _parquet_files(utterances)
    if not utterance_files:
        raise ValueError(f"no utterance Parquet files at {utterances!r}")
    call_files = _parquet_files(calls) if calls else []
    kb = load_knowledge_base(kb_path) if kb_path else None
    if kb is not None and kb.options:
        merged = dict(config.options)
        merged.update(kb.options)
        config = ConsistencyConfig(**{**config.__dict__, "options": merged})
    os.makedirs(out_dir, exist_ok=True)
    findings_dir = os.path.join(out_dir, FINDINGS_TABLE)
    if FileSystems.exists(findings_dir):
        FileSystems.delete([findings_dir])
    options = pipeline_options or PipelineOptions(flags=[], runner="FnApiRunner")
    with beam.Pipeline(options=options) as p:
        build_consistency(p, utterance_files, call_files, out_dir, config, kb)
    index = load_group_index(out_dir)
    version = index.version
    new_qa = _version_files(out_dir, QA_TABLE).get(version, [])
    num_qa = sum(pq.read_metadata(f).num_rows for f in new_qa)
    findings = read_findings(out_dir)
    num_findings = sum(1 for m in findings.column("is_majority").to_pylist() if not m)
    logger.info(
        "consistency: %d QA pairs, %d groups (index v%d), %d findings",
        num_qa, index.size, version, num_findings,
    )  # fmt: skip
    return ConsistencyResult(out_dir, version, num_qa, index.size, num_findings)


def read_findings(out_dir: str) -> pa.Table:
    """The ``consistency_findings`` table under ``out_dir`` (empty if none was written)."""
    table = read_table(out_dir, FINDINGS_TABLE)
    return table.sort_by([("group_id", "ascending"), ("variant", "ascending")])


def summarize_findings(out_dir: str, max_groups: int = 20) -> str:
    """A readable summary of ``consistency_findings`` for the CLI."""
    table = read_findings(out_dir)
    index = load_group_index(out_dir)
    rows = table.to_pylist()
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[row["group_id"]].append(row)
    outliers = [r for r in rows if not r["is_majority"]]
    lines = [
        f"Knowledge consistency: {index.size} question groups (index v{index.version}), "
        f"{len(by_group)} with inconsistent answers, {len(outliers)} outlier variants "
        f"({sum(r['severity'] == 'high' for r in outliers)} high severity)."
    ]
    rank = {s: n for n, s in enumerate(reversed(_SEVERITY_ORDER))}

    def group_key(gid: str) -> tuple[int, int, str]:
        out = [r for r in by_group[gid] if not r["is_majority"]]
        worst = min((rank[r["severity"]] for r in out), default=len(rank))
        return (worst, -sum(r["num_answers"] for r in out), gid)

    for gid in sorted(by_group, key=group_key)[:max_groups]:
        variants = by_group[gid]
        lines.append("")
        lines.append(f'[{gid}] "{variants[0]["canonical_question"]}"')
        if variants[0]["kb_answer"]:
            lines.append(f'  approved ({variants[0]["kb_entry_id"]}): "{variants[0]["kb_answer"]}"')
        for v in variants:
            label = "majority" if v["is_majority"] else f"{v['severity']:<6} {'+'.join(v['kinds'])}"
            example = v["answer_texts"][0] if v["answer_texts"] else ""
            if len(example) > 90:
                example = example[:87] + "..."
            lines.append(
                f"  v{v['variant']} {label}: {v['num_answers']} answers, "
                f"agents {', '.join(v['agent_ids'][:5]) or 'unknown'}"
                + (f" (+{len(v['agent_ids']) - 5})" if len(v["agent_ids"]) > 5 else "")
                + f"; calls {', '.join(v['call_ids'][:5])}"
                + (f" (+{len(v['call_ids']) - 5})" if len(v["call_ids"]) > 5 else "")
                + f'; e.g. "{example}"'
            )
            if not v["is_majority"] and v["stated"]:
                lines.append(f"      states {v['stated']}; expected {v['expected'] or '-'}")
    if len(by_group) > max_groups:
        lines.append(f"... and {len(by_group) - max_groups} more groups")
    return "\n".join(lines)
