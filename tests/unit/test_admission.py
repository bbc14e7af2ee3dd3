"""The engine queue (sequences, priorities, admission by expected wait), the gate around the
engine, the fixed pools, and what a vLLM server's /metrics says of its load."""

from __future__ import annotations

import asyncio

import pytest

from service.admission.gate import GatedEngine, admitted, planned_passes
from service.admission.limiter import Limiter
from service.admission.queue import EngineQueue
from service.admission.speed import ESCALATION, NEW, Pass, Speed
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


GREEDY = Pass(1, 7, NEW)
SAMPLES = Pass(4, 7, ESCALATION)


def test_speed_learns_a_roofline_and_caps_tokens_by_what_passes_generate() -> None:
    sp = Speed()
    assert sp.pass_s(GREEDY, others=0) == 0.0  # unmeasured: nothing is predicted
    for _ in range(100):
        sp.done(NEW, tokens=9, seconds=1.0, running=1)  # alone: 9 tokens/s
    assert sp.single == pytest.approx(9.0) and sp.total is None
    sp.done(NEW, tokens=9, seconds=1.0, running=4)  # 4 at full speed: no saturation seen
    assert sp.total is None and sp.pass_s(Pass(1, 9), others=7) == pytest.approx(1.0)
    for _ in range(200):
        sp.done(NEW, tokens=9, seconds=4.0, running=8)  # 8 at once: 2.25 each, 18 in all
    assert sp.total == pytest.approx(18.0, rel=1e-3) and sp.single == pytest.approx(9.0)
    assert sp.pass_s(Pass(1, 9), others=7) == pytest.approx(9 / 2.25, rel=1e-3)
    assert sp.pass_s(Pass(1, 9), others=0) == pytest.approx(1.0)  # alone: its own speed
    # a pass of up to 100 tokens is budgeted at what greedy passes generate (9)
    assert sp.pass_s(Pass(1, 100), others=0) == pytest.approx(1.0)


def _busy_queue() -> EngineQueue:
    q = EngineQueue(capacity=4, queue_max=3)
    q.speed = Speed(total=8.0, single=4.0, typical={NEW: 3.0, ESCALATION: 3.0})
    q.running = 4  # full: each new sequence would get 8 / 5 = 1.6 tokens/s
    return q


def test_admission_refuses_when_the_wait_and_the_work_would_blow_the_budget() -> None:
    q = _busy_queue()
    greedy_s = 1.5 * 3 / 1.6  # SLACK x 3 typical tokens / its share
    q.admit(budget_s=30.0, passes=[GREEDY])
    q.admit(budget_s=30.0, passes=[GREEDY])
    assert q.pending == 2 and q.expected_wait() == pytest.approx(2 * 3 / 8)  # 2 ahead
    assert q.need_s([GREEDY]) == pytest.approx(greedy_s)
    with pytest.raises(Overloaded) as exc:
        q.admit(budget_s=0.75 + greedy_s - 0.1, passes=[GREEDY])
    # Retry-After: 2 queued and 4 running, 3 tokens each, at 8 tokens/s
    assert exc.value.headers["Retry-After"] == "3" and q.pending == 2
    with pytest.raises(Overloaded):  # one that may escalate needs its samples' time too
        q.admit(budget_s=0.75 + greedy_s + 0.1, passes=[GREEDY, SAMPLES])
    q.admit(budget_s=0.75 + greedy_s + 0.1, passes=[GREEDY])
    assert q.pending == 3


def test_admission_refuses_beyond_queue_max_and_never_on_an_idle_engine() -> None:
    q = _busy_queue()
    for _ in range(3):
        q.admit(budget_s=60.0, passes=[GREEDY])
    with pytest.raises(Overloaded, match="queue_max"):
        q.admit(budget_s=60.0, passes=[GREEDY])
    idle = EngineQueue(capacity=4, queue_max=3, speed=q.speed)
    idle.admit(budget_s=0.001, passes=[GREEDY, SAMPLES])  # its budget is its own business
    assert idle.pending == 1


def test_the_limit_follows_the_engines_saturation_point_above_a_floor() -> None:
    q = EngineQueue(capacity=32, queue_max=8, floor=11)
    assert q.limit == 32  # not seen saturated: the configured capacity
    q.speed = Speed(total=80.0, single=10.0)  # saturates at 8 sequences
    assert q.limit == 16  # twice the knee: more would only lengthen every pass
    q.speed = Speed(total=30.0, single=10.0)
    assert q.limit == 11  # never below one escalation and a greedy pass
    q.speed = Speed(total=1000.0, single=10.0)
    assert q.limit == 32  # never above CANDOR_ENGINE_SEQUENCES


def test_planned_passes_follow_the_stages_that_call_the_engine() -> None:
    assert planned_passes(0, 24, 10, 16) == [Pass(1, 24, NEW)]
    assert planned_passes(2, 24, 10, 16) == [Pass(1, 24, NEW), Pass(10, 16, ESCALATION)]
    assert planned_passes(3, 8, 10, 16)[1:] == [Pass(10, 8, ESCALATION),
                                               Pass(1, 1, ESCALATION)]


async def test_a_busy_engine_never_starts_an_escalation_that_cannot_finish_in_time() -> None:
    q = EngineQueue(capacity=8, queue_max=8)
    q.speed = Speed(total=8.0, single=4.0, typical={NEW: 3.0, ESCALATION: 3.0})
    gate = GatedEngine(FakeEngine(), q)
    msgs = [ChatMessage("user", "q")]
    async with admitted(q, budget_s=2.0, plan=[GREEDY, SAMPLES]) as ticket:
        await gate.generate(msgs, GenParams(max_tokens=7), "greedy")  # alone: it runs
        assert ticket.plan == [SAMPLES]
        q.speed = Speed(total=8.0, single=4.0, typical={NEW: 3.0, ESCALATION: 3.0})
        await q.acquire(3, NEW)  # others now run: 4 samples would take ~5.5 s of 2
        with pytest.raises(TimeoutError):
            await gate.generate(msgs, GenParams(n=4, max_tokens=7, temperature=1.0), "s")
        assert q.running == 3 and q.waiting == 0  # nothing of it was started
    q.release(3)


async def test_a_request_that_cannot_start_in_its_budget_gets_429_not_a_timeout() -> None:
    q = EngineQueue(capacity=1, queue_max=8)
    gate = GatedEngine(FakeEngine(), q)
    msgs = [ChatMessage("user", "What is 2 + 2?")]
    await q.acquire(1, NEW)  # the engine is busy
    with pytest.raises(Overloaded, match="within its budget") as exc:
        async with admitted(q, budget_s=0.2, plan=[GREEDY]):
            await gate.generate(msgs, GenParams(), "r1")
    assert "Retry-After" in exc.value.headers
    assert q.pending == 0 and q.waiting == 0 and q.running == 1
    q.release(1)
    async with admitted(q, budget_s=0.2, plan=[GREEDY]) as ticket:  # free again: it runs
        await gate.generate(msgs, GenParams(), "r2")
        assert ticket.calls == 1 and not ticket.pending
    assert q.running == 0 and q.speed.measured


async def test_a_requests_later_calls_are_escalations() -> None:
    q = EngineQueue(capacity=2, queue_max=8)
    engine = FakeEngine()
    gate = GatedEngine(engine, q)
    msgs = [ChatMessage("user", "q")]
    await q.acquire(2, NEW)
    log: list[str] = []

    async def request(name: str) -> None:
        async with admitted(q, budget_s=60.0, plan=[GREEDY, SAMPLES]):
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
        async with admitted(q, budget_s=1.0, plan=[GREEDY]):
            raise ValueError("bad input, found before the greedy pass")
    assert q.pending == 0
    async with admitted(q, budget_s=1.0, plan=[GREEDY]):  # the one queue place is free
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
    assert state.queue.floor == Settings().samples_n + 1
    assert metrics.registry.get_sample_value("candor_admission_limit", {"pool": "score"}) == 6
    assert metrics.registry.get_sample_value("candor_engine_sequences",
                                             {"state": "running"}) == 0
    fixed = CandorState.build(Settings(admission="fixed", max_inflight=5))
    assert fixed.queue is None and fixed.limiters["answers"].ceiling == 5
    assert Settings(admission="adaptive").admission == "queue"  # the old name
