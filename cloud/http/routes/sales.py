"""Sales attributed two ways (cloud/services/sales.py), and the shopper's two ways to a sale:
GET /go/{entry_id} (to the merchant's online shop with a click token) and GET /e/{entry_id}/pay (a
checkout code for the counter). The shopper's routes are keyless and rate-limited per client
address; a browser gets a page in its language for every refusal, never JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now, SettingsDep
from cloud.http.error_handlers import error_response
from cloud.http.inputs import SaleOnlineIn, SaleTillIn
from cloud.http.ratelimit import limit_client
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, checkout, clicks, sales
from cloud.settings import Settings
from cloud.web import sales_pages

router = APIRouter()

_REPLAYED = {"Idempotent-Replayed": {"description": "true if this answer repeats an earlier one",
                                     "schema": {"type": "string", "enum": ["true", "false"]}}}
IdempotencyKey = Annotated[str, Header(description="1 to 200 characters; a repeat returns the first answer")]
EntryPath = Annotated[str, Path(description="the shopper's entry (a 128-bit secret, 32 hex digits)")]
NO_STORE = {"Cache-Control": "no-store"}



def _answer(answer: dict[str, object], replayed: bool) -> JSONResponse:
    return JSONResponse(answer, status_code=201,
                        headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.post("/sales/online", status_code=201, tags=["orders"], response_model=o.OrderOut,
             responses={201: {"headers": _REPLAYED}, **errors(*KEYED, 404, 409)})
def report_online_sale(body: SaleOnlineIn, sf: SF, p: Merchantish, now: Now,
                       idempotency_key: IdempotencyKey = "") -> JSONResponse:
    """The merchant's shop server reports a sale with the click token its visitor brought
    (`mcode_click`); the order and its chain are booked like POST /orders. 404 unknown_click; 409
    outside_window, campaign_released, campaign_ended, campaign_not_started, idempotency_conflict."""
    answer, replayed = sales.online(sf, auth.tenant(p, body.merchant_id), idempotency_key, body.click_token,
                                    body.amount_minor, int(now() * 1000))
    return _answer(answer, replayed)


@router.post("/sales/till", status_code=201, tags=["orders"], response_model=o.OrderOut,
             responses={201: {"headers": _REPLAYED}, **errors(*KEYED, 404, 409)})
def record_till_sale(body: SaleTillIn, sf: SF, p: Merchantish, now: Now,
                     idempotency_key: IdempotencyKey = "") -> JSONResponse:
    """A sale at the counter by the shopper's checkout code (what the till page does). 400
    bad_checkout_code; 404 unknown_checkout_code; 409 checkout_code_used, checkout_code_expired,
    wrong_campaign, outside_window, campaign_released, campaign_ended, idempotency_conflict."""
    answer, replayed = sales.till(sf, auth.tenant(p, body.merchant_id), idempotency_key, body.checkout_code,
                                  body.amount_minor, int(now() * 1000), body.campaign_id)
    return _answer(answer, replayed)


def lang_of(request: Request) -> str:
    return sales_pages.pick_lang(request.query_params.get("lang"),
                                 request.cookies.get(sales_pages.LANG_COOKIE),
                                 request.headers.get("accept-language", ""))


def remember_lang(request: Request, resp: Response, st: Settings) -> Response:
    """A ?lang= choice is kept in the `lang` cookie for the next pages."""
    chosen = request.query_params.get("lang")
    if chosen in sales_pages.LANGS:
        resp.set_cookie(sales_pages.LANG_COOKIE, chosen, max_age=365 * 24 * 3600, path="/", samesite="lax",
                        secure=st.cookie_secure)
    return resp


def _error_page(request: Request, st: Settings, e: ApiError, back_url: str | None,
                title: tuple[str, str]) -> Response:
    if "text/html" not in request.headers.get("accept", ""):
        return error_response(e.status, e.code, e.message, e.message_zh)
    html = sales_pages.pay_error_page(lang_of(request), (e.message_zh, e.message), back_url, title)
    return remember_lang(request, HTMLResponse(html, status_code=e.status, headers=NO_STORE), st)


@router.get("/go/{entry_id}", dependencies=[Depends(limit_client)], include_in_schema=False)
async def go_to_shop(entry_id: EntryPath, request: Request, sf: SF, now: Now, st: SettingsDep) -> Response:
    """From the landing page to the merchant's online shop: records a click and redirects (303)
    with a click token (`mcode_click`) added to the target's query; the shop reports the sale with
    it (POST /sales/online). A browser hop, not an API operation: outside the document. Refusals as
    for the pay page (404 unknown_entry, no_target; 409 campaign_released, campaign_ended)."""
    try:
        url = await run_in_threadpool(clicks.click, sf, entry_id, int(now() * 1000))
    except ApiError as e:
        return _error_page(request, st, e, None, sales_pages.GO_ERROR_TITLE)
    return RedirectResponse(url, status_code=303, headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


@router.get("/e/{entry_id}/pay", tags=["public"], dependencies=[Depends(limit_client)],
            response_class=HTMLResponse, responses=errors(404, 409, 429))
async def pay_at_counter(entry_id: EntryPath, request: Request, sf: SF, now: Now,
                         st: SettingsDep) -> Response:
    """Pay at the counter (到店付款): a page with the entry's checkout code, large, with its QR,
    valid for a limited time (settings checkout_ttl_s); a reload shows the same code while it
    lasts. Refusals are JSON for API clients and a page in the shopper's language for a browser
    (Accept: text/html): 404 unknown_entry; 409 campaign_released, campaign_not_started,
    campaign_ended, outside_window."""
    now_ms = int(now() * 1000)
    back = f"/e/{entry_id}"
    try:
        c = await run_in_threadpool(checkout.issue, sf, entry_id, now_ms, st.checkout_ttl_s)
    except ApiError as e:
        return _error_page(request, st, e, back if e.code != "unknown_entry" else None,
                           sales_pages.PAY_ERROR_TITLE)
    lang = lang_of(request)
    html = sales_pages.pay_page(lang, c["code"], c["expires_at_ms"], now_ms, back,
                                c["label"]["zh" if lang == "zh-CN" else "en"])
    return remember_lang(request, HTMLResponse(html, headers=NO_STORE), st)
