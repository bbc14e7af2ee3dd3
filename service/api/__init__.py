"""HTTP routers (thin: parse, call the runtime, return a model), their middleware,
principals and error mapper, and the playground page."""

from fastapi import FastAPI

from service.api import admin, answer, calibration, feedback, health, openai_compat
from service.api.playground import mount_playground


def register_routers(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(calibration.router)
    app.include_router(answer.router)
    app.include_router(feedback.router)
    app.include_router(openai_compat.router)
    app.include_router(admin.router)
    mount_playground(app)
