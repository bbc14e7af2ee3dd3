"""The playground: one static page at ``/playground`` (``/`` redirects there).

Plain HTML, CSS and JavaScript shipped inside the package (``service/api/playground_assets/``,
declared as package data): no build step, no CDN. The page calls the public
``POST /v1/answer`` with the caller's API key, so it needs no access of its own; the
page and its assets are therefore open (``PUBLIC_PATHS``) while the API stays behind
the key. Not part of the OpenAPI schema.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS = files("service.api") / "playground_assets"
STATIC = "/playground/static"

router = APIRouter(include_in_schema=False)


def is_public(path: str) -> bool:
    """The page and its assets: served without a key (they hold no data)."""
    return path in ("/", "/playground") or path.startswith(STATIC + "/")


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/playground")


@router.get("/playground")
async def playground() -> HTMLResponse:
    return HTMLResponse(ASSETS.joinpath("index.html").read_text(encoding="utf-8"))


def mount_playground(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC, StaticFiles(packages=[("service.api", ASSETS.name)]), name="playground")
