"""Regenerate the measured sections of MODEL_CARD.md from the training/export reports.

Run (any venv): ``python -m models.utterance_classifier.card``. Replaces the text between
``<!-- metrics:start -->`` and ``<!-- metrics:end -->`` in MODEL_CARD.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.utterance_classifier.labels import LABELS

HERE = Path(__file__).resolve().parent
CARD = HERE / "MODEL_CARD.md"
START, END = "<!-- metrics:start -->", "<!-- metrics:end -->"


def render() -> str:
    train = json.loads((HERE / "train_report.json").read_text())
    export = json.loads((HERE / "export_report.json").read_text())
    thr = train["thresholds"]
    fp32, int8 = export["test_fp32"], export["test_int8"]
    lines = [
        f"Test split: {export['test_utterances']} utterances (held-out phrasings, see "
        "GUIDELINES.md). Thresholds tuned on dev.",
        "",
        "| label | threshold | support | fp32 P | fp32 R | fp32 F1 | int8 P | int8 R | int8 F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lab in LABELS:
        f, q = fp32[lab], int8[lab]
        lines.append(
            f"| {lab} | {thr[lab]:.3f} | {f['support']} | {f['precision']:.3f} | "
            f"{f['recall']:.3f} | {f['f1']:.3f} | {q['precision']:.3f} | {q['recall']:.3f} | "
            f"{q['f1']:.3f} |")
    fs, qs, ds = fp32["_summary"], int8["_summary"], train["dev"]["_summary"]
    lines += [
        f"| **micro** | | | | | **{fs['micro_f1']:.3f}** | | | **{qs['micro_f1']:.3f}** |",
        f"| **macro** | | | | | **{fs['macro_f1']:.3f}** | | | **{qs['macro_f1']:.3f}** |",
        "",
        f"Dev (threshold tuning split): micro F1 {ds['micro_f1']:.3f}, macro F1 "
        f"{ds['macro_f1']:.3f}.",
        "",
        "Export checks (`export_report.json`):",
        "",
        f"- torch reference vs fp32 ONNX, max abs difference: probabilities "
        f"{export['max_abs_diff_probabilities_torch_vs_fp32']:.1e}, embedding "
        f"{export['max_abs_diff_embedding_torch_vs_fp32']:.1e}.",
        f"- sentence-transformers `encode(normalize_embeddings=True)` vs fp32 ONNX `embedding`, "
        f"max abs difference: {export['max_abs_diff_embedding_sentence_transformers_vs_fp32']:.1e}"
        " (200 test texts).",
        f"- fp32 vs int8 probabilities: max abs difference "
        f"{export['max_abs_diff_probabilities_fp32_vs_int8']:.3f}, mean "
        f"{export['mean_abs_diff_probabilities_fp32_vs_int8']:.4f}; embedding cosine min "
        f"{export['min_cosine_embedding_fp32_vs_int8']:.3f}, mean "
        f"{export.get('mean_cosine_embedding_fp32_vs_int8', float('nan')):.4f}.",
        f"- Quantisation cost on test: micro F1 {export['int8_micro_f1_drop']:+.4f}, macro F1 "
        f"{export['int8_macro_f1_drop']:+.4f} (fp32 minus int8; the export fails above "
        "0.02 micro F1).",
        f"- Sizes: fp32 {export['fp32_bytes'] / 1e6:.1f} MB, int8 "
        f"{export['int8_bytes'] / 1e6:.1f} MB.",
        "",
        "Corpus (`corpus.jsonl`, positives per label):",
        "",
        "| split | utterances | dialogues | no label | " + " | ".join(LABELS) + " |",
        "|---" * (4 + len(LABELS)) + "|",
    ]
    for split, s in train["corpus"].items():
        lines.append(f"| {split} | {s['utterances']} | {s['dialogues']} | {s['no_label']} | "
                     + " | ".join(str(s[lab]) for lab in LABELS) + " |")
    lines.append("")
    lines.append(f"Training added {train['noise_examples']} label-free noise utterances (empty, "
                 f"fillers, garbage) and {train.get('context_dropout_examples', 0)} "
                 "empty-context copies of train utterances (see `train.py`); training took "
                 f"{train['train_seconds']} s on the 2-core development machine with the "
                 "encoder cache warm (a cold run first encodes ~10k texts: 3-4 more minutes).")
    lines += render_calls()
    return "\n".join(lines)


def render_calls() -> list[str]:
    """In-domain table: 1.0.0 (``baseline_1_0_0.json``) vs this model on the generated calls."""
    calls = json.loads((HERE / "calls_eval_report.json").read_text())
    base_path = HERE / "baseline_1_0_0.json"
    base = json.loads(base_path.read_text())["calls"] if base_path.is_file() else None
    ignored = ", ".join(f"{k} x{v}" for k, v in calls["ignored_labels"].items())
    lines = [
        "",
        f"In-domain (`evaluate_calls.py`): ground-truth text of the {calls['turns']} turns of the "
        f"{calls['calls']} generated calls in `samples/calls`, `tests/fixtures/dynamics`, "
        "`tests/fixtures/consistency`, context = previous main turn of the other party, int8 "
        "model (the pipeline default). Never trained on. Generator labels outside the "
        f"speaker's inventory are ignored ({ignored}). See \"In-domain evaluation\" below for "
        "where the generator's labels disagree with GUIDELINES.md.",
        "",
        "| label | support | 1.0.0 P | 1.0.0 R | 1.0.0 F1 | P | R | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lab in LABELS:
        m = calls["int8"][lab]
        if not (m["support"] or m["predicted"]):
            continue
        b = base["int8"][lab] if base else {"precision": float("nan"), "recall": float("nan"),
                                             "f1": float("nan")}
        lines.append(f"| {lab} | {m['support']} | {b['precision']:.2f} | {b['recall']:.2f} | "
                     f"{b['f1']:.2f} | {m['precision']:.2f} | {m['recall']:.2f} | "
                     f"{m['f1']:.2f} |")
    for key, name in (("micro_f1", "micro"), ("macro_f1_supported", "macro (labels with support)")):
        b = base["int8"]["_summary"][key] if base else float("nan")
        lines.append(f"| **{name}** | | | | **{b:.3f}** | | | "
                     f"**{calls['int8']['_summary'][key]:.3f}** |")
    return lines


def main() -> None:
    text = CARD.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{CARD} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    CARD.write_text(f"{head}{START}\n{render()}\n{END}{tail}")


if __name__ == "__main__":
    main()
