"""The HTTP API: `create_app(settings)` builds it; nothing is built at import time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud import codes, merchant_page, stats
from cloud.admin_api import router as admin_router
from cloud.codes import VISITOR_COOKIE
from cloud.db import SessionFactory, make_engine, make_session_factory
from cloud.deps import SF, MerchantDep, clock, settings
from cloud.errors import ApiError
from cloud.ratelimit import RateLimited, RateLimits, limit_client
from cloud.rules_api import router as rules_router
from cloud.settings import Settings
from cloud.tenant_api import router as tenant_router
from protocol.rotation import split_code

log = logging.getLogger("mcode.cloud.api")

VISITOR_MAX_AGE_S = 365 * 24 * 3600


def _error(status: int, code: str, message: str, message_zh: str = "") -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "message_zh": message_zh or message},
                        status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_r: Request, e: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(e.retry_after)} if isinstance(e, RateLimited) else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, e: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
                          for err in e.errors())
        return _error(400, "bad_request", f"invalid request: {where}"[:500], "请求无效")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, f"http_{e.status_code}")
        return _error(e.status_code, code, str(e.detail))

    @app.exception_handler(Exception)
    async def internal(_r: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=e)
        return _error(500, "internal_error", "internal error", "内部错误")


def _resolve_limited(limits: RateLimits, sf: SessionFactory, code: str, visitor: str | None,
                     now: float) -> dict[str, Any]:
    """codes.resolve, charging the campaign's bucket for a wrong guess (unknown or expired suffix);
    anything else gets its token back."""
    parts = split_code(code) if code.isascii() else None
    if parts is None:
        return codes.resolve(sf, code, visitor, now)  # malformed: names no campaign
    base = parts[0]
    limits.check_campaign(base)
    wrong_guess = False
    try:
        return codes.resolve(sf, code, visitor, now)
    except ApiError as e:
        wrong_guess = e.status in (404, 410)
        raise
    finally:
        if not wrong_guess:
            limits.campaign.give_back(base)


def create_app(settings_: Settings, engine: Engine | None = None,
               clock_: Callable[[], float] = time.time) -> FastAPI:
    """The API on `engine` (or one made from settings.db_url); `clock_` gives unix seconds."""
    app = FastAPI(title="mcode cloud", version="0")
    app.state.settings = settings_
    app.state.engine = engine if engine is not None else make_engine(settings_.db_url)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.state.clock = clock_
    app.state.rate_limits = RateLimits(settings_, clock_)
    _install_error_handlers(app)
    app.include_router(admin_router)
    app.include_router(rules_router)
    app.include_router(tenant_router)

    @app.get("/healthz")
    def healthz(sf: SF) -> dict[str, str]:
        with sf() as s:
            s.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/r/{code}", dependencies=[Depends(limit_client)])
    def resolve(code: str, request: Request, sf: SF, now: Annotated[Callable[[], float], Depends(clock)],
                st: Annotated[Settings, Depends(settings)]) -> JSONResponse:
        entry = _resolve_limited(request.app.state.rate_limits, sf, code,
                                 request.cookies.get(VISITOR_COOKIE), now())
        resp = JSONResponse(entry)
        resp.set_cookie(VISITOR_COOKIE, entry["visitor"], max_age=VISITOR_MAX_AGE_S, httponly=True,
                        samesite="lax", secure=st.cookie_secure)
        return resp

    @app.post("/entries/{entry_id}/share", status_code=201, dependencies=[Depends(limit_client)])
    def share(entry_id: str, sf: SF) -> dict[str, Any]:
        return codes.share(sf, entry_id)

    @app.get("/merchant", response_class=HTMLResponse)
    def merchant_html(sf: SF, merchant: MerchantDep) -> HTMLResponse:
        return HTMLResponse(merchant_page.render(merchant.name, stats.merchant_stats(sf, merchant.id)),
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @app.get("/merchant/stats.json")
    def merchant_json(sf: SF, merchant: MerchantDep) -> dict[str, Any]:
        return stats.merchant_stats(sf, merchant.id)

    return app
