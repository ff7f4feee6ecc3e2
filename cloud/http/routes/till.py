"""The till (收银台): a cashier behind the merchant page's login types the shopper's checkout code
and the amount, and the sale is recorded (cloud/services/sales.py, channel "till"). An HTML form,
outside the API's document (POST /sales/till is its API twin).

Each form carries the session's CSRF token (synchronizer token, as /logout) and a fresh
Idempotency-Key, so a double tap or a reload of the answer records the sale once. Without a live
login the page sends the browser to /login."""

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
from cloud.services import campaigns, merchants, sales, web_sessions
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from cloud.web import sales_pages

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
STATUS_OF_CSRF = 403


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
        err = ("表单已过期，请重试。", "The form expired. Try again.")
        return await run_in_threadpool(lambda: _page(request, ps, STATUS_OF_CSRF, form=typed, error=err))
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
