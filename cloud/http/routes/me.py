"""A shopper's own earnings: GET /me/earnings (JSON, for API clients) and the page /me (我的) with
its two forms, POST /me/recovery (a new recovery code, shown once) and POST /me/phone ("add this
phone": the recovery code links this phone to its person). The phone is known only by its signed
visitor cookie (cloud/services/codes.py); earnings are the person's (cloud/services/people.py).

Every route is keyless and rate-limited per client address; recovery guesses also have their own
budget. The forms are CSRF-protected by double submit (a random token in an HttpOnly SameSite=Strict
cookie and in the form, as POST /login) and refuse another Origin. The recovery code is never in a
URL: a new one is shown in the answer to the POST itself, with Cache-Control: no-store."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError, not_found
from cloud.http import schemas as o
from cloud.http.deps import SF, Now, SettingsDep
from cloud.http.params import VisitorCookie
from cloud.http.ratelimit import RateLimited, client_address, limit_client, limits
from cloud.http.routes.login import _posted, _same_origin
from cloud.http.routes.public import VISITOR_MAX_AGE_S
from cloud.http.routes.sales import lang_of, remember_lang
from cloud.http.schemas import errors
from cloud.services import codes, people, saved
from cloud.services.codes import VISITOR_COOKIE
from cloud.settings import Settings
from cloud.web import me_page

router = APIRouter()  # the API: in the OpenAPI document
pages = APIRouter(include_in_schema=False)  # HTML forms, like /login
ME_CSRF_COOKIE, INSECURE_ME_CSRF_COOKIE = "__Host-mcode_me_csrf", "mcode_me_csrf"
NO_STORE = {"Cache-Control": "no-store"}


def _key(st: Settings) -> bytes:
    return codes.visitor_key(st.visitor_secret, st.admin_key)


@router.get("/me/earnings", tags=["sharer"], dependencies=[Depends(limit_client)],
            response_model=o.MyEarnings, responses=errors(404, 429))
def get_my_earnings(sf: SF, now: Now, st: SettingsDep, visitor: VisitorCookie = None) -> dict[str, Any]:
    """A sharer's own statement, by the visitor cookie their phone got at their first code (no key):
    every share code of the person holding this phone, on every phone they added."""
    vid = codes.visitor_from_token(_key(st), visitor)
    if vid is None:
        raise not_found("no_visitor", "this browser has no share codes yet", "此浏览器还没有分享码")
    return people.statement(sf, vid, int(now() * 1000))


def _csrf_cookie(st: Settings) -> str:
    return ME_CSRF_COOKIE if st.cookie_secure else INSECURE_ME_CSRF_COOKIE


def _render(request: Request, vid: str | None, status: int = 200, **kw: Any) -> Response:
    """The page for this phone, with a fresh CSRF token in the form and its cookie."""
    st: Settings = request.app.state.settings
    sf = request.app.state.session_factory
    now_ms = int(request.app.state.clock() * 1000)
    data: dict[str, Any] = people.earnings(sf, vid, now_ms) if vid else {
        "person": False, "phones": 0, "visitors": [], "share_codes": [], "totals": [], "history": []}
    if vid and "recovery_code" not in kw and not data["person"]:
        kw["recovery_code"] = people.first_recovery(sf, vid, now_ms)  # first earnings: shown once
        data["person"] = kw["recovery_code"] is not None
        data["phones"] = 1
    token = secrets.token_urlsafe(32)
    lang = lang_of(request)
    mine = saved.list_for(sf, data["visitors"], lang) if vid else []
    html = me_page.me_page(lang, data, token, saved=mine, **kw)
    resp = HTMLResponse(html, status_code=status, headers=NO_STORE)
    resp.set_cookie(_csrf_cookie(st), token, max_age=3600, path="/", httponly=True, secure=st.cookie_secure,
                    samesite="strict")
    return remember_lang(request, resp, st)


def _visitor(request: Request) -> str | None:
    st: Settings = request.app.state.settings
    return codes.visitor_from_token(_key(st), request.cookies.get(VISITOR_COOKIE))


def _over_limit(request: Request) -> Response | None:
    """The per-client limit, answered as a page (429, Retry-After) rather than JSON."""
    try:
        limit_client(request)
    except RateLimited as e:
        resp = _render(request, None, 429, error=_error(e))
        resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    return None


@pages.get("/me")
def get_me(request: Request) -> Response:
    """My earnings (我的收益), in the shopper's language; a phone's first earnings bring its
    recovery code, shown this once."""
    limited = _over_limit(request)
    if limited is not None:
        return limited
    added = request.query_params.get("added") == "1"
    return _render(request, _visitor(request), notice="added" if added else None)


async def _checked_form(request: Request) -> tuple[dict[str, str], bool]:
    st: Settings = request.app.state.settings
    form = await _posted(request)
    cookie = request.cookies.get(_csrf_cookie(st), "")
    ok = bool(_same_origin(request) and cookie and form.get("csrf")
              and secrets.compare_digest(cookie.encode(), form.get("csrf", "").encode()))
    return form, ok


def _error(e: ApiError) -> tuple[str, str]:
    return (e.message_zh, e.message)


@pages.post("/me/recovery")
async def post_recovery(request: Request) -> Response:
    """A new recovery code for this phone's person, shown in this answer only."""
    limited = await run_in_threadpool(_over_limit, request)
    if limited is not None:
        return limited
    _, ok = await _checked_form(request)
    vid = _visitor(request)
    if not ok:
        return await run_in_threadpool(_render, request, vid, 403, error=me_page.ME_LABELS["err_csrf"])
    if vid is None:
        return await run_in_threadpool(_render, request, None, 409, error=me_page.ME_LABELS["err_nothing"])
    now_ms = int(request.app.state.clock() * 1000)
    code = await run_in_threadpool(people.new_recovery, request.app.state.session_factory, vid, now_ms)
    return await run_in_threadpool(_render, request, vid, recovery_code=code)


@pages.post("/me/phone")
async def post_phone(request: Request) -> Response:
    """Add this phone: the recovery code typed links it to its person (a phone with no visitor
    cookie gets one now); then /me shows the person's earnings."""
    limited = await run_in_threadpool(_over_limit, request)
    if limited is not None:
        return limited
    st: Settings = request.app.state.settings
    form, ok = await _checked_form(request)
    vid = _visitor(request)
    if not ok:
        return await run_in_threadpool(_render, request, vid, 403, error=me_page.ME_LABELS["err_csrf"])
    fresh = vid is None
    vid = vid or codes.new_visitor()
    now_ms = int(request.app.state.clock() * 1000)
    try:
        await run_in_threadpool(people.add_phone, request.app.state.session_factory, limits(request),
                                client_address(request), vid, form.get("recovery", ""), now_ms)
    except ApiError as e:
        resp = await run_in_threadpool(_render, request, None if fresh else vid, e.status, error=_error(e))
        if isinstance(e, RateLimited):
            resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    resp = RedirectResponse("/me?added=1", status_code=303, headers=NO_STORE)
    if fresh:
        resp.set_cookie(VISITOR_COOKIE, codes.visitor_token(_key(st), vid), max_age=VISITOR_MAX_AGE_S,
                        httponly=True, samesite="lax", secure=st.cookie_secure)
    return resp
