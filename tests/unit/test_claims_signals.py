"""Per-claim signals (service/claims/signals.py): the claim's own tokens, sample support."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from service.claims.signals import ClaimSignals, claim_token_signals, support, token_offsets
from service.claims.split import split_claims
from service.engine.protocol import TokenInfo
from tests.fakes import FakeEmbedder

ANSWER = "1. 3 + 4 = 7\n2. 6 x 2 = 12\n3. 15 - 9 = 4"
TOKENS = ["1", ".", " ", "3", " +", " ", "4", " =", " ", "7", "\n", "2", ".", " ", "6", " x",
          " ", "2", " =", " ", "1", "2", "\n", "3", ".", " ", "1", "5", " -", " ", "9", " =",
          " ", "4", "<|im_end|>"]


def test_offsets_place_tokens_and_skip_what_the_text_lacks() -> None:
    offs = token_offsets(ANSWER, TOKENS)
    for tok, (s, e) in zip(TOKENS[:-1], offs[:-1], strict=True):
        assert ANSWER[s:e] == tok
    assert offs[-1][0] == offs[-1][1] == len(ANSWER)  # the special token: empty range
    # whitespace-free word tokens (the fake engine's) are found past the spaces
    words = "The answer is 4.".split()
    assert [("The answer is 4."[s:e]) for s, e in token_offsets("The answer is 4.", words)] \
        == words


def test_a_claim_reads_only_its_own_tokens() -> None:
    # every token sure but the "4" that ends part 3
    infos = [TokenInfo(t, math.log(0.05) if i == 33 else -0.01, (-0.01, -5.0))
             for i, t in enumerate(TOKENS)]
    claims = split_claims(ANSWER)
    offs = token_offsets(ANSWER, TOKENS)
    sigs = [claim_token_signals(c, infos, offs) for c in claims]
    assert [s.min_token_prob for s in sigs[:2]] == pytest.approx([math.exp(-0.01)] * 2)
    assert sigs[2].min_token_prob == pytest.approx(0.05)
    assert sigs[2].mean_nll is not None and sigs[2].mean_nll > 5 * sigs[0].mean_nll
    assert [s.n_tokens for s in sigs] == [7, 8, 8]
    assert sigs[0].token_entropy is not None and sigs[0].uncalibrated > sigs[2].uncalibrated


def test_a_claim_without_tokens_has_no_token_statistics() -> None:
    claims = split_claims("Paris.")
    sig = claim_token_signals(claims[0], [], [])
    assert (sig.n_tokens, sig.mean_nll, sig.uncalibrated) == (0, None, 0.0)
    assert sig.features() == {"claim_n_tokens": 0.0}


def run_support(answer: str, samples: list[str], task: str, **kw: object) -> list[float]:
    return asyncio.run(support(split_claims(answer), [split_claims(s) for s in samples], task,
                               **kw))  # type: ignore[arg-type]


def test_support_matches_enumerated_parts_by_their_number() -> None:
    samples = ["1) 7\n2) 12\n3) 6", "1. 3 + 4 = 7\n2. 6 * 2 = 12\n3. 15 - 9 = 6",
               "1. 7\n2. 13\n3. 4", "3) 4\n1) 7"]
    # part 2 says 12: the first two agree, the third says 13 and the fourth has no part 2
    # (then every claim of it is compared: 4, 7); part 3 says 4: the last two agree
    assert run_support(ANSWER, samples, "math") == [1.0, 0.5, 0.5]


def test_support_without_parts_compares_every_claim() -> None:
    shares = run_support("Paris is the capital. Rome is in Spain.",
                         ["Rome is in Spain. Paris is the capital.", "paris is THE capital!",
                          "Madrid."], "factual")
    assert shares == pytest.approx([2 / 3, 1 / 3])


def test_embeddings_match_restatements_for_text_but_not_numbers() -> None:
    class Near(FakeEmbedder):
        """Everything mentioning Paris lands on one vector."""

        def encode_sync(self, texts: list[str]) -> np.ndarray:
            return super().encode_sync(["paris" if "Paris" in t else t for t in texts])

    answer, samples = "Paris is the capital.", ["The capital is Paris, of course."]
    assert run_support(answer, samples, "factual") == [0.0]
    assert run_support(answer, samples, "factual", embed=Near().encode) == [1.0]
    assert run_support("1) 7", ["1) 8"], "math", embed=Near().encode) == [0.0]


def test_support_needs_samples_and_empty_keys_never_match() -> None:
    with pytest.raises(ValueError):
        run_support("7", [], "math")
    assert run_support("...", ["!!!"], "factual") == [0.0]


def test_uncalibrated_confidence_averages_token_and_support() -> None:
    sig = ClaimSignals(mean_nll=math.log(2), min_token_prob=0.5, token_entropy=0.1,
                       n_tokens=2, support=0.0)
    assert sig.uncalibrated == pytest.approx(0.25)
    assert sig.features()["support"] == 0.0
