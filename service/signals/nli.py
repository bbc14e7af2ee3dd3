"""Optional NLI (3-way sequence classifier) for entailment clustering and context support.

``CANDOR_NLI_MODEL`` points to a local Hugging Face sequence-classification
directory whose ``config.id2label`` names an entailment label (e.g. an MNLI
model). Nothing is downloaded. Inference runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

NliFn = Callable[[list[tuple[str, str]]], Awaitable[np.ndarray]]


class NliModel:
    """Entailment probabilities for (premise, hypothesis) pairs."""

    def __init__(self, path: Path, max_length: int = 256) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not Path(path).is_dir():
            raise FileNotFoundError(f"NLI model directory not found: {path}")
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(path), local_files_only=True
        ).eval()
        labels = {int(k): str(v).lower() for k, v in self.model.config.id2label.items()}
        hits = [i for i, name in labels.items() if name.startswith("entail")]
        if len(hits) != 1:
            raise ValueError(f"NLI model at {path} has no single 'entailment' label: {labels}")
        self.entail_index = hits[0]
        self.max_length = max_length
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="candor-nli")

    def entail_probs_sync(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        enc = self.tokenizer(
            [p for p, _ in pairs], [h for _, h in pairs], padding=True, truncation=True,
            max_length=self.max_length, return_tensors="pt",
        )
        with self._torch.no_grad():
            logits = self.model(**enc).logits.float()
        probs = self._torch.softmax(logits, dim=-1)[:, self.entail_index]
        return probs.numpy().astype(float)

    async def entail_probs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.entail_probs_sync, pairs)


async def entailment_clusters(texts: list[str], nli: NliFn, threshold: float = 0.5) -> list[int]:
    """Bidirectional-entailment clustering (Kuhn et al. 2023): i joins the first cluster
    whose representative entails i and is entailed by i."""
    if not texts:
        return []
    reps: list[int] = []
    labels: list[int] = []
    for i, text in enumerate(texts):
        if not reps:
            reps.append(i)
            labels.append(0)
            continue
        pairs = [(texts[r], text) for r in reps] + [(text, texts[r]) for r in reps]
        probs = await nli(pairs)
        k = len(reps)
        both = [c for c in range(k) if probs[c] > threshold and probs[k + c] > threshold]
        if both:
            labels.append(both[0])
        else:
            reps.append(i)
            labels.append(len(reps) - 1)
    return labels
