"""App factory and the ``candor`` command line (serve, prepare-model).

``create_app(settings, engine=None)``: the lifespan loads the engine in the
background (``/healthz`` answers at once, ``/readyz`` is 503 until it is loaded),
then routers, then error handlers. Nothing runs at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api import register_routers
from service.api.errors import register_error_handlers
from service.api.middleware import RequestGuard
from service.bootstrap import load_engine
from service.config import Settings, get_settings
from service.decisions.log import DecisionLog
from service.drain import SIGNALS, install_drain
from service.engine.protocol import EngineClient
from service.errors import CalibrationError, CandorError
from service.signals.base import TextEncoder
from service.state import CandorState
from service.watchdog import EXIT_ENGINE_FAILED, EngineWatchdog, request_shutdown

log = logging.getLogger("candor")


def install_sighup(state: CandorState) -> bool:
    """SIGHUP re-reads CANDOR_CALIBRATION, the configured source (as the admin route does
    with no body), making it exactly the active set again; only where the loop may own
    signals (the main thread: ``candor serve``)."""
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        try:
            await state.reload_calibration()
        except CandorError as exc:  # refused: the old artifact keeps serving, the log says why
            log.error("SIGHUP: calibration not reloaded: %s", exc.message)

    def on_hup() -> None:
        task = loop.create_task(reload())
        state._tasks.add(task)
        task.add_done_callback(state._tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        return False  # not the main thread (test clients) or no SIGHUP on this platform
    return True


def create_app(
    settings: Settings | None = None,
    engine: EngineClient | None = None,
    embedder: TextEncoder | None = None,
    state: CandorState | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    state = state or CandorState.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.candor = state
        task = None
        if engine is not None:
            state.attach(engine, embedder)
        else:
            task = asyncio.create_task(load_engine(state))
        target = settings.decision_log_target
        if target is not None and state.decision_log is None:
            state.decision_log = await asyncio.to_thread(
                DecisionLog, target, log_text=settings.log_text,
                retention_days=settings.log_retention_days, metrics=state.metrics)
        await state.restore_monitoring()  # a restart loses no committed label
        refresh = (asyncio.create_task(state.monitor_refresh.run())  # a shared log's
                   if state.monitor_refresh is not None else None)
        hup = install_sighup(state)
        stop = getattr(app.state, "request_shutdown", None)  # only `candor serve` has it
        drains = stop is not None and install_drain(state, stop)
        watch = None
        if engine is None and settings.engine == "local" and settings.engine_watchdog_s > 0:
            # in-process engine: supervise it (a remote one recovers on its own: /readyz)
            app.state.watchdog = EngineWatchdog(
                state, settings.engine_watchdog_s, settings.engine_exit_grace_s,
                settings.exit_on_engine_failure,
                # `candor serve` stops its uvicorn directly (service/server.py), so it exits 3
                getattr(app.state, "request_shutdown", request_shutdown))
            watch = asyncio.create_task(app.state.watchdog.run())
        try:
            yield
        finally:
            if hup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            for sig in SIGNALS if drains else ():
                asyncio.get_running_loop().remove_signal_handler(sig)
            for t in (task, watch, refresh):
                if t is not None and not t.done():
                    t.cancel()
            if state.decision_log is not None:  # flush what is queued
                await asyncio.to_thread(state.decision_log.close)
            if state.engine is not None:
                await state.engine.aclose()

    # /docs and /redoc load Swagger UI / ReDoc from a CDN (blank offline): off unless
    # CANDOR_API_DOCS=true; /openapi.json is always served.
    docs = settings.api_docs
    app = FastAPI(
        title="Candor", version=__version__, lifespan=lifespan,
        description="Answers with a calibrated confidence; abstains when unsure.",
        docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
    )
    app.state.candor = state
    register_routers(app)
    register_error_handlers(app)
    app.add_middleware(RequestGuard, settings=settings,
                       on_status=state.metrics.observe_error)
    return app


def _serve(args: argparse.Namespace) -> int:
    from service.server import serve

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    settings = Settings(**overrides)
    if settings.decision_log_target is None and settings.decision_log_enabled:
        settings = settings.model_copy(
            update={"decision_log": settings.cache_dir / "decisions.sqlite"})
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)
    except CalibrationError as exc:  # a bad artifact stops startup, loudly
        log.error("%s", exc.message)
        print(f"candor: {exc.message}", file=sys.stderr)
        return 2
    # before the engine (the lifespan starts it); the guardian outlives this process for
    # as long as it takes to kill what is left of it, then exits
    guardian = _start_guardian(settings)  # noqa: F841 - holds the pipe's write end open
    serve(app, settings)  # uvicorn with the slow-client limits (service/server.py)
    watchdog = getattr(app.state, "watchdog", None)
    return EXIT_ENGINE_FAILED if watchdog is not None and watchdog.tripped else 0


def _start_guardian(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The guardian (service/guardian.py) of an in-process engine: its processes end with
    this one, even on kill -9. Started before the engine; a failure to start is logged."""
    if settings.engine != "local":
        return None  # a remote engine: no engine process here
    from service import guardian

    try:
        return guardian.start()
    except OSError as exc:
        log.warning("engine guardian not started (%s): a kill -9 of this server would "
                    "leave the engine's processes running", exc)
        return None


def _prepare(args: argparse.Namespace) -> int:
    from service.engine.model_store import resolve_model

    logging.basicConfig(level="INFO")
    print(resolve_model(Settings()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="candor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_serve)
    prep = sub.add_parser("prepare-model",
                          help="convert the embedded model once and print its path")
    prep.set_defaults(func=_prepare)
    # calibrate/eval (service/offline/): without --server they start an in-process engine
    # with service.bootstrap.load_engine, as serve's lifespan does
    from service.offline.calibrate import add_calibrate_parser
    from service.offline.evaluate import add_eval_parser

    add_calibrate_parser(sub)
    add_eval_parser(sub)
    return p


def cli(argv: list[str] | None = None) -> int:
    """The ``candor`` command. Bad settings end in one line per problem, never a traceback."""
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(map(str, e["loc"]))
            name = f"CANDOR_{field.upper()}" if field else "settings"
            print(f"candor: invalid setting {name}: {e['msg']}", file=sys.stderr)
        return 2
    except CalibrationError as exc:
        print(f"candor: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
