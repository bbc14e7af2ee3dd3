"""What every response model shares: unknown fields are kept, so a newer server never
breaks an older client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


def payload(**fields: Any) -> dict[str, Any]:
    """A JSON body without the fields left unset (``None``), so server defaults apply."""
    return {k: v for k, v in fields.items() if v is not None}
