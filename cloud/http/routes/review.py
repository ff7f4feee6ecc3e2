"""Fraud review (issue 14 part 6): the JSON API for a merchant's tools (Bearer key) and the
console's page /merchant/review (session; owners decide with CSRF forms, viewers and shared links
read, staff are sent to the till). Another tenant's order answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now, page_session
from cloud.http.error_handlers import error_response
from cloud.http.inputs import Strict, example
from cloud.http.params import AdminTenant, id_path
from cloud.http.routes.login import _posted, _same_origin
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, fraud, fraud_review, merchants, users, web_sessions
from cloud.services.auth import MERCHANT, Principal
from cloud.store.engine import SessionFactory
from cloud.web import review_pages

router = APIRouter()
pages = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}

Status = Annotated[Literal["open", "held", "released", "rejected"] | None,
                   Query(description="only orders whose review is in this status")]


class DecisionIn(Strict):
    model_config = example(action="hold")
    action: Literal["hold", "release", "reject"] = Field(
        description="hold: keep the sharer credits from falling due; release: let them through; "
                    "reject: reverse them in the ledger (a transaction of kind reject)")


@router.get("/review/flags", tags=["orders"], response_model=o.ReviewList, responses=errors(*KEYED))
def list_review_flags(sf: SF, p: Merchantish, status: Status = None,
                      merchant_id: AdminTenant = None) -> dict[str, Any]:
    """Flagged orders, newest first (at most 200), with each flag's numbers and the chain drawn
    link by link; counts per review status (docs/fraud.md)."""
    return fraud_review.list_flagged(sf, auth.tenant(p, merchant_id), status)


@router.post("/review/orders/{order_id}/decision", tags=["orders"], response_model=o.ReviewDecision,
             responses=errors(*KEYED, 404, 409))
def decide_review(order_id: Annotated[int, id_path("order")], body: DecisionIn, sf: SF, p: Merchantish,
                  now: Now) -> dict[str, Any]:
    """Hold, release or reject a flagged order's sharer payouts; the decision is recorded with the
    key that made it. Released and rejected are final; repeating a decision answers the same."""
    who = "admin key" if p.is_admin else fraud_review.decider(sf, None, p.key_id)
    return fraud_review.decide(sf, p, order_id, body.action, who, int(now() * 1000))


@router.post("/review/scan", tags=["orders"], response_model=o.ReviewScan, responses=errors(*KEYED))
def scan_review(sf: SF, p: Merchantish, now: Now, merchant_id: AdminTenant = None) -> dict[str, Any]:
    """Evaluate the tenant's placed orders (the newest 5000) and raise the flags they lack."""
    return fraud.scan(sf, auth.tenant(p, merchant_id), int(now() * 1000))


def _who(sf: SessionFactory, ps: web_sessions.PageSession) -> str:
    return fraud_review.decider(sf, ps.user_id, ps.key_id)


def _page(request: Request, ps: web_sessions.PageSession, status_code: int = 200,
          note: tuple[str, str] | None = None, error: tuple[str, str] | None = None) -> Response:
    sf: SessionFactory = request.app.state.session_factory
    wanted = request.query_params.get("status")
    status = wanted if wanted in fraud_review.STATUSES else None
    m = merchants.find(sf, ps.merchant_id)
    listed = fraud_review.list_flagged(sf, ps.merchant_id, status)
    owner = ps.console_role == users.OWNER
    html = review_pages.review_page(m.name if m else "", listed, status, ps.csrf_token, owner, note, error)
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)


def _session(request: Request) -> web_sessions.PageSession | Response:
    ps = page_session(request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    if ps.console_role == users.STAFF:  # staff work the till only
        return RedirectResponse("/till", status_code=303, headers=NO_STORE)
    return ps


@pages.get("/merchant/review")
def get_review_page(request: Request) -> Response:
    ps = _session(request)
    return ps if isinstance(ps, Response) else _page(request, ps)


async def _owner_form(request: Request) -> tuple[web_sessions.PageSession | Response, dict[str, str]]:
    form = await _posted(request)
    ps = await run_in_threadpool(_session, request)
    if isinstance(ps, Response):
        return ps, form
    if ps.console_role != users.OWNER:
        return error_response(403, "owner_only", "only an owner decides on flagged payouts",
                              "只有所有者可以审核被标记的分成"), form
    if not (_same_origin(request) and web_sessions.csrf_ok(ps, form.get("csrf", ""))):
        page = await run_in_threadpool(_page, request, ps, 403, None, review_pages.REVIEW_LABELS["err_csrf"])
        return page, form
    return ps, form


@pages.post("/merchant/review/scan")
async def post_review_scan(request: Request) -> Response:
    ps, _form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    got = await run_in_threadpool(fraud.scan, sf, ps.merchant_id, now_ms)
    zh, en = review_pages.REVIEW_LABELS["scanned"]
    return await run_in_threadpool(_page, request, ps, 200, (zh.format(**got), en.format(**got)))


@pages.post("/merchant/review/{order_id}")
async def post_review_decision(order_id: int, request: Request) -> Response:
    ps, form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        await run_in_threadpool(fraud_review.decide, sf, Principal(MERCHANT, ps.merchant_id), order_id,
                                form.get("action", ""), _who(sf, ps), now_ms)
    except ApiError as e:
        return await run_in_threadpool(_page, request, ps, e.status, None, (e.message_zh, e.message))
    return RedirectResponse(f"/merchant/review#order-{order_id}", status_code=303, headers=NO_STORE)
