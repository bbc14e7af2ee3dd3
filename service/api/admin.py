"""``/v1/admin``: operator routes; today ``POST /v1/admin/calibration/reload``.

**Access.** Every route here needs an admin principal: a key from ``CANDOR_ADMIN_KEYS``
(``api/principal.py``; the request guard in ``api/middleware.py`` tells admin keys from
client keys). A client key (``CANDOR_API_KEYS``) is a 403 ``permission_error`` naming
``CANDOR_ADMIN_KEYS``. With no admin key configured the admin routes are off over HTTP: a
403 for every caller, whatever its address or headers say (no loopback exception: behind
a same-host reverse proxy every client is 127.0.0.1, and ``X-Forwarded-For`` is only as
true as the proxy that may or may not set it). The operator reloads then with SIGHUP,
which re-reads ``CANDOR_CALIBRATION`` (``service/main.py``).

**Reload.** The body names a source the way ``CANDOR_CALIBRATION`` does (``builtin``,
``none``, artifact files or folders); no body re-reads ``CANDOR_CALIBRATION``. The active
profile set becomes exactly what the source names (nothing loaded before is kept), and
the reply says what was added, removed, replaced or re-read (``ReloadResponse``, from
``reload.reload_reply``). Paths must resolve, symlinks followed, inside
``CANDOR_CALIBRATION_DIR``; any other is a 400 with one constant message, so the reply
never tells whether a file outside exists (``service/reload.py``). A refused artifact
(format, version, model, pinned serving settings, the engine's chat template: the startup
checks) is a 400 ``calibration_error`` naming the problem, and the active profiles keep
serving.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.api.principal import Principal, principal
from service.errors import Forbidden, Unauthorized
from service.schemas import ReloadRequest, ReloadResponse

log = logging.getLogger(__name__)

NO_ADMIN_KEYS = ("admin routes are off: this server has no CANDOR_ADMIN_KEYS. Set "
                 "CANDOR_ADMIN_KEYS and send one of its keys, or send SIGHUP to the server "
                 "process to reload the calibration from CANDOR_CALIBRATION")
NOT_ADMIN = ("this route needs an admin key (CANDOR_ADMIN_KEYS); the key sent is a client "
             "key (CANDOR_API_KEYS)")


def require_admin(request: Request, state: StateDep) -> Principal:
    """The caller, if an admin; otherwise 403 (401 for no key where admin keys exist)."""
    who = principal(request)
    if who.is_admin:
        return who
    if not state.settings.admin_keys:
        raise Forbidden(NO_ADMIN_KEYS)
    if who.role == "anonymous":  # the guard answers this first today; kept if it stops
        raise Unauthorized("admin routes need an admin key (CANDOR_ADMIN_KEYS): send "
                           "'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
    raise Forbidden(NOT_ADMIN)


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=documented_errors(400, 403, 413, 422))


@router.post("/calibration/reload", response_model=ReloadResponse)
async def reload(request: Request, state: StateDep,
                 req: ReloadRequest | None = None) -> ReloadResponse:
    """Validate what the source names, then make it exactly the active profile set, in one
    atomic swap; in-flight requests finish on the profiles they started with. Needs an
    admin key (CANDOR_ADMIN_KEYS)."""
    source = req.source if req is not None else None
    return await state.reload_calibration(source, by=principal(request).labeller)
