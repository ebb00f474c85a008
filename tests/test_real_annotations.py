"""Real-text annotation tooling: corpus loaders, frozen split, agreement, pair inputs.

No corpus text is needed: the loaders read small corpora written here in the corpora's
formats, with sentences made up for the test.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from models.utterance_classifier.pairs import MAX_CONTEXT_TOKENS, MAX_PAIR_TOKENS, pair_ids
from models.utterance_classifier.real_labels import (
    SAMPLE_PATH,
    cohen_kappa,
    merge,
    read_labels,
    read_sample,
)
from models.utterance_classifier.real_text import (
    detokenize,
    load_by_ids,
    load_corpus,
    mask_twitter,
    split_of,
)
from pipeline.classifier import MODEL_DIR


def test_split_is_stable_and_near_60_20_20() -> None:
    assert split_of("multiwoz", "PMUL0001") == split_of("multiwoz", "PMUL0001")
    counts = Counter(split_of("corpus", f"d{i}") for i in range(5000))
    assert abs(counts["train"] / 5000 - 0.6) < 0.03
    assert abs(counts["dev"] / 5000 - 0.2) < 0.03
    assert abs(counts["test"] / 5000 - 0.2) < 0.03


def test_committed_sample_is_split_by_dialogue() -> None:
    sample = read_sample(SAMPLE_PATH)
    assert len(sample) >= 5000
    by_dialogue: dict[str, set[str]] = {}
    for entry in sample.values():
        corpus, dialogue, _ = entry.utterance_id.rsplit(":", 2)
        assert entry.split == split_of(corpus, dialogue)
        by_dialogue.setdefault(f"{corpus}:{dialogue}", set()).add(entry.split)
    assert all(len(s) == 1 for s in by_dialogue.values())
    assert sum(len(e.shards) == 2 for e in sample.values()) == 400


def test_text_normalisation() -> None:
    assert detokenize("i do n't know , is it 5 stars ?") == "i don't know, is it 5 stars?"
    assert mask_twitter("@AcmeHelp  hi @bob_77 see https://x.example/a?b=1 ok") == (
        "@user hi @user see <url> ok")


def _write_harper(root: Path) -> None:
    folder = root / "harper_valley"
    folder.mkdir(parents=True)
    turns = [
        {"index": 1, "offset_ms": 100, "speaker_role": "agent",
         "human_transcript": "good morning you have reached pine bank"},
        {"index": 2, "offset_ms": 900, "speaker_role": "caller",
         "human_transcript": "[noise] <unk>"},
        {"index": 3, "offset_ms": 1500, "speaker_role": "caller",
         "human_transcript": "hi i lost my debit card"},
        {"index": 4, "offset_ms": 2500, "speaker_role": "agent",
         "human_transcript": "okay so you lost your card"},
    ]
    with gzip.open(folder / "calls.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "call1", "turns": turns}) + "\n")


def test_loader_ids_roles_and_context(tmp_path: Path) -> None:
    _write_harper(tmp_path)
    items = load_corpus("harper_valley", tmp_path)
    assert [u.utterance_id for u in items] == [
        "harper_valley:call1:1", "harper_valley:call1:3", "harper_valley:call1:4"]
    assert [u.role for u in items] == ["agent", "customer", "agent"]
    assert items[0].context == ""
    assert items[1].context == "good morning you have reached pine bank"
    assert items[2].context == "hi i lost my debit card"
    found = load_by_ids({"harper_valley:call1:4"}, tmp_path)
    assert found["harper_valley:call1:4"].text == "okay so you lost your card"
    with pytest.raises(KeyError):
        load_by_ids({"harper_valley:call1:9"}, tmp_path)
    with pytest.raises(ValueError, match="unknown corpus"):
        load_corpus("nope", tmp_path)


def test_cohen_kappa_values() -> None:
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == 1.0
    # Observed agreement 0.5 equals chance agreement 0.5: kappa 0.
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == 0.0
    assert cohen_kappa([False, False], [False, False]) is None


def test_read_labels_tolerates_a_file_being_written(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "a:1:0", "labels": ["thanks"]}\n{"id": "a:1:1", "lab')
    assert read_labels(path) == {"a:1:0": frozenset({"thanks"})}
    path.write_text('{"id": "a:1:0", "labels": ["thanks", "question"]}\n')
    assert read_labels(path, {"a:1:0": "agent"}) == {"a:1:0": frozenset({"thanks"})}
    path.write_text('{"id": "a:1:0", "labels": ["gratitude"]}\n')
    with pytest.raises(ValueError, match="unknown labels"):
        read_labels(path)


def test_merge_keeps_either_annotators_label() -> None:
    first = {"x": frozenset({"thanks"}), "y": frozenset()}
    second = {"x": frozenset({"courtesy"}), "z": frozenset({"question"})}
    assert merge(first, second) == {
        "x": frozenset({"thanks", "courtesy"}), "y": frozenset(), "z": frozenset({"question"})}


def test_pair_inputs() -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_truncation()
    ids, types, cut = pair_ids(tok, ["so the fee went up", "hello"], ["why did my fee go up", ""])
    assert ids[0][0] == 101 and ids[0].count(102) == 2
    assert types[0][: ids[0].index(102) + 1] == [0] * (ids[0].index(102) + 1)
    assert set(types[0][ids[0].index(102) + 1 :]) == {1}
    assert ids[1] == [101, tok.token_to_id("hello"), 102] and types[1] == [0, 0, 0]
    long_text = "account " * 300
    ids, types, cut = pair_ids(tok, [long_text, "ok"], [long_text, long_text])
    assert len(ids[0]) == MAX_PAIR_TOKENS and cut == [True, False]
    assert types[1].count(1) == MAX_CONTEXT_TOKENS + 1  # the context keeps its end
