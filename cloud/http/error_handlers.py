"""Every error the API answers is JSON `{"code", "message", "message_zh"}`: ours (ApiError),
FastAPI's validation and routing errors, values the database refuses, and anything unexpected
(logged, never shown)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.errors import ApiError
from cloud.http.ratelimit import RateLimited

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, message_zh: str = "") -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "message_zh": message_zh or message},
                        status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_r: Request, e: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(e.retry_after)} if isinstance(e, RateLimited) else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, e: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
                          for err in e.errors())
        return error_response(400, "bad_request", f"invalid request: {where}"[:500], "请求无效")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, f"http_{e.status_code}")
        zh = {404: "未找到", 405: "不支持该请求方法"}.get(e.status_code, "")
        resp = error_response(e.status_code, code, str(e.detail), zh)
        resp.headers.update(e.headers or {})  # e.g. Allow on a 405
        return resp

    @app.exception_handler(DataError)
    async def unstorable(_r: Request, e: DataError) -> JSONResponse:
        # The database refused a value the request carried; the API bounds numbers and lengths to
        # the columns, so what is left is text PostgreSQL cannot hold (a NUL character).
        log.info("database refused a value: %s", e.orig)
        return error_response(400, "bad_value", "a value in the request cannot be stored (e.g. it contains "
                              "a NUL character)", "请求中的某个值无法保存（例如含有 NUL 字符）")

    @app.exception_handler(Exception)
    async def internal(_r: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=e)
        return error_response(500, "internal_error", "internal error", "内部错误")
