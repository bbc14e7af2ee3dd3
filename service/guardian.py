"""The engine's guardian: no process of ``candor serve`` outlives it, however it dies.

vLLM runs its engine in child processes (``VLLM::EngineCore``, which starts
``VLLM::Worker``) that ignore SIGTERM and are not told when their parent is killed -9: they
lived on under PID 1 with gigabytes of memory. ``candor serve`` therefore starts this
process first (``start()``), as::

    python -m service.guardian <server pid>      # stdin: a pipe the server never writes to

in a session of its own (a signal to the server's process group does not reach it). It
remembers the server's descendants, ``(pid, create_time)``, every ``POLL_S`` seconds. When
the server is gone, whether it exited, crashed or was killed -9, it kills what is left:

- *gone* means: its parent is no longer the server (it was re-parented: the server died,
  reaped or not), noticed at once when its stdin reaches end of file (the server's end of
  the pipe closed with it), else at the next poll (a forked child may have inherited the
  pipe's write end); a pipe closed by a server that lives on more than ``EXIT_WAIT_S``
  counts as gone too;
- every remembered process still alive with the same ``create_time`` (never a reused pid),
  and the children those have now, gets SIGKILL; Python's ``resource_tracker`` processes
  are spared for ``TRACKER_GRACE_S``: they exit on their own once the processes using
  them are gone, and unlink the shared memory those left in ``/dev/shm``;
- then it exits: silently when nothing was left (a clean shutdown usually leaves
  nothing; a ``VLLM::Worker`` still shutting down is killed), else with one line on
  stderr (the server's log) naming what it killed.

Only the standard library and psutil: it costs one small process and a few milliseconds of
CPU a second (``docs/reliability.md``).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterable

import psutil

POLL_S = 0.5
KILL_WAIT_S = 5.0
TRACKER_GRACE_S = 3.0
EXIT_WAIT_S = 10.0

Key = tuple[int, float]  # (pid, create_time)


def start(server_pid: int | None = None) -> subprocess.Popen[bytes]:
    """Start the guardian of ``server_pid`` (default: this process). Keep the returned
    ``Popen`` (and so its stdin, the pipe's write end) for the life of the server."""
    pid = os.getpid() if server_pid is None else server_pid
    return subprocess.Popen(
        [sys.executable, "-m", "service.guardian", str(pid)],
        stdin=subprocess.PIPE, start_new_session=True,
    )


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``: /proc's per-thread lists where the kernel has them (a few
    small reads), else psutil (a scan of every process in /proc)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        out: list[int] = []
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        return out
    except FileNotFoundError:
        pass
    except OSError:
        return []
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in out and child != pid:
                out.append(child)
                todo.append(child)
    return out


class Guardian:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.known: dict[Key, psutil.Process] = {}
        self.is_parent = os.getppid() == server_pid
        self.server: psutil.Process | None = None
        if not self.is_parent:
            try:
                self.server = psutil.Process(server_pid)
            except psutil.Error:
                pass

    def poll(self) -> None:
        """Remember the server's descendants now; forget the remembered ones that died."""
        self._remember(descendants(self.server_pid))
        self.known = {k: p for k, p in self.known.items() if _alive(p)}

    def _remember(self, pids: Iterable[int]) -> None:
        me = os.getpid()
        for pid in pids:
            if pid == me:
                continue
            try:
                proc = psutil.Process(pid)
                self.known.setdefault((pid, proc.create_time()), proc)
            except psutil.Error:
                continue

    def cleanup(self) -> list[str]:
        """Kill every remembered process still alive (and its children now); return what
        was killed, as ``name[pid]``."""
        alive = [p.pid for p in self.known.values() if _alive(p)]
        for pid in alive:
            self._remember(descendants(pid))
        procs = [p for p in self.known.values() if _alive(p)]
        trackers = [p for p in procs if _is_tracker(p)]
        others = [p for p in procs if p not in trackers]
        killed = _kill(others)
        return killed + _kill(wait_dead(trackers, TRACKER_GRACE_S))

    def server_gone(self) -> bool:
        if self.is_parent:  # re-parented the moment the server died, reaped or not
            return os.getppid() != self.server_pid
        return self.server is None or not _alive(self.server)


def _alive(proc: psutil.Process) -> bool:
    """Running (``is_running`` compares the create time: a reused pid is not ``proc``)
    and not a zombie."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_tracker(proc: psutil.Process) -> bool:
    try:
        return any("resource_tracker" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def _kill(procs: list[psutil.Process]) -> list[str]:
    killed = []
    for p in procs:
        try:
            name = p.name()
            p.kill()  # psutil refuses a pid that was reused since ``p`` was made
            killed.append(f"{name}[{p.pid}]")
        except psutil.Error:
            continue
    wait_dead(procs, KILL_WAIT_S)
    return killed


def wait_dead(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process is dead (a zombie is: its memory is freed; its new
    parent reaps it); return those still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _alive(p)]
    return alive


def _stdin_closed(timeout: float) -> bool:
    """True once stdin is at end of file; waits up to ``timeout`` seconds."""
    ready, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
    if not ready:
        return False
    try:
        return os.read(sys.stdin.fileno(), 4096) == b""
    except OSError:
        return True


def run(server_pid: int) -> int:
    guardian = Guardian(server_pid)
    while not guardian.server_gone():
        guardian.poll()
        if _stdin_closed(POLL_S):
            # the pipe closes as the server exits (killed: at once) or just before (its
            # interpreter's shutdown): wait for the process itself, within reason
            deadline = time.monotonic() + EXIT_WAIT_S
            while not guardian.server_gone() and time.monotonic() < deadline:
                time.sleep(0.02)
            break
    t_gone = time.monotonic()
    killed = guardian.cleanup()
    if killed:
        print(f"candor guardian: server {server_pid} is gone; killed {len(killed)} "
              f"leftover process(es) in {time.monotonic() - t_gone:.2f} s: "
              f"{', '.join(killed)}", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m service.guardian <server pid>", file=sys.stderr)
        return 2
    return run(int(args[0]))


if __name__ == "__main__":
    sys.exit(main())
