"""Dependency aliases for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.state import CandorState


def get_state(request: Request) -> CandorState:
    state: CandorState = request.app.state.candor
    return state


def get_settings_dep(request: Request) -> Settings:
    return get_state(request).settings


StateDep = Annotated[CandorState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
