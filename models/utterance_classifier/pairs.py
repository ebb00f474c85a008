"""Token inputs of the fine-tuned classifier graph: one (utterance, context) pair per row.

Shared by training (torch) and the runtime (onnxruntime + tokenizers, no torch), so both
feed the graph exactly the same ids. The utterance is segment A (``token_type_ids`` 0), the
other party's previous turn segment B (1): ``[CLS] utterance [SEP] context [SEP]``. One
encoder pass sees both, so attention can compare them (restatements, answers to a question).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

MAX_PAIR_TOKENS = 128
"""Longest pair sequence (all-MiniLM-L6-v2 was trained at 128)."""
MAX_CONTEXT_TOKENS = 48
"""Word pieces kept of the context; its *end* is kept, the part nearest the utterance."""
CLS_ID = 101
SEP_ID = 102
"""BERT uncased vocabulary ids of ``[CLS]`` and ``[SEP]`` (all-MiniLM-L6-v2's tokenizer)."""


def raw_tokenizer(path: str) -> Tokenizer:
    """The encoder's WordPiece tokenizer with no padding and no truncation."""
    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.no_truncation()
    return tok


def pair_ids(
    tok: Tokenizer, texts: Sequence[str], contexts: Sequence[str]
) -> tuple[list[list[int]], list[list[int]], list[bool]]:
    """Token ids and segment ids of ``[CLS] text [SEP] context [SEP]`` rows.

    The context keeps its last ``MAX_CONTEXT_TOKENS`` pieces (by design, not flagged); the
    utterance is cut to fit ``MAX_PAIR_TOKENS`` (flagged as truncated). An empty context
    gives ``[CLS] text [SEP]``.

    Returns:
        (ids, token_type_ids, truncated) per row.
    """
    text_enc = tok.encode_batch(list(texts), add_special_tokens=False)
    ctx_enc = tok.encode_batch(list(contexts), add_special_tokens=False)
    ids_out, types_out, cut_out = [], [], []
    for t, c in zip(text_enc, ctx_enc, strict=True):
        ctx = c.ids[-MAX_CONTEXT_TOKENS:] if c.ids else []
        room = MAX_PAIR_TOKENS - 2 - (len(ctx) + 1 if ctx else 0)
        utt = t.ids[:room]
        ids = [CLS_ID, *utt, SEP_ID]
        types = [0] * len(ids)
        if ctx:
            ids += [*ctx, SEP_ID]
            types += [1] * (len(ctx) + 1)
        ids_out.append(ids)
        types_out.append(types)
        cut_out.append(len(t.ids) > room)  # the context is cut to its end by design
    return ids_out, types_out, cut_out


def pad_rows(
    ids: Sequence[list[int]], types: Sequence[list[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-pad rows to the longest; returns int64 (input_ids, attention_mask, token_type_ids)."""
    longest = max(len(r) for r in ids)
    out_ids = np.zeros((len(ids), longest), dtype=np.int64)
    mask = np.zeros_like(out_ids)
    out_types = np.zeros_like(out_ids)
    for i, (r, s) in enumerate(zip(ids, types, strict=True)):
        out_ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
        out_types[i, : len(s)] = s
    return out_ids, mask, out_types
