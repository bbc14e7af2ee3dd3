"""``benchmarks/load.py --quick`` (issue 25's load test on the real engine), run as
docs/performance.md writes it, with the criteria that hold on a busy 2-core box asserted
on its final JSON line: below capacity and in the mixed workload no 429 (the OpenAI SDK's
retries included) and no 5xx; under 4x overload every rejection a 429 with
``Retry-After``, none a 5xx or a dropped connection, sent = ok + 429 exactly; the queue
empty afterwards. Throughput ratios and the accepted p99 are reported, not asserted: they
move with whatever else runs on the CPUs. And ``benchmarks/overhead.py`` runs (it crashed
with 429 under the old adaptive limit)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "benchmarks/load.py", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("(")]  # vLLM's logs
    print("\n".join(lines[:-1]) + f"\nLOAD_BENCHMARK_S {time.monotonic() - t0:.0f}")
    rep: dict[str, Any] = json.loads(lines[-1])
    return rep


def clean(side: dict[str, Any]) -> None:
    """No 429 received (retried or not), no 5xx, no failure, everything answered."""
    assert side["status"] == {"200": side["sent"]}, side
    assert side["dropped"] == 0, (side["side"], side["dropped_by"])
    assert side["ok"] == side["sent"] and side["failed"] == 0, side


def test_below_capacity_and_mixed_load_are_never_refused(report: dict[str, Any]) -> None:
    for row in report["below"]:
        raw, *candor = row["sides"]
        assert raw["ok"] == raw["sent"] > 0, raw
        for side in candor:
            clean(side)
    clean(report["mixed"])
    clean(report["overload"]["unloaded"])


def test_overload_sheds_with_429_only(report: dict[str, Any]) -> None:
    over = report["overload"]
    status = {int(k): v for k, v in over["status"].items()}
    assert set(status) <= {200, 429}, over  # no 504, no 5xx
    assert over["dropped"] == 0, over["dropped_by"]  # no request lost with its connection
    assert over["sent"] == over["ok"] + status.get(429, 0), over  # nor any other way
    assert over["no_retry_after"] == 0, over
    assert status.get(200, 0) > 0, over  # overload sheds, it does not refuse everyone
    assert report["left"] == [0, 0, 0, 0], report


def test_overhead_benchmark_runs_under_the_default_admission() -> None:
    """docs/performance.md's `benchmarks/overhead.py` crashed with 429 at c=8 under the
    adaptive limit; it now runs under the default admission, raw and Candor on the same
    prompts (4 questions, one round: a smoke run; the figures come from the full run)."""
    proc = subprocess.run([sys.executable, "benchmarks/overhead.py", "--max-tokens", "4",
                           "--rounds", "1", "--questions", "4"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [ln for ln in proc.stdout.splitlines() if not ln.startswith("(")]
    print("\n".join(out))
    ratios = [ln for ln in out if ln.strip().startswith(("c=1:", "c=8:"))]
    assert len(ratios) == 4 and all("throughput ratio" in ln for ln in ratios), out
