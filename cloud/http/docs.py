"""/docs (Swagger UI) from assets installed with the package (fastapi-offline ships them), so the
API's documentation works on a machine without internet: no CDN. ReDoc is left out: its bundle
still reaches for a third-party host at run time. The page is cloud/web's docs.html, whose start
script is a static file, so the CSP of every HTML page (middleware.py) holds here too."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from cloud.web import pages

ASSETS_URL = "/docs-assets"


def install(app: FastAPI, title: str) -> None:
    """Serve the assets and the page (FastAPI's own /docs and /redoc must be off)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(pages.docs_page(f"{title} · API", ASSETS_URL))
