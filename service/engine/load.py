"""The load a vLLM server reports on its Prometheus ``/metrics`` page.

vLLM exports ``vllm:num_requests_running`` and ``vllm:num_requests_waiting`` (sequences:
a request with ``n`` samples runs as ``n`` child requests) and ``vllm:kv_cache_usage_perc``
(0-1; ``vllm:gpu_cache_usage_perc`` before v0.10), one sample per engine. The gauges are
refreshed at each engine step, so right after the engine went idle they still show the
last step's count; the admission queue only ever lets them take room it does not hold
itself (``service/admission/gate.py``).
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.engine.protocol import EngineLoad

RUNNING, WAITING = "vllm:num_requests_running", "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def parse_load(text: str) -> EngineLoad | None:
    """Sum the engines' running and waiting sequences, take the fullest KV cache; None when
    the page has no vLLM scheduler gauges (or is not Prometheus text)."""
    running = waiting = 0.0
    kv = 0.0
    seen = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == RUNNING:
                    running, seen = running + sample.value, True
                elif sample.name == WAITING:
                    waiting, seen = waiting + sample.value, True
                elif sample.name in KV_CACHE:
                    kv = max(kv, sample.value)
    except ValueError:
        return None
    return EngineLoad(int(running), int(waiting), kv) if seen else None


def combine(loads: list[EngineLoad | None]) -> EngineLoad | None:
    """Several servers behind one engine: their sums, and the fullest KV cache."""
    got = [x for x in loads if x is not None]
    if not got:
        return None
    return EngineLoad(sum(x.running for x in got), sum(x.waiting for x in got),
                      max(x.kv_cache_usage for x in got))
