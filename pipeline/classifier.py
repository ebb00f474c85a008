"""Utterance classifier: 20 multi-label speech-act/quality labels plus the MiniLM embedding.

Two ONNX graphs in ``models/utterance_classifier/``. Labels (2.x) come from the fine-tuned
pair graph named by ``classifier.json``: all-MiniLM-L6-v2 with its top layers fine-tuned on
human-labelled real utterances reads ``[CLS] utterance [SEP] previous turn of the other party
[SEP]`` and gives 20 sigmoid scores; it is called once per utterance, so a label never depends
on the batch. The 1.1.0 graph (frozen encoder + MLP head) supplies the utterance's original
sentence embedding (mean pooling + L2 norm, 384-d) for the knowledge-consistency stage, and
its own scores when the folder has no ``classifier.json``. See ``models/utterance_classifier/
MODEL_CARD.md`` for the labels, thresholds and measured quality.

This module is the runtime: onnxruntime + tokenizers only (no torch). It offers

* :class:`UtteranceClassifier` - load once, ``predict`` batches of (role, text, context);
* :func:`embed_texts` - embeddings of texts alone (the consistency stage's encoder);
* :class:`UtteranceClassifierHandler` - a Beam ``ModelHandler`` that pads each batch to its
  longest sequence (sorted by length, so similar lengths share a sub-batch);
* :class:`LabelUtterances` - ``ClassifierInput`` records in, ``UtteranceLabels`` out, with
  failures on a ``dead_letter`` output.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from models.utterance_classifier.pairs import pair_ids
from pipeline.deadletter import dead_letter_for
from pipeline.records import ClassifierInput, DeadLetter, UtteranceLabels

logger = logging.getLogger(__name__)

__all__ = [
    "ClassifierConfig",
    "LabelUtterances",
    "Prediction",
    "UtteranceClassifier",
    "UtteranceClassifierHandler",
    "classifier_input_for",
    "embed_texts",
]

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "utterance_classifier"
STAGE = "classify"
ROLE_IDS = {"agent": 0, "customer": 1}
PAIR_META = "classifier.json"
"""Metadata of the fine-tuned pair graph (labels, thresholds, file); absent = 1.1.0 only."""
UNKNOWN_ROLE = "unknown"


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the classifier runtime.

    Attributes:
        model_dir: Folder with ``labels.json``, ``tokenizer.json`` and the ONNX files.
        model_file: ONNX file to load; None takes ``labels.json``'s ``default_model``
            (``model.int8.onnx``: its test micro F1 is within the stated tolerance of fp32,
            see the model card, at a fraction of the CPU time).
        intra_op_threads: onnxruntime intra-op threads per session (1: Beam runs one
            session per worker process/thread, and workers are the unit of parallelism).
        max_tokens: Longest token sequence (128, the length all-MiniLM-L6-v2 was trained
            at); longer text is truncated and flagged.
        sub_batch_tokens: Upper bound of ``rows x longest sequence`` in one ONNX call when
            ``rows_per_call`` allows more than one row; a batch sorted by length is cut into
            sub-batches under it so one long utterance does not pad 63 short ones.
        rows_per_call: Rows scored by one ONNX call. 1 (the default) makes every label
            independent of what else is in the batch: the int8 graph's dynamic quantisation
            computes activation scales over the whole input tensor, so a row's scores moved
            with its batch mates (13.6% of 2,775 real utterances changed a label between
            batch 64 and batch 1). Larger values are only safe with the fp32 graph.
        min_batch_size: Beam ``BatchElements`` minimum (8).
        max_batch_size: Beam ``BatchElements`` maximum (64: beyond it CPU throughput is
            flat, see ``benchmarks/bench_classifier.py``).
        use_cuda: Use ``CUDAExecutionProvider`` first when onnxruntime offers it.
        pair_model: Score labels with the fine-tuned pair graph that ``classifier.json``
            names (2.x, one ONNX call per utterance) when the model folder has one; False
            scores them with the 1.1.0 graph (kept for comparison). Embeddings always come
            from the 1.1.0 graph (``model_file``), whose ``embedding`` output is the
            original all-MiniLM-L6-v2 sentence embedding.
    """

    model_dir: str = str(MODEL_DIR)
    model_file: str | None = None
    intra_op_threads: int = 1
    max_tokens: int = 128
    sub_batch_tokens: int = 512
    rows_per_call: int = 1
    min_batch_size: int = 8
    max_batch_size: int = 64
    use_cuda: bool = True
    pair_model: bool = True

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be >= 0, got {self.intra_op_threads}")
        if not 2 <= self.max_tokens <= 512:
            raise ValueError(f"max_tokens must be in [2, 512], got {self.max_tokens}")
        if self.rows_per_call < 1:
            raise ValueError(f"rows_per_call must be >= 1, got {self.rows_per_call}")
        if not 1 <= self.min_batch_size <= self.max_batch_size:
            raise ValueError(
                f"need 1 <= min_batch_size <= max_batch_size, got "
                f"{self.min_batch_size}, {self.max_batch_size}")


class Prediction(NamedTuple):
    """Classifier output for one utterance.

    Attributes:
        probabilities: Score in [0, 1] per label (all 20; the other party's labels are 0).
        embedding: float32 (384,) L2-normalised all-MiniLM-L6-v2 embedding of the text.
        truncated: The text (or its context) was longer than ``max_tokens`` and was cut.
    """

    probabilities: dict[str, float]
    embedding: np.ndarray
    truncated: bool


class UtteranceClassifier:
    """The ONNX utterance classifier, loaded once.

    Args:
        config: Runtime settings; defaults load the int8 model from the repository.

    Raises:
        RuntimeError: onnxruntime or tokenizers is missing.
        ValueError: the model folder is incomplete or inconsistent.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self.config = config or ClassifierConfig()
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - environment error
            raise RuntimeError(
                "the utterance classifier requires onnxruntime and tokenizers") from e
        model_dir = Path(self.config.model_dir)
        meta_path = model_dir / "labels.json"
        if not meta_path.is_file():
            raise ValueError(f"no labels.json in classifier model dir {model_dir}")
        meta = json.loads(meta_path.read_text())
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.thresholds: dict[str, float] = {k: float(v) for k, v in meta["thresholds"].items()}
        if set(self.thresholds) != set(self.labels):
            raise ValueError(f"{meta_path}: thresholds do not cover exactly the labels")
        self.model_name: str = meta["model_name"]
        self.model_version: str = meta["model_version"]
        self.embedding_dim: int = int(meta["embedding_dim"])
        model_path = model_dir / (self.config.model_file or meta["default_model"])
        if not model_path.is_file():
            raise ValueError(f"classifier model file not found: {model_path}")
        self.model_path = model_path

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()  # truncated here, so the flag can be reported

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.intra_op_threads
        options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if self.config.use_cuda and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        self.providers = tuple(self.session.get_providers())
        self.pair_session: Any = None
        pair_meta_path = model_dir / PAIR_META
        if self.config.pair_model and pair_meta_path.is_file():
            self._load_pair_model(pair_meta_path, ort, options, providers)
        logger.info("loaded %s %s from %s on %s", self.model_name, self.model_version,
                    self.model_path.name, self.providers[0])

    def _load_pair_model(self, meta_path: Path, ort: Any, options: Any,
                         providers: list[str]) -> None:
        """Labels, thresholds and version of the fine-tuned pair graph (``classifier.json``)."""
        meta = json.loads(meta_path.read_text())
        if tuple(meta["labels"]) != self.labels:
            raise ValueError(f"{meta_path}: label order differs from labels.json")
        thresholds = {k: float(v) for k, v in meta["thresholds"].items()}
        if set(thresholds) != set(self.labels):
            raise ValueError(f"{meta_path}: thresholds do not cover exactly the labels")
        path = meta_path.parent / meta["model_file"]
        if not path.is_file():
            raise ValueError(f"pair classifier model file not found: {path} "
                             f"(named by {meta_path.name})")
        self.thresholds = thresholds
        self.model_name = meta["model_name"]
        self.model_version = meta["model_version"]
        self.model_path = path
        self.pair_session = ort.InferenceSession(str(path), options, providers=providers)

    # -- tokenisation --------------------------------------------------------
    def _encode(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids (with [CLS]/[SEP]) truncated to max_tokens, and the truncated flags."""
        limit = self.config.max_tokens
        ids, truncated = [], []
        for enc in self.tokenizer.encode_batch(list(texts)):
            seq = enc.ids
            if len(seq) > limit:
                seq = seq[: limit - 1] + seq[-1:]  # keep the final [SEP]
                truncated.append(True)
            else:
                truncated.append(False)
            ids.append(seq)
        return ids, truncated

    @staticmethod
    def _pad(seqs: Sequence[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max(len(s) for s in seqs)
        ids = np.zeros((len(seqs), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return ids, mask

    # -- inference -----------------------------------------------------------
    def predict(self, batch: Sequence[tuple[str, str, str]]) -> list[Prediction]:
        """Classify a batch of ``(role, text, context)``.

        ``role`` is ``agent`` or ``customer`` (``unknown`` is scored as both and the two
        label sets merged); ``context`` is the previous turn of the other party ("" if none).
        Empty or whitespace text is valid: all its scores are 0 (its embedding is still the
        encoder's embedding of the empty string).

        Returns:
            One :class:`Prediction` per input, in input order.

        Raises:
            ValueError: a role is not agent/customer/unknown, or text/context is not a str.
        """
        probs, embs, cut = self._run(batch, with_embedding=True)
        assert embs is not None
        return [
            Prediction(dict(zip(self.labels, map(float, probs[i]), strict=True)), embs[i], cut[i])
            for i in range(len(batch))
        ]

    def _run(self, batch: Sequence[tuple[str, str, str]], with_embedding: bool
             ) -> tuple[np.ndarray, np.ndarray | None, list[bool]]:
        """Scores ``[n, labels]``, embeddings ``[n, dim]`` (when asked) and truncation flags."""
        if not batch:
            return (np.zeros((0, len(self.labels)), dtype=np.float32),
                    np.zeros((0, self.embedding_dim), dtype=np.float32), [])
        rows: list[tuple[int, int, str, str]] = []  # (input index, role id, text, context)
        for i, item in enumerate(batch):
            if len(item) != 3:
                raise ValueError(
                    f"classifier input {i} must be (role, text, context), got {item!r}")
            role, text, context = item
            if not isinstance(text, str) or not isinstance(context, str):
                raise ValueError(f"classifier input {i}: text and context must be str")
            if role == UNKNOWN_ROLE:
                rows.extend([(i, 0, text, context), (i, 1, text, context)])
            elif role in ROLE_IDS:
                rows.append((i, ROLE_IDS[role], text, context))
            else:
                raise ValueError(f"classifier input {i}: role must be agent, customer or "
                                 f"unknown, got {role!r}")
        probs = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        embs = np.zeros((len(rows), self.embedding_dim), dtype=np.float32)
        row_cut = [False] * len(rows)
        if self.pair_session is not None:
            probs, row_cut = self._pair_scores(rows)
        if self.pair_session is None or with_embedding:
            legacy_p, embs, legacy_cut = self._legacy_run(rows)
            if self.pair_session is None:
                probs, row_cut = legacy_p, legacy_cut
        merged_p = np.zeros((len(batch), len(self.labels)), dtype=np.float32)
        merged_e = np.zeros((len(batch), self.embedding_dim), dtype=np.float32)
        cut = [False] * len(batch)
        for k, (i, _, text, _) in enumerate(rows):
            # No words, no labels: a blank transcript must not inherit labels from its context.
            if text.strip():
                # Role masks are disjoint: max merges the two passes of an "unknown" role.
                merged_p[i] = np.maximum(merged_p[i], probs[k])
            merged_e[i] = embs[k]
            cut[i] = cut[i] or row_cut[k]
        return merged_p, (merged_e if with_embedding else None), cut

    def _pair_scores(self, rows: Sequence[tuple[int, int, str, str]]
                     ) -> tuple[np.ndarray, list[bool]]:
        """Fine-tuned pair graph, one row per ONNX call (labels independent of the batch)."""
        ids, types, cut = pair_ids(self.tokenizer, [r[2] for r in rows], [r[3] for r in rows])
        probs = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        for k, (_, role_id, _, _) in enumerate(rows):
            probs[k] = self.pair_session.run(["probabilities"], {
                "input_ids": np.array([ids[k]], dtype=np.int64),
                "attention_mask": np.ones((1, len(ids[k])), dtype=np.int64),
                "token_type_ids": np.array([types[k]], dtype=np.int64),
                "role": np.array([role_id], dtype=np.int64)})[0][0]
        return probs, cut

    def _legacy_run(self, rows: Sequence[tuple[int, int, str, str]]
                    ) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """The 1.1.0 graph: its probabilities, the original embedding, truncation flags."""
        text_ids, text_cut = self._encode([r[2] for r in rows])
        ctx_ids, ctx_cut = self._encode([r[3] for r in rows])
        probs = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        embs = np.zeros((len(rows), self.embedding_dim), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda k: (len(text_ids[k]), len(ctx_ids[k])))
        for chunk in self._sub_batches(order, text_ids, ctx_ids):
            ids, mask = self._pad([text_ids[k] for k in chunk])
            cids, cmask = self._pad([ctx_ids[k] for k in chunk])
            role_ids = np.array([rows[k][1] for k in chunk], dtype=np.int64)
            p, e = self.session.run(["probabilities", "embedding"], {
                "input_ids": ids, "attention_mask": mask, "context_input_ids": cids,
                "context_attention_mask": cmask, "role": role_ids})
            probs[chunk] = p
            embs[chunk] = e
        return probs, embs, [a or b for a, b in zip(text_cut, ctx_cut, strict=True)]

    def _sub_batches(self, order: list[int], text_ids: list[list[int]],
                     ctx_ids: list[list[int]]) -> Iterable[list[int]]:
        """Cut length-sorted rows into ONNX calls of at most ``rows_per_call`` rows whose padded
        size stays under ``sub_batch_tokens``."""
        chunk: list[int] = []
        longest = 0
        for k in order:
            size = max(len(text_ids[k]), len(ctx_ids[k]))
            if chunk and (
                len(chunk) >= self.config.rows_per_call
                or max(longest, size) * (len(chunk) + 1) > self.config.sub_batch_tokens
            ):
                yield chunk
                chunk, longest = [], 0
            chunk.append(k)
            longest = max(longest, size)
        if chunk:
            yield chunk

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of texts alone (empty context), shape (n, 384), L2-normalised."""
        if not texts:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        _, embs, _ = self._legacy_run([(k, ROLE_IDS["customer"], t, "")
                                       for k, t in enumerate(texts)])
        return embs.astype(np.float32)

    def label(self, inputs: Sequence[ClassifierInput]) -> list[UtteranceLabels]:
        """Classify records and apply the per-label thresholds."""
        probs, _, cut = self._run([(r.role, r.text, r.context) for r in inputs],
                                  with_embedding=False)
        out = []
        for k, record in enumerate(inputs):
            scores = tuple(round(float(p), 6) for p in probs[k])
            flags = tuple(s >= self.thresholds[lab]
                          for s, lab in zip(scores, self.labels, strict=True))
            out.append(UtteranceLabels(
                utterance_id=record.utterance_id, call_id=record.call_id, role=record.role,
                label_names=self.labels, scores=scores, flags=flags,
                truncated=cut[k], model_name=self.model_name,
                model_version=self.model_version))
        return out


_SHARED: dict[tuple[str, str | None], UtteranceClassifier] = {}
_SHARED_LOCK = threading.Lock()


def _shared_classifier(model_dir: str, model_file: str | None) -> UtteranceClassifier:
    key = (model_dir, model_file)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = UtteranceClassifier(
                ClassifierConfig(model_dir=model_dir, model_file=model_file))
        return _SHARED[key]


EMBEDDING_MODEL_FILE = "model.onnx"
"""Model used by :func:`embed_texts`: the fp32 graph, whose ``embedding`` output equals the
original all-MiniLM-L6-v2 sentence embedding (max abs difference ~3e-7, see the model card);
the int8 graph's embeddings are close (mean cosine ~0.99) but not identical."""


def embed_texts(texts: Sequence[str], model_dir: str = str(MODEL_DIR),
                model_file: str | None = EMBEDDING_MODEL_FILE) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings of texts alone, (n, 384) float32, L2-normalised.

    The model is loaded once per process and reused. Defaults to the fp32 graph so the
    embeddings are the original ones; ``model_file=None`` uses labels.json's default (int8).
    """
    return _shared_classifier(model_dir, model_file).embed(list(texts))


def classifier_input_for(utterance_id: str, call_id: str, role: str, text: str,
                         context: str = "") -> ClassifierInput:
    """A validated :class:`ClassifierInput` (raises ValueError on a bad role or type)."""
    record = ClassifierInput(utterance_id=utterance_id, call_id=call_id, role=role, text=text,
                             context=context)
    _validate(record)
    return record


def _validate(record: ClassifierInput) -> ClassifierInput:
    if not isinstance(record, ClassifierInput):
        raise ValueError(f"expected ClassifierInput, got {type(record).__name__}")
    if record.role not in (*ROLE_IDS, UNKNOWN_ROLE):
        raise ValueError(f"{record.utterance_id}: role must be agent, customer or unknown, "
                         f"got {record.role!r}")
    if not isinstance(record.text, str) or not isinstance(record.context, str):
        raise ValueError(f"{record.utterance_id}: text and context must be str")
    return record


class UtteranceClassifierHandler(
        ModelHandler[ClassifierInput, UtteranceLabels, UtteranceClassifier]):
    """Beam model handler: batches of ClassifierInput -> UtteranceLabels.

    Each batch is sorted by length and padded to the longest sequence of each sub-batch
    (the stock ONNX handler needs equal shapes). Use as
    ``RunInference(KeyedModelHandler(UtteranceClassifierHandler()))`` keyed by utterance id.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()

    def load_model(self) -> UtteranceClassifier:
        return UtteranceClassifier(self.config)

    def run_inference(self, batch: Sequence[ClassifierInput], model: UtteranceClassifier,
                      inference_args: dict[str, Any] | None = None) -> Iterable[UtteranceLabels]:
        return model.label([_validate(r) for r in batch])

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": self.config.min_batch_size,
                "max_batch_size": self.config.max_batch_size}

    def get_metrics_namespace(self) -> str:
        return "callscope_classifier"


def _failed_batch_to_dead_letters(failure: tuple[Any, BaseException]) -> Iterable[DeadLetter]:
    batch, error = failure
    for element in batch:
        record = element[1] if isinstance(element, tuple) and len(element) == 2 else element
        dead = dead_letter_for(record, STAGE, error)
        utterance_id = getattr(record, "utterance_id", None)
        if utterance_id:
            dead = DeadLetter(call_id=dead.call_id, stage=dead.stage,
                              error_type=dead.error_type,
                              message=f"{utterance_id}: {dead.message}", audio=dead.audio)
        yield dead


class _ValidateFn(beam.DoFn):
    """Checks records before batching, so one bad record cannot fail a whole batch."""

    def __init__(self) -> None:
        super().__init__()
        self.invalid = Metrics.counter("callscope", "classify_invalid")

    def process(self, element: Any) -> Iterable[Any]:
        try:
            record = _validate(element)
        except ValueError as e:
            self.invalid.inc()
            yield beam.pvalue.TaggedOutput("dead_letter", dead_letter_for(element, STAGE, e))
            return
        yield (record.utterance_id, record)


class _CountFn(beam.DoFn):
    def __init__(self) -> None:
        super().__init__()
        self.labelled = Metrics.counter("callscope", "utterances_labelled")
        self.truncated = Metrics.counter("callscope", "utterances_truncated")

    def process(self, element: tuple[str, UtteranceLabels]) -> Iterable[UtteranceLabels]:
        _, labels = element
        self.labelled.inc()
        if labels.truncated:
            self.truncated.inc()
        yield labels


class LabelUtterances(beam.PTransform):
    """ClassifierInput records -> ``{"labels": UtteranceLabels, "dead_letter": DeadLetter}``.

    Args:
        config: Runtime settings of the classifier.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()

    def expand(self, inputs: beam.PCollection) -> dict[str, beam.PCollection]:
        checked = inputs | "ValidateInputs" >> beam.ParDo(_ValidateFn()).with_outputs(
            "dead_letter", main="keyed")
        handler: KeyedModelHandler = KeyedModelHandler(UtteranceClassifierHandler(self.config))
        main, errors = checked.keyed | "RunClassifier" >> RunInference(
            handler).with_exception_handling()
        labels = main | "CountLabelled" >> beam.ParDo(_CountFn())
        failed = errors.failed_inferences | "FailedBatchesToDeadLetter" >> beam.FlatMap(
            _failed_batch_to_dead_letters)
        dead = (checked.dead_letter, failed) | "MergeDeadLetters" >> beam.Flatten()
        return {"labels": labels, "dead_letter": dead}
