"""The guardian (service/guardian.py): nothing a server started outlives it, however it ends.

A fake server (a Python process) starts the guardian for itself, as ``candor serve`` does,
then children that ignore SIGTERM, as vLLM's EngineCore and Worker do: one with a
grandchild, one that leaves an orphan behind while the server still runs. The server is
killed -9, or exits normally: within a few seconds no process it started is left. The
real engine is checked the same way at the end of every integration session
(tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from service import guardian

REPO = Path(__file__).resolve().parents[2]

STUBBORN = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "if len(sys.argv) > 1:\n"
            "    subprocess.Popen([sys.executable, '-c', sys.argv[1]])\n"
            "    time.sleep(float(sys.argv[2]))\n"
            "else:\n"
            "    time.sleep(600)\n")

FAKE_SERVER = f"""
import subprocess, sys, time
from service import guardian
keep = guardian.start()
child = {STUBBORN!r}
leaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", child, leaf, "600"])  # EngineCore -> Worker
subprocess.Popen([sys.executable, "-c", child, leaf, "1.5"])  # exits, its child orphaned
print("ready", flush=True)
if sys.argv[1] == "exit":
    time.sleep(2.5)
    sys.exit(0)  # without stopping its children
time.sleep(600)
"""


def _wait_for(cond: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("end", ["kill9", "exit"])
def test_no_process_outlives_the_server(end: str) -> None:
    server = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, end], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
    seen: dict[int, psutil.Process] = {}
    names: list[str] = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        # guardian, 2 children, 2 grandchildren (the second child exits at 1.5 s, leaving
        # its child orphaned); then the guardian has polled them
        assert _wait_for(lambda: len(_tree(server.pid)) >= 5, 20), _tree(server.pid)
        for p in _tree(server.pid):
            seen[p.pid] = p
            names.append(" ".join(p.cmdline()))
        time.sleep(3 * guardian.POLL_S)
        assert sum("service.guardian" in n for n in names) == 1, names
        assert len(seen) == 5, names
        if end == "kill9":
            t0 = time.monotonic()
            server.send_signal(signal.SIGKILL)
        else:
            server.wait(timeout=20)
            t0 = time.monotonic()
        assert server.wait(timeout=20) in (-signal.SIGKILL, 0)
        alive = guardian.wait_dead(list(seen.values()), 10)  # dead or zombie
        took = time.monotonic() - t0
        print("GUARDIAN_REPORT " + json.dumps({"end": end, "processes": len(seen),
                                               "all_gone_after_s": round(took, 2)}))
        assert not alive, f"outlived the server ({end}): {alive}"
        assert took < 5, took
    finally:
        if server.poll() is None:
            server.kill()
        for p in seen.values():  # never leak a stubborn process into the rest of the suite
            try:
                p.kill()
            except psutil.Error:
                pass


PARENT = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(600)\n")


def _parent() -> tuple[subprocess.Popen[str], int]:
    """A stand-in server with one child (never this test process: a guardian of pytest
    would kill what pytest started, the integration session's server included)."""
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_dead_process_is_forgotten() -> None:
    """Processes are remembered as psutil ``Process`` objects, whose ``is_running`` compares
    (pid, create time): one that died is forgotten at the next poll, never killed later
    under a pid another process got since."""
    server, child_pid = _parent()
    try:
        g = guardian.Guardian(server.pid)
        g.poll()
        (proc,) = [p for p in g.known.values() if p.pid == child_pid]
        assert guardian._alive(proc)
        proc.kill()
        assert guardian.wait_dead([proc], 5) == []
        g.poll()
        assert child_pid not in {p.pid for p in g.known.values()}
        assert g.cleanup() == []
    finally:
        server.kill()
        server.wait()


def test_a_closed_pipe_waits_for_the_server_itself() -> None:
    """The pipe may close just before the server exits (its interpreter's shutdown): the
    guardian acts once the process is gone, not before; a wrong argument is a usage error."""
    server, child_pid = _parent()
    g = guardian.start(server.pid)
    try:
        time.sleep(2 * guardian.POLL_S)
        assert g.stdin is not None
        g.stdin.close()
        time.sleep(1)
        assert g.poll() is None and psutil.pid_exists(child_pid)  # the server lives on
        server.kill()
        server.wait()
        assert g.wait(timeout=10) == 0  # gone: the guardian cleans up and exits
        assert _wait_for(lambda: not psutil.pid_exists(child_pid)
                         or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE, 5)
    finally:
        for proc in (g, server):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert guardian.main(["not-a-pid"]) == 2


def test_the_guardian_imports_no_service_module() -> None:
    """It must stay light: the standard library and psutil only."""
    code = ("import sys; import service.guardian; "
            "print(sorted(m for m in sys.modules if m.startswith(('service.', 'fastapi', "
            "'uvicorn', 'vllm', 'torch', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert out.stdout.strip() == "['service.guardian']", out.stdout
