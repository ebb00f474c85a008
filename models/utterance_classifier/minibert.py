"""A plain-torch BERT encoder that loads all-MiniLM-L6-v2's weights (training/export only).

Why not ``transformers.AutoModel``: fine-tuning only the top layers on 2 CPU cores needs the
lower layers' outputs computed once and cached (``lower`` / ``upper`` below), and the ONNX
export should be a plain graph (additive attention mask, no attention-implementation
dispatch). Parameter names equal the checkpoint's, so ``load_state_dict`` checks every
weight; ``tests``-free equivalence with transformers is checked by ``finetune --check``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, positions: int, types: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + additive_mask
        attn = self.dropout(torch.softmax(scores, dim=-1))
        return (attn @ v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim)


class _DenseNorm(nn.Module):
    def __init__(self, d_in: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden, heads)
        self.output = _DenseNorm(hidden, hidden, eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, additive_mask), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads, eps)
        self.intermediate = _Intermediate(hidden, inner)
        self.output = _DenseNorm(inner, hidden, eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, additive_mask)
        return self.output(self.intermediate(a), a)


class _Encoder(nn.Module):
    def __init__(self, n: int, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(hidden, heads, inner, eps) for _ in range(n))


class MiniBert(nn.Module):
    """BERT encoder (no pooler) with the checkpoint's parameter names."""

    def __init__(self, config: dict[str, int | float]) -> None:
        super().__init__()
        hidden = int(config["hidden_size"])
        eps = float(config["layer_norm_eps"])
        self.hidden_size = hidden
        self.embeddings = _Embeddings(
            int(config["vocab_size"]),
            hidden,
            int(config["max_position_embeddings"]),
            int(config["type_vocab_size"]),
            eps,
        )
        self.encoder = _Encoder(
            int(config["num_hidden_layers"]),
            hidden,
            int(config["num_attention_heads"]),
            int(config["intermediate_size"]),
            eps,
        )

    @classmethod
    def from_dir(cls, path: Path) -> MiniBert:
        """Load ``config.json`` + ``model.safetensors`` (every encoder weight must be present)."""
        from safetensors.torch import load_file

        config = json.loads((path / "config.json").read_text())
        model = cls(config)
        weights = load_file(str(path / "model.safetensors"))
        weights = {k: v for k, v in weights.items() if not k.startswith("pooler.")}
        weights.pop("embeddings.position_ids", None)
        model.load_state_dict(weights, strict=True)
        return model

    @staticmethod
    def additive_mask(attention_mask: torch.Tensor) -> torch.Tensor:
        """[b, 1, 1, n] 0 for tokens, -1e4 for padding (fp32-safe, as BERT's original code)."""
        return (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0

    def lower(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        n_layers: int,
    ) -> torch.Tensor:
        """Hidden states after the embeddings and the first ``n_layers`` layers."""
        x = self.embeddings(input_ids, token_type_ids)
        mask = self.additive_mask(attention_mask)
        for layer in self.encoder.layer[:n_layers]:
            x = layer(x, mask)
        return x

    def upper(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, from_layer: int
    ) -> torch.Tensor:
        """Run layers ``from_layer..`` on hidden states of ``lower``."""
        mask = self.additive_mask(attention_mask)
        for layer in self.encoder.layer[from_layer:]:
            hidden = layer(hidden, mask)
        return hidden

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.lower(input_ids, attention_mask, token_type_ids, len(self.encoder.layer))
