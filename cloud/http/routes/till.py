"""The till (收银台): a cashier behind the merchant page's login types the shopper's checkout code
and the amount, and the sale is recorded (cloud/services/sales.py, channel "till"). An HTML form,
outside the API's document (POST /sales/till is its API twin).

Each form carries the session's CSRF token (synchronizer token, as /logout) and a fresh
Idempotency-Key, so a double tap or a reload of the answer records the sale once. Without a live
login the page sends the browser to /login.

Refunds (GET/POST /till/refund, cloud/services/till_refunds.py): the cashier types the checkout
code or the order number, sees the order and confirms with a second form; refunding twice says it
was refunded already. Owners and staff may sell and refund; a viewer's or shared link's sign-in
only reads (403 with the reason)."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http.deps import page_session
from cloud.http.routes.login import _posted, _same_origin
from cloud.http.routes.sales import lang_of, remember_lang
from cloud.services import campaigns, merchants, sales, till_refunds, users, web_sessions
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from cloud.web import sales_pages

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
STATUS_OF_CSRF = 403
EXPIRED = ("表单已过期，请重试。", "The form expired. Try again.")
READ_ONLY = sales_pages.REFUND_LABELS["read_only"]


def _may_act(ps: web_sessions.PageSession) -> bool:
    return ps.console_role in (users.OWNER, users.STAFF)


def _campaigns(sf: SessionFactory, merchant_id: int, lang: str) -> list[dict[str, Any]]:
    """The merchant's running campaigns, for the till's campaign choice."""
    return [{"id": c["campaign_id"], "base_code": c["base_code"],
             "label": c["label"]["zh" if lang == "zh-CN" else "en"]}
            for c in campaigns.list_for(sf, merchant_id) if c["released_at_ms"] is None]


def _page(request: Request, ps: web_sessions.PageSession, status: int = 200, **kw: Any) -> Response:
    sf: SessionFactory = request.app.state.session_factory
    st: Settings = request.app.state.settings
    lang = lang_of(request)
    m = merchants.find(sf, ps.merchant_id)
    idem = f"till:{secrets.token_urlsafe(16)}"  # a fresh key per form: a resubmit is a replay
    html = sales_pages.till_page(lang, m.name if m is not None else "", ps.csrf_token, idem,
                                 _campaigns(sf, ps.merchant_id, lang), **kw)
    return remember_lang(request, HTMLResponse(html, status_code=status, headers=NO_STORE), st)


@router.get("/till")
def get_till(request: Request) -> Response:
    """The till form (收银台), in the cashier's language; /login first without a live login."""
    ps = page_session(request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    return _page(request, ps)


@router.post("/till")
async def post_till(request: Request) -> Response:
    """Records the sale, or shows the form again with the reason and what was typed."""
    form = await _posted(request)
    ps = await run_in_threadpool(page_session, request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    typed = {k: form.get(k, "")[:40] for k in ("code", "amount", "campaign")}
    if not (_same_origin(request) and web_sessions.csrf_ok(ps, form.get("csrf", ""))):
        return await run_in_threadpool(lambda: _page(request, ps, STATUS_OF_CSRF, form=typed, error=EXPIRED))
    if not _may_act(ps):
        return await run_in_threadpool(lambda: _page(request, ps, 403, form=typed, error=READ_ONLY))
    now_ms = int(request.app.state.clock() * 1000)
    campaign = int(typed["campaign"]) if typed["campaign"].isdigit() and len(typed["campaign"]) < 10 else None
    idem = form.get("idem", "")[:200]

    def record() -> Response:
        try:
            amount = sales.parse_amount(typed["amount"])
            answer, replayed = sales.till(request.app.state.session_factory, ps.merchant_id, idem,
                                          typed["code"], amount, now_ms, campaign)
        except ApiError as e:
            return _page(request, ps, e.status, form=typed, error=(e.message_zh, e.message))
        return _page(request, ps, done={"answer": answer, "replayed": replayed})
    return await run_in_threadpool(record)


def _refund_page(request: Request, ps: web_sessions.PageSession, status: int = 200, **kw: Any) -> Response:
    sf: SessionFactory = request.app.state.session_factory
    m = merchants.find(sf, ps.merchant_id)
    html = sales_pages.refund_page(lang_of(request), m.name if m is not None else "", ps.csrf_token, **kw)
    return remember_lang(request, HTMLResponse(html, status_code=status, headers=NO_STORE),
                         request.app.state.settings)


@router.get("/till/refund")
def get_refund(request: Request) -> Response:
    """The refund form (退款): a checkout code or order number to look up; /login first."""
    ps = page_session(request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    return _refund_page(request, ps)


@router.post("/till/refund")
async def post_refund(request: Request) -> Response:
    """`ref`: find the order and show it to confirm; `order`: refund it (the confirmation)."""
    form = await _posted(request)
    ps = await run_in_threadpool(page_session, request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    typed = form.get("ref", "")[:40]
    if not (_same_origin(request) and web_sessions.csrf_ok(ps, form.get("csrf", ""))):
        return await run_in_threadpool(lambda: _refund_page(request, ps, STATUS_OF_CSRF, typed=typed,
                                                            error=EXPIRED))
    if not _may_act(ps):
        return await run_in_threadpool(lambda: _refund_page(request, ps, 403, typed=typed, error=READ_ONLY))
    sf: SessionFactory = request.app.state.session_factory
    now_ms = int(request.app.state.clock() * 1000)
    order = form.get("order", "")[:12]

    def act() -> Response:
        try:
            if "order" in form:
                done, replayed = till_refunds.refund(sf, ps.merchant_id, int(order) if order.isdigit() else 0,
                                                     now_ms)
                return _refund_page(request, ps, done={**done, "replayed": replayed})
            found = till_refunds.find_order(sf, ps.merchant_id, typed)
            return _refund_page(request, ps, typed=typed, order=found)
        except ApiError as e:
            return _refund_page(request, ps, e.status, typed=typed, error=(e.message_zh, e.message))
    return await run_in_threadpool(act)
