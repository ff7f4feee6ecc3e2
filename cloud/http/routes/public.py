"""The keyless routes a shopper's phone calls: health, code resolution, sharing (own earnings: me.py).
Each is rate-limited per client address (429 with Retry-After); code lookups also draw on the
campaign's guess budgets (cloud/services/ratelimits.py). The visitor token lives only in its
cookie, signed by the server: a token the server did not sign is replaced by a fresh one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.http import schemas as o
from cloud.http.deps import SF, Now, SettingsDep
from cloud.http.params import CodePath, VisitorCookie
from cloud.http.ratelimit import client_address, limit_client, limits
from cloud.http.routes import shopper
from cloud.http.schemas import errors
from cloud.services import codes
from cloud.services.codes import VISITOR_COOKIE
from cloud.settings import Settings
from cloud.store.engine import SessionFactory, ping

router = APIRouter()

VISITOR_MAX_AGE_S = shopper.VISITOR_MAX_AGE_S
_VISITOR_SET = {"Set-Cookie": {"description": f"{VISITOR_COOKIE}: the shopper's visitor token, signed by "
                                              "the server (sent when the request had no valid one)",
                               "schema": {"type": "string"}}}


def _visitor_key(st: Settings) -> bytes:
    return codes.visitor_key(st.visitor_secret, st.admin_key)


@router.get("/healthz", tags=["public"], response_model=o.Health)
def healthz(sf: SF) -> dict[str, str]:
    """The API and its database answer."""
    ping(sf)
    return {"status": "ok"}


def _html_too(out: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A refusal answers a browser with a page (text/html), any other client with JSON."""
    for r in out.values():
        r["content"]["text/html"] = {"schema": {"type": "string"}}
    return out


@router.get("/r/{code}", tags=["public"], response_model=o.EntryOut,
            responses={200: {"headers": _VISITOR_SET},
                       303: {"description": "a browser (Accept: text/html) goes to the campaign's landing "
                                            "page, /c/{base}", "headers": _VISITOR_SET},
                       **_html_too(errors(400, 404, 410, 429))})
async def resolve_code(code: CodePath, request: Request, sf: SF, now: Now, st: SettingsDep,
                       visitor: VisitorCookie = None) -> Response:
    """A typed M-code (BASE-NN from a display, BASE-NNNNNN from a sharer, the same without the
    dash, or a bare base code) becomes an entry. Wrong guesses also count against the campaign's
    limits. An API client gets the entry as JSON; a browser (Accept: text/html) is sent on to the
    landing page, and a refused code gets a page in its language saying what to do next."""
    if shopper.wants_html(request):
        return await shopper.enter(request, sf, now, st, code)
    return await run_in_threadpool(_resolve_json, code, request, sf, now, st, visitor)


def _resolve_json(code: str, request: Request, sf: SessionFactory, now: Any, st: Settings,
                  visitor: str | None) -> JSONResponse:
    limit_client(request)
    key = _visitor_key(st)
    known = codes.visitor_from_token(key, visitor)
    vid = known or codes.new_visitor()
    entry = codes.resolve_limited(sf, limits(request), code, vid, now(), client_address(request))
    resp = JSONResponse(entry)
    if known is None:
        resp.set_cookie(VISITOR_COOKIE, codes.visitor_token(key, vid), max_age=VISITOR_MAX_AGE_S,
                        httponly=True, samesite="lax", secure=st.cookie_secure)
    return resp


@router.post("/entries/{entry_id}/share", status_code=201, tags=["public"],
             dependencies=[Depends(limit_client)], response_model=o.ShareOut,
             responses=errors(400, 404, 409, 429))
def share_entry(entry_id: str, request: Request, sf: SF, st: SettingsDep) -> dict[str, Any]:
    """The entry's shopper becomes a sharer with a personal code; asking again returns it. New
    codes are capped per visitor and campaign (409 share_limit) and per address (429)."""
    address = client_address(request)
    return codes.share(sf, entry_id, st.share_max_per_visitor,
                       before_new=lambda: limits(request).check_share(address))
