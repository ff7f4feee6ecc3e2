"""The HTTP API: `create_app(settings)` builds it; nothing is built at import time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Cookie, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud import codes, merchant_page, stats
from cloud import schemas as o
from cloud.admin_api import router as admin_router
from cloud.codes import VISITOR_COOKIE
from cloud.db import SessionFactory, make_engine, make_session_factory
from cloud.deps import BEARER_SCHEME, SF, MerchantDep, clock, settings
from cloud.errors import ApiError
from cloud.inputs import checked
from cloud.ratelimit import RateLimited, RateLimits, limit_client
from cloud.rules_api import router as rules_router
from cloud.schemas import errors
from cloud.settings import Settings
from cloud.tenant_api import router as tenant_router
from protocol.rotation import split_code

log = logging.getLogger("mcode.cloud.api")

VISITOR_MAX_AGE_S = 365 * 24 * 3600
CODE_PATTERN = "^[0-9]{1,12}-[0-9]{1,6}$"  # base code, dash, display suffix or 6-digit share code


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
        zh = {404: "未找到", 405: "不支持该请求方法"}.get(e.status_code, "")
        resp = _error(e.status_code, code, str(e.detail), zh)
        resp.headers.update(e.headers or {})  # e.g. Allow on a 405
        return resp

    @app.exception_handler(DataError)
    async def unstorable(_r: Request, e: DataError) -> JSONResponse:
        # The database refused a value the request carried; the API bounds numbers and lengths to
        # the columns, so what is left is text PostgreSQL cannot hold (a NUL character).
        log.info("database refused a value: %s", e.orig)
        return _error(400, "bad_value", "a value in the request cannot be stored (e.g. it contains a NUL "
                      "character)", "请求中的某个值无法保存（例如含有 NUL 字符）")

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


TAGS = [
    {"name": "public", "description": "No key: code resolution and sharing, rate-limited per client "
                                      "address (429 with Retry-After)."},
    {"name": "registry", "description": "Campaigns (rented base codes), locations, devices, gateways."},
    {"name": "keys", "description": "A merchant's API keys: issue, list, revoke."},
    {"name": "orders", "description": "Sales attributed to entries, refunds, share chains, sharer accounts."},
    {"name": "ledger", "description": "The double-entry payout ledger: statements (JSON or CSV), balances."},
    {"name": "sharer", "description": "A sharer's own earnings, by their visitor cookie."},
    {"name": "gateway", "description": "For gateway keys: their devices' command keys."},
    {"name": "rules", "description": "Reward rules: preview a split before publishing it."},
    {"name": "merchant page", "description": "The merchant's numbers, as HTML or JSON."},
    {"name": "admin", "description": "Provisioning, for admin keys."},
]
DESCRIPTION = """Rotating M-codes on shop displays, sharing, and rewards.

Every error is JSON `{"code", "message", "message_zh"}` (schema `Error`): `code` is stable, the
messages are in English and zh-CN. Invalid parameters or bodies are 400 `bad_request`. Money is in
integer minor units; times are unix milliseconds."""


def _operation_id(route: APIRoute) -> str:
    """Operation ids are the handlers' names: stable, readable, unique (the admin router prefixes
    its own with admin_)."""
    return route.name


def _finish_openapi(doc: dict[str, Any]) -> None:
    """Drop FastAPI's 422 (validation errors are answered 400 `bad_request`, documented per
    operation), add the Error schema the error responses refer to, and name in each description
    the roles its key must have."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            op.get("responses", {}).pop("422", None)
            roles = [r for req in op.get("security", []) for r in req.get(BEARER_SCHEME, [])]
            if roles:
                desc = op.get("description", "").rstrip()
                op["description"] = (desc + "\n\n" if desc else "") + f"Roles: {', '.join(roles)}."
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components["Error"] = o.Error.model_json_schema()


def _install_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _finish_openapi(build())  # build() caches the document in app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


_VISITOR_SET = {"Set-Cookie": {"description": f"{VISITOR_COOKIE}: the shopper's visitor token",
                               "schema": {"type": "string"}}}
CodePath = Annotated[str, Path(description="BASE-SUFFIX, e.g. 4919-27",
                              json_schema_extra=checked(pattern=CODE_PATTERN))]
VisitorCookie = Annotated[str | None, Cookie(alias=VISITOR_COOKIE, description="the shopper's visitor token, "
                                             "if they have one")]


def create_app(settings_: Settings, engine: Engine | None = None,
               clock_: Callable[[], float] = time.time) -> FastAPI:
    """The API on `engine` (or one made from settings.db_url); `clock_` gives unix seconds."""
    app = FastAPI(title="mcode cloud", version="0", description=DESCRIPTION, openapi_tags=TAGS,
                  generate_unique_id_function=_operation_id)
    app.state.settings = settings_
    app.state.engine = engine if engine is not None else make_engine(settings_.db_url)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.state.clock = clock_
    app.state.rate_limits = RateLimits(settings_, clock_)
    _install_error_handlers(app)
    _install_openapi(app)
    app.include_router(admin_router)
    app.include_router(rules_router)
    app.include_router(tenant_router)

    @app.get("/healthz", tags=["public"], response_model=o.Health)
    def healthz(sf: SF) -> dict[str, str]:
        """The API and its database answer."""
        with sf() as s:
            s.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/r/{code}", tags=["public"], dependencies=[Depends(limit_client)], response_model=o.EntryOut,
             responses={200: {"headers": _VISITOR_SET}, **errors(400, 404, 410, 429)})
    def resolve_code(code: CodePath, request: Request, sf: SF,
                     now: Annotated[Callable[[], float], Depends(clock)],
                     st: Annotated[Settings, Depends(settings)],
                     visitor: VisitorCookie = None) -> JSONResponse:
        """A typed M-code (BASE-NN from a display, BASE-NNNNNN from a sharer) becomes an entry.
        Wrong guesses also count against the campaign's limit."""
        entry = _resolve_limited(request.app.state.rate_limits, sf, code, visitor, now())
        resp = JSONResponse(entry)
        resp.set_cookie(VISITOR_COOKIE, entry["visitor"], max_age=VISITOR_MAX_AGE_S, httponly=True,
                        samesite="lax", secure=st.cookie_secure)
        return resp

    @app.post("/entries/{entry_id}/share", status_code=201, tags=["public"],
              dependencies=[Depends(limit_client)], response_model=o.ShareOut,
              responses=errors(400, 404, 409, 429))
    def share_entry(entry_id: str, sf: SF) -> dict[str, Any]:
        """The entry's shopper becomes a sharer with a personal code; asking again returns it."""
        return codes.share(sf, entry_id)

    @app.get("/merchant", response_class=HTMLResponse, tags=["merchant page"], responses=errors(401, 403))
    def get_merchant_page(sf: SF, merchant: MerchantDep) -> HTMLResponse:
        """The merchant page (商户页), zh-CN and en."""
        return HTMLResponse(merchant_page.render(merchant.name, stats.merchant_stats(sf, merchant.id)),
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @app.get("/merchant/stats.json", tags=["merchant page"], response_model=o.MerchantStats,
             responses=errors(401, 403))
    def get_merchant_stats(sf: SF, merchant: MerchantDep) -> dict[str, Any]:
        """The merchant page's numbers: per device scans, events, gaps, entries; totals."""
        return stats.merchant_stats(sf, merchant.id)

    return app
