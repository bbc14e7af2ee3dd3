"""Schemathesis against the live OpenAPI schema of the real session server.

Every operation in ``/openapi.json`` gets positive cases (valid by the schema) and
negative cases (invalid by the schema); every response must be documented, match its
schema, carry the right content type, and never be a 5xx. Bounded: a few examples per
operation, and the engine work of a valid generating case is capped (``max_tokens`` <= 8,
``policy.budget_ms`` <= 15000) so one case costs seconds, not a full cascade; everything
else in the body stays as generated. Schemathesis's ``positive_data_acceptance`` check is
left out on purpose: rules the schema cannot express (``top_logprobs`` needs
``token_logprobs``, ``max_tokens`` within the server's limit, the prompt within the
model's context) answer a documented 400 that names the field, which is correct.
Set ``CANDOR_FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from tests.integration.conftest import LiveServer  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CANDOR_FUZZ_EXAMPLES", "8"))
GENERATING = {"/v1/answer", "/v1/chat/completions"}
MAX_TOKENS, BUDGET_MS = 8, 15000


def bound_cost(body: Any) -> None:
    """Cap the engine work of a valid generating request (in place)."""
    if not isinstance(body, dict):
        return
    for key in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(key), int) and body[key] >= 1:
            body[key] = min(body[key], MAX_TOKENS)
    body.setdefault("max_tokens", MAX_TOKENS)
    policy = body.setdefault("policy", {})
    if isinstance(policy, dict):
        budget = policy.get("budget_ms")
        ok = isinstance(budget, int) and not isinstance(budget, bool) and budget >= 1
        policy["budget_ms"] = min(budget, BUDGET_MS) if ok else BUDGET_MS


def own_deadline(body: Any) -> bool:
    """The request set a budget shorter than the cap (a 504 then answers it correctly)."""
    policy = body.get("policy") if isinstance(body, dict) else None
    budget = policy.get("budget_ms") if isinstance(policy, dict) else None
    return isinstance(budget, int) and budget < BUDGET_MS


def run_operation(op: Any, mode: GenerationMode, base_url: str, n: int,
                  tally: Counter[str]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and op.path in GENERATING:
            bound_cost(case.body)
        resp = case.call_and_validate(base_url=base_url, timeout=120,
                                      excluded_checks=[positive_data_acceptance])
        tally[f"{op.method.upper()} {op.path} {mode.value} {resp.status_code}"] += 1
        if resp.status_code == 504 and own_deadline(case.body):
            tally["deadline_504"] += 1  # the caller's own budget ran out: documented, correct
            return
        assert resp.status_code < 500, resp.text[:500]

    try:
        check()
    except Unsatisfiable:  # no invalid input exists (an operation without parameters)
        assert mode is GenerationMode.NEGATIVE


def test_schemathesis_live_schema(live_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {"/v1/answer", "/v1/feedback", "/healthz"} <= {o.path for o in ops}
    tally: Counter[str] = Counter()
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(op, mode, live_server.url, EXAMPLES, tally)
    total = sum(v for k, v in tally.items() if k != "deadline_504")
    server_errors = sum(v for k, v in tally.items() if k.split()[-1].startswith("5")
                        ) - tally["deadline_504"]
    print("\nFUZZ_REPORT " + json.dumps({"operations": len(ops), "cases": total,
                                         "server_errors": server_errors,
                                         "by_status": dict(sorted(tally.items()))}))
    assert total > 0 and server_errors == 0
