"""The engine queue (sequences, priorities, admission by expected wait), the gate around the
engine, the fixed pools, and what a vLLM server's /metrics says of its load."""

from __future__ import annotations

import asyncio

import pytest

from service.admission.gate import GatedEngine, admitted
from service.admission.limiter import Limiter
from service.admission.queue import ESCALATION, NEW, Drain, EngineQueue
from service.config import Settings
from service.engine.load import parse_load
from service.engine.protocol import ChatMessage, EngineLoad, GenParams
from service.errors import Overloaded
from service.metrics import Metrics
from service.state import CandorState
from tests.fakes import FakeEngine


async def _waiter(q: EngineQueue, seqs: int, priority: int, log: list[str],
                  name: str) -> asyncio.Task[int]:
    async def go() -> int:
        take = await q.acquire(seqs, priority)
        log.append(name)
        return take

    task = asyncio.create_task(go())
    await asyncio.sleep(0)  # it joins the queue now, in this order
    return task


async def _settle() -> None:
    await asyncio.sleep(0.01)  # a granted waiter resumes


async def test_calls_start_at_once_while_the_engine_has_room() -> None:
    q = EngineQueue(capacity=4, queue_max=8)
    assert [await q.acquire(1, NEW), await q.acquire(2, ESCALATION)] == [1, 2]
    log: list[str] = []
    two = await _waiter(q, 2, NEW, log, "two")  # 1 free: it waits
    assert log == [] and q.running == 3 and q.waiting == 2
    q.release(1)
    assert await two == 2 and q.running == 4
    # a call larger than the engine takes the whole engine, once it runs alone
    q2 = EngineQueue(capacity=4, queue_max=8)
    assert await q2.acquire(10, ESCALATION) == 4 and q2.running == 4


async def test_escalations_go_before_new_arrivals_and_the_head_is_never_overtaken() -> None:
    q = EngineQueue(capacity=4, queue_max=8)
    await q.acquire(3, NEW)
    log: list[str] = []
    new1 = await _waiter(q, 2, NEW, log, "new1")  # 1 free: waits
    esc = await _waiter(q, 3, ESCALATION, log, "esc")  # arrives later, goes first
    assert not esc.done()
    new2 = await _waiter(q, 1, NEW, log, "new2")  # would fit in the 1 free: must not pass
    assert log == [] and q.waiting == 6
    q.release(3)
    await _settle()
    assert log == ["esc"] and q.running == 3  # new1 (2) does not fit beside it
    q.release(3)
    await asyncio.gather(new1, new2)
    assert log == ["esc", "new1", "new2"] and q.running == 3 and q.waiting == 0


async def test_a_cancelled_wait_leaves_the_queue_as_if_never_joined() -> None:
    q = EngineQueue(capacity=2, queue_max=8)
    await q.acquire(2, NEW)
    log: list[str] = []
    big = await _waiter(q, 2, ESCALATION, log, "big")
    small = await _waiter(q, 1, NEW, log, "small")
    big.cancel()  # the client went away while its stage waited
    with pytest.raises(asyncio.CancelledError):
        await big
    assert q.waiting == 1 and q.running == 2
    q.release(1)
    assert await small == 1 and q.running == 2 and q.waiting == 0


def test_drain_rate_is_littles_law_and_ignores_idle_time() -> None:
    d = Drain()
    assert d.rate is None
    for _ in range(50):
        d.done(seconds=2.0, running=8)  # 8 sequences at once, 2 s each: 4 per second
    assert d.rate == pytest.approx(4.0)


def _busy_queue(rate_seqs: int = 8, seconds: float = 2.0) -> EngineQueue:
    q = EngineQueue(capacity=4, queue_max=3)
    for _ in range(50):
        q.drain.done(seconds, rate_seqs)  # 4 sequences per second, 2 s each
    q.running = 4
    return q


def test_admission_refuses_when_the_wait_would_blow_the_budget() -> None:
    q = _busy_queue()
    q.admit(budget_s=30.0)  # waits 1/4 s + runs 2 s: fits 30 s
    q.admit(budget_s=30.0)
    assert q.pending == 2 and q.expected_wait() == pytest.approx(0.75)
    with pytest.raises(Overloaded) as exc:
        q.admit(budget_s=4.5)  # 0.75 s of wait + its pass at SLACK x 2 s > 4.5 s
    # Retry-After: what is queued (2) and running (4) drains at 4 per second
    assert exc.value.headers["Retry-After"] == "2" and q.pending == 2
    with pytest.raises(Overloaded):  # a request that may escalate needs two passes
        q.admit(budget_s=5.0, passes=2)
    q.admit(budget_s=5.0)
    assert q.pending == 3


def test_admission_refuses_beyond_queue_max_and_never_on_an_idle_engine() -> None:
    q = _busy_queue()
    for _ in range(3):
        q.admit(budget_s=60.0)
    with pytest.raises(Overloaded, match="queue_max"):
        q.admit(budget_s=60.0)
    idle = EngineQueue(capacity=4, queue_max=3)
    idle.drain = q.drain
    idle.admit(budget_s=0.001)  # nothing to wait for: its own budget is its own business
    assert idle.pending == 1


async def test_a_request_that_cannot_start_in_its_budget_gets_429_not_a_timeout() -> None:
    q = EngineQueue(capacity=1, queue_max=8)
    gate = GatedEngine(FakeEngine(), q)
    msgs = [ChatMessage("user", "What is 2 + 2?")]
    await q.acquire(1, NEW)  # the engine is busy
    with pytest.raises(Overloaded, match="within its budget") as exc:
        async with admitted(q, budget_s=0.2):
            await gate.generate(msgs, GenParams(), "r1")
    assert "Retry-After" in exc.value.headers
    assert q.pending == 0 and q.waiting == 0 and q.running == 1
    q.release(1)
    async with admitted(q, budget_s=0.2) as ticket:  # free again: it runs
        await gate.generate(msgs, GenParams(), "r2")
        assert ticket.calls == 1 and not ticket.pending
    assert q.running == 0 and q.drain.rate is not None


async def test_a_requests_later_calls_are_escalations() -> None:
    q = EngineQueue(capacity=2, queue_max=8)
    engine = FakeEngine()
    gate = GatedEngine(engine, q)
    msgs = [ChatMessage("user", "q")]
    await q.acquire(2, NEW)
    log: list[str] = []

    async def request(name: str) -> None:
        async with admitted(q, budget_s=60.0):
            await gate.generate(msgs, GenParams(), f"{name}-greedy")
            log.append(f"{name} greedy")
            await gate.generate(msgs, GenParams(n=2, temperature=1.0), f"{name}-samples")
            log.append(f"{name} samples")

    a = asyncio.create_task(request("a"))
    await asyncio.sleep(0)
    q.release(1)  # room for a's greedy
    await asyncio.sleep(0.01)
    b = asyncio.create_task(request("b"))  # b's greedy now waits behind a's samples
    await asyncio.sleep(0.01)
    q.release(1)
    await asyncio.gather(a, b)
    assert log == ["a greedy", "a samples", "b greedy", "b samples"]


async def test_an_ended_request_that_never_called_the_engine_leaves_no_pending() -> None:
    q = EngineQueue(capacity=2, queue_max=1)
    with pytest.raises(ValueError):
        async with admitted(q, budget_s=1.0):
            raise ValueError("bad input, found before the greedy pass")
    assert q.pending == 0
    async with admitted(q, budget_s=1.0):  # the one queue place is free again
        pass


class SharedEngine(FakeEngine):
    reported: EngineLoad | None = None

    async def load(self) -> EngineLoad | None:
        return self.reported


async def test_a_shared_engines_foreign_load_takes_room_but_ours_always_fits_alone() -> None:
    engine = SharedEngine()
    engine.reported = EngineLoad(running=3, waiting=0)
    q = EngineQueue(capacity=4, queue_max=8)
    gate = GatedEngine(engine, q, load_interval_s=0.01)
    msgs = [ChatMessage("user", "q")]
    await gate.generate(msgs, GenParams(), "warm")  # starts the poller
    await asyncio.sleep(0.03)
    assert q.free() == 1
    await q.acquire(1, NEW)
    engine.reported = EngineLoad(running=4, waiting=0)  # the engine counts ours too
    await asyncio.sleep(0.03)
    log: list[str] = []
    waiting = await _waiter(q, 1, NEW, log, "second")
    await asyncio.sleep(0.03)
    assert log == []  # 3 others + 1 of ours: full
    engine.reported = EngineLoad(running=1, waiting=1)  # two of the others finished
    await asyncio.sleep(0.03)
    assert await waiting == 1 and log == ["second"]
    engine.reported = EngineLoad(running=0, waiting=0, kv_cache_usage=0.99)
    await asyncio.sleep(0.03)
    assert q.free() <= 0  # a full KV cache: no room beyond what runs
    q.release(2)
    assert await q.acquire(3, NEW) == 3  # alone, a call of ours always starts
    await gate.aclose()


def test_parse_load_reads_vllms_scheduler_gauges() -> None:
    text = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 2.0\n'
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{engine="0",model_name="m"} 4.0\n'
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5\n')
    assert parse_load(text) == EngineLoad(running=5, waiting=4, kv_cache_usage=0.5)
    assert parse_load("# TYPE other gauge\nother 1\n") is None
    assert parse_load("<html>not metrics</html>") is None


async def test_fixed_pools_shed_at_their_ceiling() -> None:
    limiter = Limiter("feedback", ceiling=1)
    async with limiter.slot():
        with pytest.raises(Overloaded) as exc:
            async with limiter.slot():
                pass
        assert exc.value.headers["Retry-After"] == "1"
    assert limiter.inflight == 0 and limiter.shed == 1


def test_pools_and_queue_from_settings() -> None:
    metrics = Metrics()
    state = CandorState.build(Settings(max_inflight=6, engine_sequences=12, queue_max=5),
                              metrics=metrics)
    assert set(state.limiters) == {"answers", "score", "feedback"}
    assert state.limiters["answers"].ceiling is None  # the queue admits answers
    assert state.limiters["feedback"].ceiling == Settings().max_inflight_feedback
    assert state.queue is not None and (state.queue.capacity, state.queue.queue_max) == (12, 5)
    assert metrics.registry.get_sample_value("candor_admission_limit", {"pool": "score"}) == 6
    assert metrics.registry.get_sample_value("candor_engine_sequences",
                                             {"state": "running"}) == 0
    fixed = CandorState.build(Settings(admission="fixed", max_inflight=5))
    assert fixed.queue is None and fixed.limiters["answers"].ceiling == 5
    assert Settings(admission="adaptive").admission == "queue"  # the old name
