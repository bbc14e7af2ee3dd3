"""The pure policy and the uncalibrated confidence model."""

from __future__ import annotations

import pytest

from service.cascade.policy import Action, Policy, UncalibratedModel


def test_decide_answer_escalate_abstain() -> None:
    p = Policy(answer_threshold=0.8, abstain_threshold=0.2, max_stage=3)
    assert p.decide(0, 0.85) is Action.ANSWER
    assert p.decide(0, 0.8) is Action.ANSWER  # the threshold itself answers
    assert p.decide(0, 0.5) is Action.ESCALATE
    assert p.decide(1, 0.1) is Action.ABSTAIN  # hopeless: no point paying for more stages
    assert p.decide(3, 0.5) is Action.ABSTAIN  # last stage: below threshold abstains


def test_max_stage_zero_decides_at_once() -> None:
    p = Policy(0.8, 0.2, max_stage=0)
    assert p.decide(0, 0.5) is Action.ABSTAIN and p.decide(0, 0.9) is Action.ANSWER


@pytest.mark.parametrize(("hi", "lo"), [(0.5, 0.6), (1.2, 0.1), (0.5, -0.1)])
def test_invalid_thresholds_rejected(hi: float, lo: float) -> None:
    with pytest.raises(ValueError):
        Policy(hi, lo, 3)


def test_uncalibrated_mean_of_informative_stages() -> None:
    m = UncalibratedModel(0.8, 0.2)
    assert m.confidence(0, {"conf_token": 0.6}) == pytest.approx(0.6)
    assert m.confidence(1, {"conf_token": 0.6, "conf_consistency": 1.0}) == pytest.approx(0.8)
    # an uninformative stage leaves no conf_* key: the mean stays on the informative ones
    assert m.confidence(2, {"conf_token": 0.6, "conf_semantic": 0.3}) == pytest.approx(0.45)
    assert m.confidence(0, {}) == 0.0
    choice = m.policy(0.1, 2)
    policy = choice.policy
    assert (policy.answer_threshold, policy.abstain_threshold, policy.max_stage) == (0.8, 0.2, 2)
    assert choice.target_risk is None and m.calibrated is False
    assert choice.reason is not None and choice.reason.startswith("uncalibrated:")
