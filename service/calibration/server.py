"""Start a local ``candor serve`` subprocess for ``candor calibrate`` without ``--server``.

Started the way ``make serve`` starts it, on a free loopback port, with exactly the
serving settings of this environment (an artifact pins the settings its scores were
collected under): only the address, the admission ceiling, the per-request budget and,
when the questions ask for more, the token limit are set here, none of which changes a
signal. Stopped (process group) when the run ends. A server that does not start raises
``ServerStartError`` with the reason from its log, in one line.
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


class ServerStartError(RuntimeError):
    """The auto-started server exited or never became ready; the message says why."""


def reason_from_log(log_path: Path) -> str:
    """The most telling line of a failed server's log (the last error line, else the last)."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines):
        if "error" in ln.lower() or ln.startswith("candor:"):
            return ln[-400:]
    return lines[-1][-400:] if lines else "no output"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(base: dict[str, str], port: int, max_tokens: int,
               extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The auto-started server's environment: ``base`` plus only settings that change no
    signal. Raises ``ServerStartError`` when the resulting settings are invalid."""
    from pydantic import ValidationError

    from service.config import Settings

    def settings(env: dict[str, str]) -> Settings:
        keys = {k[len("CANDOR_"):].lower(): v for k, v in env.items()
                if k.startswith("CANDOR_") and v != ""}
        return Settings.model_validate(keys)

    try:
        limit = max(settings(base).max_tokens_limit, max_tokens)
        env = {**base, "CANDOR_HOST": "127.0.0.1", "CANDOR_PORT": str(port),
               "CANDOR_MAX_TOKENS_LIMIT": str(limit), "CANDOR_MAX_BUDGET_MS": "600000",
               "CANDOR_MAX_INFLIGHT": "64", "CANDOR_ADMISSION": "fixed",  # batch: throughput
               **(extra_env or {})}
        env.pop("CANDOR_CALIBRATION", None)  # collect with the uncalibrated cascade
        settings(env)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ServerStartError(f"the CANDOR_* settings are invalid: "
                               f"{'.'.join(map(str, first['loc'])) or 'settings'}: "
                               f"{first['msg']}") from exc
    return env


@contextmanager
def local_server(log_path: Path, max_tokens: int, extra_env: dict[str, str] | None = None,
                 ready_timeout_s: float = 600.0, check: bool = True) -> Iterator[str]:
    """Yield the base URL of a ready server; the server's log goes to ``log_path``."""
    port = _free_port()
    env = (server_env(dict(os.environ), port, max_tokens, extra_env) if check else
           {**os.environ, "CANDOR_HOST": "127.0.0.1", "CANDOR_PORT": str(port),
            **(extra_env or {})})
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
                    raise ServerStartError(f"the local candor serve exited early: "
                                           f"{reason_from_log(log_path)} (log: {log_path})")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"the local candor serve was not ready in "
                                           f"{ready_timeout_s:.0f}s (log: {log_path})")
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
