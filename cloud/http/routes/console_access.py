"""Who may use the merchant console: accepting an invitation (/invite), opening a read-only shared
link (/shared), and the owner's page of people and links (/merchant/access). HTML forms, out of the
OpenAPI document like /login. Codes travel after '#' in links, so they reach the server only in a
form body; every form has a CSRF token (the login's double submit before a session, the session's
own token after)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http.deps import SettingsDep, page_session, session_cookie
from cloud.http.error_handlers import error_response
from cloud.http.routes.login import NO_STORE, _cookie, _posted, _same_origin, login_csrf_cookie
from cloud.services import merchants, shared_links, users, web_sessions
from cloud.settings import Settings
from cloud.web import console_pages

router = APIRouter(include_in_schema=False)


def _with_csrf(st: Settings, render: object, error: str | None = None, status: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    resp = HTMLResponse(render(token, error), status_code=status, headers=NO_STORE)  # type: ignore[operator]
    _cookie(resp, st, login_csrf_cookie(st), token, 3600)
    return resp


def _pre_session_ok(request: Request, st: Settings, form: dict[str, str]) -> bool:
    cookie_token = request.cookies.get(login_csrf_cookie(st), "")
    form_token = form.get("csrf", "")
    return bool(_same_origin(request) and cookie_token and form_token
                and secrets.compare_digest(cookie_token.encode(), form_token.encode()))


def _signed_in(st: Settings, new: web_sessions.NewSession, to: str) -> Response:
    resp = RedirectResponse(to, status_code=303, headers=NO_STORE)
    _cookie(resp, st, session_cookie(st), new.token, st.session_ttl_s)
    resp.delete_cookie(login_csrf_cookie(st), path="/", secure=st.cookie_secure, httponly=True,
                       samesite="strict")
    return resp


def home_for(role: str) -> str:
    """Where a fresh login lands: staff work the till, everyone else sees the dashboard."""
    return "/till" if role == users.STAFF else "/merchant"


@router.get("/invite")
def get_invite(st: SettingsDep) -> HTMLResponse:
    return _with_csrf(st, console_pages.invite_page)


@router.post("/invite")
async def post_invite(request: Request) -> Response:
    st: Settings = request.app.state.settings
    form = await _posted(request)
    if not _pre_session_ok(request, st, form):
        return _with_csrf(st, console_pages.invite_page, "csrf", 403)
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        user = await run_in_threadpool(users.accept, sf, form.get("code", ""), form.get("login", ""),
                                       form.get("password", ""), now_ms)
        new = await run_in_threadpool(web_sessions.login_with_password, sf, user.login,
                                      form.get("password", ""), now_ms, st.session_ttl_s)
    except ApiError as e:
        return _with_csrf(st, console_pages.invite_page, e.code, e.status)
    return _signed_in(st, new, home_for(new.session.role))


@router.get("/shared")
def get_shared(st: SettingsDep) -> HTMLResponse:
    return _with_csrf(st, console_pages.shared_page)


@router.post("/shared")
async def post_shared(request: Request) -> Response:
    st: Settings = request.app.state.settings
    form = await _posted(request)
    if not _pre_session_ok(request, st, form):
        return _with_csrf(st, console_pages.shared_page, "csrf", 403)
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        new = await run_in_threadpool(web_sessions.open_shared, sf, form.get("code", ""), now_ms,
                                      st.session_ttl_s)
    except ApiError:
        return _with_csrf(st, console_pages.shared_page, "bad_link", 401)
    return _signed_in(st, new, "/merchant")


def _owner(request: Request) -> web_sessions.PageSession | Response:
    ps = page_session(request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    if ps.console_role != users.OWNER:
        return error_response(403, "owner_only", "only an owner manages people and links",
                              "只有所有者可以管理账号和链接")
    return ps


async def _access(request: Request, ps: web_sessions.PageSession, new_link: str | None = None) -> Response:
    sf = request.app.state.session_factory
    m = await run_in_threadpool(merchants.find, sf, ps.merchant_id)
    people = await run_in_threadpool(users.list_users, sf, ps.merchant_id)
    links = await run_in_threadpool(shared_links.list_for, sf, ps.merchant_id)
    html = console_pages.access_page(m.name if m else "", people, links, ps.csrf_token, new_link)
    return HTMLResponse(html, headers=NO_STORE)


@router.get("/merchant/access")
async def get_access(request: Request) -> Response:
    ps = await run_in_threadpool(_owner, request)
    return ps if isinstance(ps, Response) else await _access(request, ps)


async def _owner_form(request: Request) -> tuple[web_sessions.PageSession | Response, dict[str, str]]:
    form = await _posted(request)
    ps = await run_in_threadpool(_owner, request)
    if not isinstance(ps, Response) and not (_same_origin(request)
                                             and web_sessions.csrf_ok(ps, form.get("csrf", ""))):
        return error_response(403, "bad_csrf", "this form did not come from the merchant console",
                              "此表单并非来自商户后台"), form
    return ps, form


@router.post("/merchant/shared-links")
async def post_shared_link(request: Request) -> Response:
    ps, form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        made = await run_in_threadpool(shared_links.create, sf, ps.merchant_id, form.get("label", ""), now_ms)
    except ApiError as e:
        return _api_error(e)
    return await _access(request, ps, str(request.base_url).rstrip("/") + made["path"])


@router.post("/merchant/shared-links/{link_id}/revoke")
async def post_revoke_link(link_id: int, request: Request) -> Response:
    ps, _form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        await run_in_threadpool(shared_links.revoke, sf, ps.merchant_id, link_id, now_ms)
    except ApiError as e:
        return _api_error(e)
    return RedirectResponse("/merchant/access", status_code=303, headers=NO_STORE)


def _api_error(e: ApiError) -> Response:
    return error_response(e.status, e.code, e.message, e.message_zh)
