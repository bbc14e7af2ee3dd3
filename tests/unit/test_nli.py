"""The optional NLI path, on a tiny randomly initialised classifier built here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from service.signals.nli import NliModel, entailment_clusters

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "the", "capital", "rome",
         "yes", "no", "seven", "7"]


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-nli")
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=3,
        id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
        label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(path))
    return path


def test_entailment_probabilities_are_probabilities(tiny_nli: Path) -> None:
    nli = NliModel(tiny_nli)
    assert nli.entail_index == 2
    probs = asyncio.run(nli.entail_probs([("paris is the capital", "paris"), ("no", "yes")]))
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))
    assert nli.entail_probs_sync([]).shape == (0,)


def test_missing_dir_and_bad_labels_fail_clearly(tiny_nli: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        NliModel(tmp_path / "nope")
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_nli, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["id2label"] = {"0": "a", "1": "b", "2": "c"}
    cfg["label2id"] = {"a": 0, "b": 1, "c": 2}
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="entailment"):
        NliModel(bad)


def test_bidirectional_clustering_with_a_scripted_judge() -> None:
    # i and j join only when each entails the other
    same = {("a", "a2"), ("a2", "a"), ("b", "b2"), ("b2", "b"), ("a", "c")}

    async def nli(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.array([0.9 if p in same else 0.1 for p in pairs])

    labels = asyncio.run(entailment_clusters(["a", "b", "a2", "c", "b2"], nli))
    assert labels == [0, 1, 0, 2, 1]
    assert asyncio.run(entailment_clusters([], nli)) == []


def test_clustering_with_the_tiny_model_runs_end_to_end(tiny_nli: Path) -> None:
    nli = NliModel(tiny_nli)
    labels = asyncio.run(entailment_clusters(["paris", "paris", "rome is the capital"],
                                             nli.entail_probs))
    assert len(labels) == 3 and labels[0] == 0
    assert all(0 <= c < 3 for c in labels)


def test_semantic_and_judge_signals_use_nli_when_configured() -> None:
    from service.signals.base import SignalContext
    from service.signals.judge import JudgeSignal
    from service.signals.semantic import SemanticSignal
    from tests.fakes import FakeEmbedder

    async def nli(pairs: list[tuple[str, str]]) -> np.ndarray:  # entailment iff same first word
        return np.array([0.9 if p.split()[0] == h.split()[0] else 0.05 for p, h in pairs])

    ctx = SignalContext(question="q", task="factual", answer="paris indeed",
                        samples=["paris of course", "rome surely", "paris"],
                        context="paris is the capital",
                        embed_provider=FakeEmbedder().encode, nli_provider=nli)
    sem = asyncio.run(SemanticSignal().score(ctx))
    assert sem.clusters == [0, 1, 0]  # the samples'; the greedy answer's cluster is 0
    assert sem.confidence == pytest.approx(2 / 3)
    judge = asyncio.run(JudgeSignal().score(ctx))
    assert judge.values["context_support"] == pytest.approx(0.9)
