"""Start a local ``candor serve`` subprocess for ``candor calibrate`` without ``--server``.

Started the way ``make serve`` starts it, on a free loopback port, with bounded
work per request; stopped (process group) when the run ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(log_path: Path, max_tokens: int, extra_env: dict[str, str] | None = None,
                 ready_timeout_s: float = 600.0) -> Iterator[str]:
    """Yield the base URL of a ready server; the server's log goes to ``log_path``."""
    port = _free_port()
    env = {
        **os.environ, "CANDOR_HOST": "127.0.0.1", "CANDOR_PORT": str(port),
        "CANDOR_MAX_TOKENS_LIMIT": str(max(64, max_tokens)),
        "CANDOR_SAMPLE_MAX_TOKENS": str(max_tokens), "CANDOR_MAX_BUDGET_MS": "600000",
        "CANDOR_MAX_INFLIGHT": "64", **(extra_env or {}),
    }
    env.pop("CANDOR_CALIBRATION", None)  # collect with the uncalibrated cascade
    exe = Path(sys.executable).with_name("candor")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(exe), "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        with httpx.Client(base_url=url, timeout=5) as c:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"candor serve exited early; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"candor serve not ready in {ready_timeout_s}s")
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(1.0)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
