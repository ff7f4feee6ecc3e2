"""The merchant page's login (登录) and logout: HTML forms, not API operations, so they stay out of
the OpenAPI document (like /docs). A merchant key posted once becomes a session cookie
(cloud/services/web_sessions.py); no key is ever in a URL.

CSRF: logout carries the session's own token (synchronizer token). Login has no session yet, so
GET /login sets a random token both in a cookie (HttpOnly, SameSite=Strict) and in the form, and
POST /login wants the two to match (double submit); a request whose Origin names another host is
refused as well. A cross-site page can neither read the cookie nor make the browser send it."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http.deps import SettingsDep, page_session, session_cookie
from cloud.http.error_handlers import error_response
from cloud.http.ratelimit import client_address
from cloud.services import web_sessions
from cloud.services.login_limits import LoginLimits
from cloud.services.ratelimits import RateLimited
from cloud.settings import Settings
from cloud.web import pages

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE, INSECURE_LOGIN_CSRF_COOKIE = "__Host-mcode_login_csrf", "mcode_login_csrf"
LOGIN_CSRF_MAX_AGE_S = 3600
NO_STORE = {"Cache-Control": "no-store"}


def login_csrf_cookie(st: Settings) -> str:
    return LOGIN_CSRF_COOKIE if st.cookie_secure else INSECURE_LOGIN_CSRF_COOKIE


def _cookie(resp: Response, st: Settings, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(name, value, max_age=max_age, path="/", httponly=True, secure=st.cookie_secure,
                    samesite="strict")


def _form(st: Settings, error: str | None = None, status: int = 200, retry_after_s: int = 0) -> HTMLResponse:
    """The login form with a fresh pre-session CSRF token in the form and in its cookie."""
    token = secrets.token_urlsafe(32)
    html = pages.login_page(token, error, st.session_ttl_s, wait_min=-(-retry_after_s // 60))
    headers = {**NO_STORE, "Retry-After": str(retry_after_s)} if retry_after_s else NO_STORE
    resp = HTMLResponse(html, status_code=status, headers=headers)
    _cookie(resp, st, login_csrf_cookie(st), token, LOGIN_CSRF_MAX_AGE_S)
    return resp


async def _posted(request: Request) -> dict[str, str]:
    """The urlencoded form (the body is bounded by middleware.BodyLimit)."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def _same_origin(request: Request) -> bool:
    """Origin, when sent, names this host ("null" does not); Fetch Metadata, when sent, says the
    form came from this origin or was typed by the user."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    return ((origin is None or urlsplit(origin).netloc == request.headers.get("host", ""))
            and site in (None, "same-origin", "none"))


@router.get("/login")
def get_login(st: SettingsDep) -> HTMLResponse:
    """The merchant page's login form (商户登录), zh-CN and en."""
    return _form(st)


@router.post("/login")
async def post_login(request: Request) -> Response:
    st: Settings = request.app.state.settings
    form = await _posted(request)
    cookie_token = request.cookies.get(login_csrf_cookie(st), "")
    form_token = form.get("csrf", "")
    if not (_same_origin(request) and cookie_token and form_token
            and secrets.compare_digest(cookie_token.encode(), form_token.encode())):
        return _form(st, "csrf", 403)
    sf = request.app.state.session_factory
    now_ms = int(request.app.state.clock() * 1000)
    limits = LoginLimits(request.app.state.rate_limits.buckets, st)
    address, who = client_address(request), (form["login"] if "login" in form else None)
    try:  # before the password hash: a guesser can spend neither tries nor argon2id's CPU
        await run_in_threadpool(limits.check, address, who)
    except RateLimited as e:
        return _form(st, "limited", 429, e.retry_after)
    try:
        if "login" in form:  # a person's login and password (issue 14), else a merchant key
            new = await run_in_threadpool(web_sessions.login_with_password, sf, form["login"],
                                          form.get("password", ""), now_ms, st.session_ttl_s)
        else:
            new = await run_in_threadpool(web_sessions.login_with_key, sf, form.get("key", ""), now_ms,
                                          st.session_ttl_s)
    except ApiError as e:
        if e.status == 401:
            await run_in_threadpool(limits.failed, address, who)
        return _form(st, ("password" if "login" in form else "key") if e.status == 401 else "role", e.status)
    old = request.cookies.get(session_cookie(st))
    if old:  # a new login replaces the browser's old session
        await run_in_threadpool(web_sessions.logout, sf, old)
    home = "/till" if new.session.console_role == "staff" else "/merchant"  # staff work the till
    resp = RedirectResponse(home, status_code=303, headers=NO_STORE)
    _cookie(resp, st, session_cookie(st), new.token, st.session_ttl_s)
    resp.delete_cookie(login_csrf_cookie(st), path="/", secure=st.cookie_secure, httponly=True,
                       samesite="strict")
    return resp


@router.post("/logout")
async def post_logout(request: Request) -> Response:
    st: Settings = request.app.state.settings
    form = await _posted(request)
    ps = await run_in_threadpool(page_session, request)
    if ps is not None:
        if not (_same_origin(request) and web_sessions.csrf_ok(ps, form.get("csrf", ""))):
            return error_response(403, "bad_csrf", "this form did not come from the merchant page",
                                  "此表单并非来自商户页面")
        await run_in_threadpool(web_sessions.logout, request.app.state.session_factory,
                                request.cookies.get(session_cookie(st), ""))
    resp = RedirectResponse("/login", status_code=303, headers=NO_STORE)
    resp.delete_cookie(session_cookie(st), path="/", secure=st.cookie_secure, httponly=True,
                       samesite="strict")
    return resp
