"""Payouts (issue 14 part 5): the JSON API for a merchant's tools (Bearer key) and the console's
page /merchant/payouts (session; owners mark payouts paid with a CSRF form, viewers and shared
links read, staff are sent to the till). Another tenant's sharer or settlement answers 404, like
one that does not exist."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError, bad_request
from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now, page_session
from cloud.http.error_handlers import error_response
from cloud.http.inputs import SettleIn
from cloud.http.params import AdminTenant, id_path
from cloud.http.routes.log import Signer, _bundle
from cloud.http.routes.login import _same_origin
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, merchants, payouts, tlog, tlog_bundle, users, web_sessions
from cloud.web import payout_pages

router = APIRouter()
pages = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
_REPLAYED = {"Idempotent-Replayed": {"description": "true if this answer repeats an earlier one",
                                     "schema": {"type": "string", "enum": ["true", "false"]}}}
Fmt = Annotated[str, Query(pattern="^(json|csv)$", description="json, or csv: one line per sharer paid")]


def _ms(now: Now) -> int:
    return int(now() * 1000)


def _key(idempotency_key: str) -> str:
    if not 1 <= len(idempotency_key) <= 200:
        raise bad_request("bad_idempotency_key", "send an Idempotency-Key header of 1 to 200 characters",
                          "请提供 1 至 200 个字符的 Idempotency-Key 请求头")
    return idempotency_key


@router.get("/payouts/due", tags=["ledger"], response_model=o.DueList, responses=errors(*KEYED))
def get_due_payouts(sf: SF, p: Merchantish, now: Now, merchant_id: AdminTenant = None) -> dict[str, Any]:
    """Sharers with a payout due now (past its hold, not on an order with a fraud flag open or
    held), largest first; totals per currency are the sums of the rows."""
    return payouts.due_list(sf, auth.tenant(p, merchant_id), _ms(now))


@router.post("/payouts/settlements", status_code=201, tags=["ledger"], response_model=o.SettlementOut,
             responses={201: {"headers": _REPLAYED}, **errors(*KEYED, 409)})
def settle_payouts(body: SettleIn, sf: SF, p: Merchantish, now: Now, merchant_id: AdminTenant = None,
                   idempotency_key: Annotated[str, Header(description="1 to 200 characters; a repeat "
                                                          "returns the first answer")] = "") -> JSONResponse:
    """Marks what is due now to the named sharers (or all) as paid: one ledger transaction of kind
    settlement per sharer and a settlement leaf in the trust log. A repeat with the same
    Idempotency-Key returns the first answer; nothing due is 409 nothing_due."""
    who = "admin key" if p.is_admin else f"merchant key {p.key_id}"
    answer, replayed = payouts.settle(sf, auth.tenant(p, merchant_id), _key(idempotency_key),
                                      body.participant_ids, _ms(now), who)
    return JSONResponse(answer, status_code=201,
                        headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.get("/payouts/settlements", tags=["ledger"], response_model=o.SettlementList,
            responses=errors(*KEYED))
def list_settlements(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    """The tenant's settlements, newest first (at most 100), one row per currency."""
    return {"settlements": payouts.settlements(sf, auth.tenant(p, merchant_id))}


@router.get("/payouts/settlements/{settlement_id}", tags=["ledger"], response_model=o.SettlementOut,
            responses={200: o.CSV_SETTLEMENT, **errors(*KEYED, 404)})
def get_settlement(settlement_id: Annotated[int, id_path("settlement")], sf: SF, p: Merchantish,
                   format: Fmt = "json", merchant_id: AdminTenant = None) -> Response | dict[str, Any]:
    """One settlement: each sharer paid, the amount and its ledger transaction; format=csv for the
    export (settlement id, time, sharer id and code, amount in minor units and formatted, currency)."""
    answer = payouts.settlement(sf, auth.tenant(p, merchant_id), settlement_id)
    return _csv(answer) if format == "csv" else answer


@router.get("/payouts/sharers/{participant_id}", tags=["ledger"], response_model=o.PayoutStatement,
            responses=errors(*KEYED, 404))
def get_payout_statement(participant_id: Annotated[int, id_path("participant")], sf: SF, p: Merchantish,
                         now: Now, merchant_id: AdminTenant = None) -> dict[str, Any]:
    """One sharer's statement: earned, refunded, held, paid and due; each order's credit with its
    state and its payout's proof bundle; each settlement that paid them."""
    return payouts.statement(sf, auth.tenant(p, merchant_id), participant_id, _ms(now))


def _csv(answer: dict[str, Any]) -> Response:
    name = f"settlement-{answer['settlement_id']}.csv"
    return PlainTextResponse(payout_pages.settlement_csv(answer), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE})


# The console's pages ------------------------------------------------------------------------------

def _session(request: Request) -> web_sessions.PageSession | Response:
    ps = page_session(request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    if ps.console_role == users.STAFF:  # staff work the till only
        return RedirectResponse("/till", status_code=303, headers=NO_STORE)
    return ps


def _page(request: Request, ps: web_sessions.PageSession, status: int = 200,
          notice: tuple[str, str] | None = None, error: tuple[str, str] | None = None) -> Response:
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    m = merchants.find(sf, ps.merchant_id)
    owner = ps.console_role == users.OWNER
    due, history = payouts.due_list(sf, ps.merchant_id, now_ms), payouts.settlements(sf, ps.merchant_id)
    html = payout_pages.payouts_page(m.name if m else "", due, history, ps.csrf_token if owner else None,
                                     owner, secrets.token_urlsafe(16), notice, error)
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


@pages.get("/merchant/payouts")
def get_payouts_page(request: Request) -> Response:
    ps = _session(request)
    return ps if isinstance(ps, Response) else _page(request, ps)


def _label(code: str) -> tuple[str, str]:
    return payout_pages.PAYOUT_LABELS.get(f"err_{code}", payout_pages.PAYOUT_LABELS["err_other"])


@pages.post("/merchant/payouts/settle")
async def post_settle(request: Request) -> Response:
    """The owner's "mark paid": the checked sharers (pid, repeated) or all; the form's one-use key
    makes a double click or a resubmitted form pay once."""
    form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    fields = dict(form)
    ps = await run_in_threadpool(_session, request)
    if isinstance(ps, Response):
        return ps
    if ps.console_role != users.OWNER:
        return error_response(403, "owner_only", "only an owner marks payouts paid", "只有所有者可以标记付款")
    if not (_same_origin(request) and web_sessions.csrf_ok(ps, fields.get("csrf", ""))):
        return await run_in_threadpool(_page, request, ps, 403, None, _label("csrf"))
    pids = None if fields.get("all") == "1" else sorted({int(v) for k, v in form if k == "pid" and v.isdigit()
                                                         and 0 < int(v) < 2**31})
    if pids == []:
        return await run_in_threadpool(_page, request, ps, 400, None, _label("none_picked"))
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    who = await run_in_threadpool(payouts.who, sf, ps.user_id, ps.shared_link_id)
    try:
        answer, _ = await run_in_threadpool(payouts.settle, sf, ps.merchant_id, _key(fields.get("key", "")),
                                            pids, now_ms, who)
    except ApiError as e:
        return await run_in_threadpool(_page, request, ps, e.status, None, _label(e.code))
    return await run_in_threadpool(_page, request, ps, 200, payout_pages.done_notice(answer))


@pages.get("/merchant/payouts/settlements/{settlement_id}.csv")
def get_settlement_csv(settlement_id: int, request: Request) -> Response:
    ps = _session(request)
    if isinstance(ps, Response):
        return ps
    try:
        return _csv(payouts.settlement(request.app.state.session_factory, ps.merchant_id, settlement_id))
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.message_zh)


@pages.get("/merchant/payouts/sharers/{participant_id}")
def get_statement_page(participant_id: int, request: Request) -> Response:
    ps = _session(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        st = payouts.statement(sf, ps.merchant_id, participant_id, now_ms)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.message_zh)
    m = merchants.find(sf, ps.merchant_id)
    html = payout_pages.statement_page(m.name if m else "", st, "/merchant/payouts/proofs/")
    return HTMLResponse(html, headers=NO_STORE)


@pages.get("/merchant/payouts/proofs/{payout_id}")
def get_proof(payout_id: int, request: Request, log_key: Signer) -> Response:
    """The payout's proof bundle for the console's session (the JSON API's is
    GET /ledger/payouts/{id}/proof, with the merchant key)."""
    ps = _session(request)
    if isinstance(ps, Response):
        return ps
    sf = request.app.state.session_factory
    try:
        text = tlog_bundle.payout_bundle(sf, payout_id, tlog_bundle.merchant_may_see(ps.merchant_id),
                                         lambda: tlog.publish(sf, log_key))
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.message_zh)
    return _bundle(text, payout_id)
