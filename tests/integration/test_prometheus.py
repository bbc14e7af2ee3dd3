"""A real Prometheus scrapes the real Candor server; every dashboard and alert query must work.

Prometheus (Debian's package, installed by ``make test``) runs on loopback with a 1 s
scrape interval and the shipped alert rules. The test sends a mix of answered, abstained
and bad-input requests (thresholds forced per request, tiny ``max_tokens``), then checks
that the server's counters moved exactly as the responses say, that Prometheus saw the
same values, and that every PromQL expression of every panel and alert parses and
returns data. The session server is shared, so counts are deltas of ``/metrics``; it is
recalibrated from its own audited labels first (``live_promise``), so the live promise and
drift panels and alerts have series.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import REPO, LiveServer, free_port

sys.path.insert(0, str(REPO / "deploy" / "tools"))
from dashboard_queries import (  # noqa: E402
    RULES,
    alert_rules,
    alert_values,
    panel_queries,
    to_promql,
)

pytestmark = pytest.mark.integration

ANSWER = {"max_stage": 0, "answer_threshold": 0.0}  # any confidence answers at stage 0
ABSTAIN = {"max_stage": 0, "answer_threshold": 1.0, "abstain_threshold": 1.0}
HOPELESS = {"max_stage": 1, "answer_threshold": 1.0, "abstain_threshold": 1.0}
ALL_STAGES = {"max_stage": 3, "run_all": True, "answer_threshold": 0.5, "abstain_threshold": 0.0}
QUESTIONS = ("What is 2 + 3?", "What is the capital of France?", "Name a primary colour.")
BAD_INPUTS = (  # (body, expected status)
    ({"question": "   "}, 422),
    ({"question": "hi", "policy": {"max_stage": 9}}, 422),
    ({"question": "hi", "max_tokens": 100_000}, 400),
)


@dataclass
class Traffic:
    before: dict[tuple[str, frozenset[tuple[str, str]]], float]
    after: dict[tuple[str, frozenset[tuple[str, str]]], float]
    answers: list[dict[str, object]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    exposition: str = ""
    started: float = 0.0

    def delta(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)


def scrape(client: httpx.Client) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    text = client.get("/metrics").text
    values = {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    return text, values


def start_prometheus(tmp: Path, target: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the `prometheus` binary is missing: `make test` installs Debian's package")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "candor", "static_configs": [{"targets": [target]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"prometheus not ready:\n{log.read_text()[-3000:]}")


def query(prom: httpx.Client, expr: str) -> list[dict[str, object]]:
    r = prom.get("/api/v1/query", params={"query": expr})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def prom(live_server: LiveServer, live_promise: object,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on the session server, after the server was recalibrated and reloaded
    (``live_promise``), so the promise and drift series exist."""
    target = live_server.url.removeprefix("http://")
    proc, url, _log = start_prometheus(tmp_path_factory.mktemp("prometheus"), target)
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            wait_for(lambda: [r for r in query(c, 'up{job="candor"}')
                              if r["value"][1] == "1"], 30, "the first scrape")  # type: ignore[index]
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def send_mix(api: httpx.Client) -> tuple[list[dict[str, object]], list[int]]:
    """Answered, abstained (two reasons), full and stage-1 cascades, bad input; 3 at a time."""
    bodies: list[dict[str, object]] = []
    for q in QUESTIONS:
        for policy in (ANSWER, ABSTAIN, HOPELESS):
            bodies.append({"question": q, "max_tokens": 8, "policy": policy})
    bodies.append({"question": QUESTIONS[0], "max_tokens": 8, "policy": ALL_STAGES})
    # a cascade that stops at stage 1 (one-token samples: cheap); may come out homogeneous
    bodies.append({"question": "Is Paris in France? Answer yes or no.", "max_tokens": 1,
                   "policy": {"max_stage": 1, "run_all": True}})

    def post(body: dict[str, object]) -> httpx.Response:
        return api.post("/v1/answer", json=body)

    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(post, bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    statuses = []
    for body, status in BAD_INPUTS:
        r = api.post("/v1/answer", json=body)
        assert r.status_code == status and "error" in r.json(), r.text
        statuses.append(status)
    return [r.json() for r in responses], statuses


@pytest.fixture(scope="module")
def traffic(prom: str, api: httpx.Client) -> Traffic:
    started = time.time()
    _, before = scrape(api)
    answers, statuses = send_mix(api)
    time.sleep(3)
    more, more_statuses = send_mix(api)  # a second round: rates see a change over time
    exposition, after = scrape(api)
    t = Traffic(before, after, answers + more, statuses + more_statuses, exposition, started)
    want = t.after[("candor_requests_total",
                    frozenset({"endpoint": "/v1/answer", "decision": "error"}.items()))]
    with httpx.Client(base_url=prom, timeout=10) as c:  # Prometheus has scraped the end state
        wait_for(lambda: [r for r in query(
            c, 'candor_requests_total{endpoint="/v1/answer",decision="error"}')
            if float(r["value"][1]) == want], 30, "a scrape after the traffic")  # type: ignore[index]
    return t


def test_counters_match_the_responses(traffic: Traffic) -> None:
    answers = traffic.answers
    decisions = Counter(str(a["decision"]) for a in answers)
    assert decisions["answer"] >= 3 and decisions["abstain"] >= 6  # forced by the thresholds
    for decision in ("answer", "abstain"):
        got = traffic.delta("candor_requests_total", endpoint="/v1/answer", decision=decision)
        assert got == decisions[decision], decision
    assert traffic.delta("candor_requests_total", endpoint="/v1/answer",
                         decision="error") == len(traffic.statuses)
    for status, n in Counter(str(s) for s in traffic.statuses).items():
        assert traffic.delta("candor_errors_total", status=status) == n
    reasons = Counter(str(a["reason"]) for a in answers if a["abstained"])
    assert reasons["hopeless"] >= 3 and reasons["low_confidence"] >= 3
    for reason, n in reasons.items():
        assert traffic.delta("candor_abstentions_total", reason=reason) == n
    for stage, n in Counter(str(a["stage_reached"]) for a in answers).items():
        assert traffic.delta("candor_stage_reached_total", stage=stage) == n
    tokens: Counter[str] = Counter()
    for a in answers:
        for st in a["stages"]:  # type: ignore[attr-defined]
            tokens[st["name"]] += st["tokens"]
    assert set(tokens) == {"token", "consistency", "semantic", "judge"}
    for name, n in tokens.items():
        assert traffic.delta("candor_tokens_total", stage=name) == n
    assert traffic.delta("candor_confidence_count") == len(answers)
    assert traffic.delta("candor_confidence_sum") == pytest.approx(
        sum(float(a["confidence"]) for a in answers), abs=1e-6)  # type: ignore[arg-type]
    assert traffic.delta("candor_tokens_per_request_sum") == sum(
        a["usage"]["completion_tokens"] for a in answers)  # type: ignore[index]
    homogeneous = sum(1 for a in answers if a["signals"]["homogeneous"])  # type: ignore[index]
    assert traffic.delta("candor_homogeneous_total") == homogeneous
    assert traffic.after[("candor_queue_depth", frozenset())] == 0


def test_vllm_engine_metrics_are_served(traffic: Traffic) -> None:
    for name in ("vllm:num_requests_waiting", "vllm:num_requests_running",
                 "vllm:kv_cache_usage_perc", "vllm:generation_tokens_total"):
        assert f"\n{name}{{" in traffic.exposition, name
    generated = sum(v for (n, _), v in traffic.after.items() if n == "vllm:generation_tokens_total")
    assert generated > 0


def test_prometheus_stored_the_server_values(prom: str, traffic: Traffic) -> None:
    with httpx.Client(base_url=prom, timeout=10) as c:
        for r in query(c, 'candor_requests_total{endpoint="/v1/answer"}'):
            labels = r["metric"]  # type: ignore[assignment]
            key = ("candor_requests_total", frozenset(
                {"endpoint": labels["endpoint"], "decision": labels["decision"]}.items()))
            assert float(r["value"][1]) == traffic.after[key]  # type: ignore[index]
        reasons = {r["metric"]["reason"]: float(r["value"][1])  # type: ignore[index]
                   for r in query(c, "candor_abstentions_total")}
        for (name, labels), value in traffic.after.items():
            if name == "candor_abstentions_total":
                assert reasons[dict(labels)["reason"]] == value


def _check(prom: httpx.Client, what: str, expr: str, failures: list[str]) -> None:
    try:
        result = query(prom, expr)
    except AssertionError as exc:
        failures.append(f"{what}: does not parse or fails: {exc}")
        return
    values = [float(r["value"][1]) for r in result]  # type: ignore[index]
    if not values:
        failures.append(f"{what}: returns nothing: {expr}")
    elif not any(math.isfinite(v) for v in values):
        failures.append(f"{what}: only NaN/Inf: {expr}")


def test_every_dashboard_query_returns_data(prom: str, traffic: Traffic) -> None:
    failures: list[str] = []
    queries = panel_queries()
    assert len(queries) >= 15
    with httpx.Client(base_url=prom, timeout=10) as c:
        for q in queries:
            _check(c, f"panel {q.panel!r} {q.ref_id}", to_promql(q.expr), failures)
    assert not failures, "\n".join(failures)


def test_every_alert_parses_and_its_values_return_data(prom: str, traffic: Traffic) -> None:
    failures: list[str] = []
    with httpx.Client(base_url=prom, timeout=10) as c:
        for rule in alert_rules():
            query(c, rule.expr)  # the whole condition parses and evaluates (may be empty)
            for i, value in enumerate(alert_values(rule.expr)):
                _check(c, f"alert {rule.name} value {i}", value, failures)
        loaded = c.get("/api/v1/rules").json()["data"]["groups"]
        rules = [r for g in loaded for r in g["rules"]]
        assert {r["name"] for r in rules} == {a.name for a in alert_rules()}
        for r in rules:
            if r.get("health") != "ok":
                failures.append(f"rule {r['name']} health={r.get('health')}: {r.get('lastError')}")
    assert not failures, "\n".join(failures)


def test_dashboard_renders_from_prometheus(prom: str, traffic: Traffic,
                                           tmp_path: Path) -> None:
    """The PNG in docs/img is drawn by this path (set CANDOR_DASHBOARD_PNG to write it)."""
    from render_dashboard import render

    out = Path(os.environ.get("CANDOR_DASHBOARD_PNG") or tmp_path / "dashboard.png")
    drawn = render(prom, out, traffic.started - 5, time.time(), step=1.0, rate="15s")
    assert drawn >= 10 and out.stat().st_size > 10_000
