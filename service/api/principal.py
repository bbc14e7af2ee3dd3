"""Who is calling: the role and key fingerprint the auth middleware found for a request.

``RequestGuard`` (``api/middleware.py``) checks the request's key against every client and
admin key and stores a ``Principal`` in the ASGI scope's state; routes read it with
``principal(request)``. The fingerprint (``key_id``) names a key in logs and in the
decision log's labeller column without storing the key itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from service.errors import BadRequest, Forbidden

Role = Literal["anonymous", "client", "admin"]
SCOPE_KEY = "principal"


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: str | None = None  # sha256 fingerprint of the key; None without keys

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def labeller(self) -> str:
        """How the decision log names whoever sent a label."""
        return f"key:{self.key_id}" if self.key_id else "anonymous"


ANONYMOUS = Principal("anonymous")


def fingerprint(key: bytes) -> str:
    """A short, stable, non-reversible name for a key (12 hex digits of its SHA-256)."""
    return hashlib.sha256(key).hexdigest()[:12]


def principal(request: Request) -> Principal:
    """The caller the middleware identified (anonymous when no keys are configured)."""
    found = request.scope.get("state", {}).get(SCOPE_KEY)
    return found if isinstance(found, Principal) else ANONYMOUS


def check_audit_override(rate: float | None, request: Request, server_rate: float) -> None:
    """``policy.audit_rate`` is an admin's tool to have a decision reviewed: a client key
    gets 403 (else it could choose which of its decisions are audited), and no one may set
    it below the server's rate (which would take decisions out of the sample)."""
    if rate is None:
        return
    if not principal(request).is_admin:
        raise Forbidden("policy.audit_rate needs an admin key (CANDOR_ADMIN_KEYS): the audit "
                        "sample is drawn by the server (CANDOR_AUDIT_RATE)",
                        param="policy.audit_rate")
    if rate < server_rate:
        raise BadRequest(f"policy.audit_rate may only raise the server's audit rate "
                         f"({server_rate:g}), never lower it", param="policy.audit_rate")
