"""Dependency aliases for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.state import CandorState


def get_state(request: Request) -> CandorState:
    state: CandorState = request.app.state.candor
    return state


StateDep = Annotated[CandorState, Depends(get_state)]
