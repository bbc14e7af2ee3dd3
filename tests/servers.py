"""For tests that run a real server process: a free port, a Python server script started
from the repository, and the wait for its ``/readyz``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(script: str, *args: str) -> subprocess.Popen[bytes]:
    """``python -c script args...`` in the repository, with it on the import path."""
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_ready(url: str, timeout_s: float = 60.0) -> bool:
    """True once ``url``/readyz answers 200, False after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.1)
    return False
