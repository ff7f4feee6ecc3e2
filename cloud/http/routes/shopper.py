"""The shopper's pages (HTML, keyless, outside the API document except the HTML side of /r):
`/` types a code (a plain GET form), `GET /r/{code}` from a browser enters and goes to the
landing page, `/c/{base}` is the landing page, `POST /c/{base}/share` makes the share code,
`POST /me/saved` saves the campaign to "my codes", `/e/{entry}` goes to the entry's landing page.

The entry lives in the visitor's signed cookie, not in the landing page's address: /c/{base} shows
the visitor's latest entry in that campaign, so the address a person copies and forwards carries
no entry id (a bearer secret; docs/cloud.md, "Shopper pages"). Forms carry a token derived from
the visitor's signed id, are refused from another origin, and the cookie is SameSite=Lax. Every
refusal is a page in the shopper's language saying what to do next, never JSON; the guess limits
charge exactly what GET /r/{code} charges."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http.deps import SF, Now, SettingsDep
from cloud.http.middleware import CSP
from cloud.http.ratelimit import RateLimited, client_address, limit_client, limits
from cloud.http.routes.login import _same_origin
from cloud.http.routes.sales import lang_of, remember_lang
from cloud.services import codes, landing, saved
from cloud.services.codes import VISITOR_COOKIE
from cloud.settings import Settings
from cloud.web import shopper_pages

router = APIRouter(include_in_schema=False)

VISITOR_MAX_AGE_S = 365 * 24 * 3600
NO_STORE = {"Cache-Control": "no-store"}
# notices a redirect back to the landing page may carry (?n=)
NOTICES = ("share_limit", "rate_limited", "no_entry", "bad_form")


def wants_html(request: Request) -> bool:
    """A browser asks for text/html; API clients (no Accept, */*, application/json) get JSON."""
    return "text/html" in request.headers.get("accept", "")


def set_visitor(resp: Response, st: Settings, vid: str) -> None:
    """The visitor cookie: the id and the server's signature of it (codes.visitor_token)."""
    key = codes.visitor_key(st.visitor_secret, st.admin_key)
    resp.set_cookie(VISITOR_COOKIE, codes.visitor_token(key, vid), max_age=VISITOR_MAX_AGE_S,
                    httponly=True, samesite="lax", secure=st.cookie_secure)


def _visitor(request: Request, st: Settings) -> str | None:
    key = codes.visitor_key(st.visitor_secret, st.admin_key)
    return codes.visitor_from_token(key, request.cookies.get(VISITOR_COOKIE))


def _form_token(st: Settings, visitor: str) -> str:
    return landing.form_token(codes.visitor_key(st.visitor_secret, st.admin_key), visitor)


def _home(request: Request, st: Settings, typed: str, e: ApiError | None) -> Response:
    err = None if e is None else {"code": e.code, "message": e.message, "message_zh": e.message_zh}
    if isinstance(e, RateLimited):
        err = {**(err or {}), "code": "rate_limited"}
    html = shopper_pages.home_page(lang_of(request), typed, err)
    resp = HTMLResponse(html, status_code=200 if e is None else e.status, headers=NO_STORE)
    if isinstance(e, RateLimited):
        resp.headers["Retry-After"] = str(e.retry_after)
    return remember_lang(request, resp, st)


async def enter(request: Request, sf: Any, now: Any, st: Settings, typed: str) -> Response:
    """A typed code from a browser: the entry is recorded as GET /r/{code} records it (same guess
    limits), then 303 to the campaign's landing page; a refusal re-renders `/` with the reason."""
    known = _visitor(request, st)
    vid = known or codes.new_visitor()
    try:
        await run_in_threadpool(limit_client, request)
        entry = await run_in_threadpool(codes.resolve_limited, sf, limits(request), typed, vid, now(),
                                        client_address(request))
    except ApiError as e:
        return _home(request, st, typed, e)
    resp = RedirectResponse(f"/c/{entry['base_code']}", status_code=303, headers=NO_STORE)
    if known is None:
        set_visitor(resp, st, vid)
    return remember_lang(request, resp, st)


@router.get("/")
async def home(request: Request, sf: SF, now: Now, st: SettingsDep) -> Response:
    """Type a code (输入 M码): with ?code= the code is entered, else the form."""
    typed = request.query_params.get("code")
    if typed is None:
        return _home(request, st, "", None)
    return await enter(request, sf, now, st, typed)


def _landing_csp(image_url: str | None) -> dict[str, str]:
    """The page's own CSP when the merchant's image is on another https origin (only that origin
    is added to img-src; scripts and everything else stay 'self')."""
    origin = landing.image_origin(image_url)
    if origin is None:
        return {}
    return {"Content-Security-Policy": CSP.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")}


@router.get("/c/{base}")
async def landing_page(base: str, request: Request, sf: SF, now: Now, st: SettingsDep) -> Response:
    """A campaign's landing page (蓝页) for this visitor."""
    vid = _visitor(request, st)
    try:
        await run_in_threadpool(limit_client, request)
        data = await run_in_threadpool(landing.page, sf, base, vid, int(now() * 1000))
    except ApiError as e:
        return _home(request, st, base, e)
    share_url = f"{str(request.base_url).rstrip('/')}/r/{data['share_code']}" if data["share_code"] else None
    notice = request.query_params.get("n")
    html = shopper_pages.landing_page(lang_of(request), data, share_url,
                                      _form_token(st, vid) if vid else "",
                                      notice if notice in NOTICES else None)
    headers = {**NO_STORE, **_landing_csp(data["campaign"]["image_url"])}
    return remember_lang(request, HTMLResponse(html, headers=headers), st)


async def _posted(request: Request, st: Settings) -> tuple[str | None, dict[str, str]]:
    """The visitor and the urlencoded form, or None when the form is not this visitor's own
    (another origin, no signed cookie, a token that does not match)."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    vid = _visitor(request, st)
    if vid is None or not _same_origin(request) or not landing.form_token_ok(
            codes.visitor_key(st.visitor_secret, st.admin_key), vid, form.get("csrf", "")):
        return None, form
    return vid, form


def _back(base: str, notice: str | None = None, anchor: str = "") -> RedirectResponse:
    safe = base if base.isascii() and base.isdigit() and len(base) <= codes.MAX_BASE_DIGITS else ""
    where = f"/c/{safe}" if safe else "/"
    return RedirectResponse(where + (f"?n={notice}" if notice and safe else "") + anchor, status_code=303,
                            headers=NO_STORE)


@router.post("/c/{base}/share")
async def share(base: str, request: Request, sf: SF, st: SettingsDep) -> Response:
    """The visitor's share code in this campaign (made once; caps as POST /entries/{id}/share)."""
    vid, _ = await _posted(request, st)
    if vid is None:
        return _back(base, "bad_form")
    address = client_address(request)
    try:
        await run_in_threadpool(limit_client, request)
        await run_in_threadpool(landing.share, sf, base, vid, st.share_max_per_visitor,
                                lambda: limits(request).check_share(address))
    except RateLimited:
        return _back(base, "rate_limited", "#share")
    except ApiError as e:
        if e.code == "unknown_code":
            return _home(request, st, base, e)
        return _back(base, e.code if e.code in NOTICES else "no_entry", "#share")
    return _back(base, None, "#share")


@router.post("/me/saved")
async def save(request: Request, sf: SF, now: Now, st: SettingsDep) -> Response:
    """Save a campaign to "my codes" (shown on /me), from its landing page's form."""
    vid, form = await _posted(request, st)
    base = form.get("base", "")[:20]
    if vid is None:
        return _back(base, "bad_form")
    try:
        await run_in_threadpool(limit_client, request)
        await run_in_threadpool(saved.save, sf, vid, base, int(now() * 1000))
    except RateLimited:
        return _back(base, "rate_limited")
    except ApiError as e:
        return _home(request, st, base, e)
    return _back(base)


@router.get("/e/{entry_id}")
async def entry_landing(entry_id: str, request: Request, sf: SF, st: SettingsDep) -> Response:
    """An address with an entry id (the pay page's way back) goes to the campaign's landing page,
    which finds the visitor's entry by their cookie."""
    try:
        await run_in_threadpool(limit_client, request)
    except ApiError as e:
        return _home(request, st, "", e)
    base = await run_in_threadpool(landing.entry_base, sf, entry_id)
    if base is None:
        return _home(request, st, "", landing.unknown(entry_id[:8]))
    return RedirectResponse(f"/c/{base}", status_code=303, headers=NO_STORE)
