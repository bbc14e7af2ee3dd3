"""``service.server.serve``: the watchdog's way out ends ``candor serve`` with its own exit
status (3), not killed by the SIGTERM uvicorn re-raises after draining."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.servers import REPO, free_port

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from contextlib import asynccontextmanager
    from fastapi import FastAPI
    from service.config import Settings
    from service.server import serve
    from service.watchdog import request_shutdown

    @asynccontextmanager
    async def lifespan(app):
        stop = getattr(app.state, "request_shutdown", request_shutdown)
        if sys.argv[2] == "signal":
            stop = request_shutdown
        asyncio.get_running_loop().call_later(0.3, stop)  # as the watchdog does, tripped
        yield

    app = FastAPI(lifespan=lifespan)
    serve(app, Settings(port=int(sys.argv[1]), log_level="warning"))
    sys.exit(3)
""")


def run(how: str) -> int:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(free_port()), how], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode


def test_the_watchdogs_shutdown_exits_with_the_servers_status() -> None:
    assert run("hook") == 3


def test_a_sigterm_is_re_raised_by_uvicorn_which_is_why_the_hook_exists() -> None:
    assert run("signal") == -15  # killed by SIGTERM: a supervisor would not restart it
