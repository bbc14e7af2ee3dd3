"""``POST /v1/admin/calibration/reload``: load a calibration artifact without a restart.

Validated first (the same checks as startup: format, version, model, pinned serving
settings, the engine's chat template); a refused artifact is a 400 ``calibration_error``
naming the problem and the old artifact keeps serving. Access: with ``CANDOR_API_KEYS``
set, a valid key (the auth middleware); with no keys configured, only loopback clients
(403 otherwise), so an open server cannot be re-pointed from the network. SIGHUP does
the same reload of the last loaded path (``service/main.py``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.errors import Forbidden
from service.schemas import ReloadRequest, ReloadResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"],
                   responses=documented_errors(400, 403, 413, 422))
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def check_admin(request: Request, state: StateDep) -> None:
    """No keys configured: admin routes answer loopback clients only."""
    host = request.client.host if request.client else ""
    if not state.settings.api_keys and host not in LOOPBACK:
        raise Forbidden("admin routes need CANDOR_API_KEYS, or a loopback client when no keys "
                        "are configured")


@router.post("/calibration/reload", response_model=ReloadResponse)
async def reload(request: Request, state: StateDep,
                 req: ReloadRequest | None = None) -> ReloadResponse:
    """Validate the artifact, then swap it in atomically; in-flight requests finish on the
    artifact they started with."""
    check_admin(request, state)
    path = Path(req.path) if req is not None and req.path is not None else None
    return ReloadResponse(**await state.reload_calibration(path))
