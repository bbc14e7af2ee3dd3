"""The adaptive limit (pure, no sleeps), the limiter, and per-request token accounting."""

from __future__ import annotations

import asyncio

import pytest

from service.admission import GradientLimit, Limiter
from service.config import Settings
from service.errors import BadRequest, EngineUnavailable, Overloaded
from service.metrics import Metrics
from service.state import CandorState


def test_steady_latency_grows_the_limit_to_the_ceiling() -> None:
    lim = GradientLimit(limit=4, max_limit=32)
    for _ in range(200):
        lim.update(0.2, inflight=int(lim.limit), dropped=False)
    assert lim.limit == 32


def test_rising_latency_shrinks_the_limit_and_it_recovers() -> None:
    lim = GradientLimit(limit=32, max_limit=32)
    for _ in range(20):
        lim.update(0.2, inflight=32, dropped=False)
    for _ in range(40):  # queueing: latency 4x its long-run level
        lim.update(0.8, inflight=32, dropped=False)
    low = lim.limit
    assert low < 12
    for _ in range(200):  # the queue drained
        lim.update(0.2, inflight=int(lim.limit), dropped=False)
    assert lim.limit > 2 * low


def test_app_limited_samples_do_not_grow_the_limit() -> None:
    lim = GradientLimit(limit=16, max_limit=32)
    for _ in range(100):
        lim.update(0.2, inflight=2, dropped=False)
    assert lim.limit == 16


def test_drop_backs_off_multiplicatively_to_the_floor() -> None:
    lim = GradientLimit(limit=10, max_limit=32)
    assert lim.update(5.0, inflight=10, dropped=True) == pytest.approx(9.0)
    for _ in range(100):
        lim.update(5.0, inflight=10, dropped=True)
    assert lim.limit == 1


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_limiter_sheds_at_the_limit_and_samples_only_successes_and_drops() -> None:
    clock = Clock()
    lim = GradientLimit(limit=2, max_limit=8)
    seen: list[tuple[float, int, bool]] = []
    real = lim.update
    lim.update = lambda rtt, inflight, dropped: seen.append((rtt, inflight, dropped)) or real(  # type: ignore[method-assign]
        rtt, inflight, dropped)
    limiter = Limiter("answers", ceiling=8, limit=lim, clock=clock)
    async with limiter.slot():
        async with limiter.slot():
            with pytest.raises(Overloaded) as exc:
                async with limiter.slot():
                    pass
            assert exc.value.headers["Retry-After"] == "1"
            clock.t = 0.5
    assert limiter.inflight == 0 and limiter.shed == 1
    assert seen == [(0.5, 2, False), (0.5, 1, False)]
    with pytest.raises(BadRequest):
        async with limiter.slot():
            raise BadRequest("bad")
    with pytest.raises(EngineUnavailable):
        async with limiter.slot():
            raise EngineUnavailable("down")
    assert [d for _, _, d in seen] == [False, False, True]  # the 400 was ignored

    async def hang() -> None:
        async with limiter.slot():
            await asyncio.sleep(30)

    task = asyncio.create_task(hang())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.inflight == 0 and len(seen) == 3  # a cancelled request is not a sample


def test_pools_ceiling_and_metric() -> None:
    metrics = Metrics()
    state = CandorState.build(Settings(max_inflight=6, admission_initial_limit=50),
                              metrics=metrics)
    assert set(state.limiters) == {"answers", "score", "feedback"}
    assert state.limiters["feedback"].limit is None  # fixed: CANDOR_MAX_INFLIGHT_FEEDBACK
    assert state.limiters["feedback"].current == Settings().max_inflight_feedback
    assert state.limiters["answers"].current == 6  # max_inflight stays the hard ceiling
    value = metrics.registry.get_sample_value("candor_admission_limit", {"pool": "score"})
    assert value == 6
    fixed = CandorState.build(Settings(admission="fixed", max_inflight=5))
    assert fixed.limiters["answers"].limit is None and fixed.limiters["answers"].current == 5
