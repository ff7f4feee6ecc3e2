"""/docs works without internet: Chromium loads them with every request to another host
blocked, and Swagger UI lists every operation of the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from cloud.http.app import create_app
from cloud.settings import Settings
from tests.browser import serve
from tests.cloud.conftest import MASTER_KEY
from tests.pw import DESKTOP, PHONE, chromium, context

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def test_swagger_ui_lists_every_operation_with_no_request_leaving_the_machine() -> None:
    app = create_app(Settings(db_url="sqlite://", admin_key="a" * 40, master_key=MASTER_KEY),
                     engine=create_engine("sqlite://"))
    n_ops = sum(len(item) for item in app.openapi()["paths"].values())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(app) as base, chromium() as browser:
        for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
            with context(browser, size, "en") as ctx:
                outside: list[str] = []

                def only_local(route: object, request: object, outside: list[str] = outside) -> None:
                    url = request.url  # type: ignore[attr-defined]
                    if url.startswith(base):
                        route.continue_()  # type: ignore[attr-defined]
                    else:
                        outside.append(url)
                        route.abort()  # type: ignore[attr-defined]

                ctx.route("**/*", only_local)
                page = ctx.new_page()
                page.goto(f"{base}/docs")
                page.wait_for_selector(".opblock-summary", timeout=60_000)
                assert page.locator(".opblock").count() == n_ops
                assert page.locator(".opblock-summary-operation-id, .opblock-summary-path").count() > 0
                page.screenshot(path=str(ARTIFACTS / f"docs-{name}.png"))
                assert outside == []
                assert page.request.get(f"{base}/redoc").status == 404  # not served: it calls out
