"""The keyless routes a shopper's phone calls: health, code resolution, sharing, own earnings.
Each is rate-limited per client address (429 with Retry-After); wrong code guesses also count
against the campaign's own limit (cloud/http/ratelimit.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from cloud.errors import ApiError, not_found
from cloud.http import schemas as o
from cloud.http.deps import SF, Now, SettingsDep
from cloud.http.params import CodePath, EarningsCookie, VisitorCookie
from cloud.http.ratelimit import RateLimits, limit_client
from cloud.http.schemas import errors
from cloud.services import codes, sharers
from cloud.services.codes import VISITOR_COOKIE, valid_visitor
from cloud.store.engine import SessionFactory, ping
from protocol.rotation import split_code

router = APIRouter()

VISITOR_MAX_AGE_S = 365 * 24 * 3600
_VISITOR_SET = {"Set-Cookie": {"description": f"{VISITOR_COOKIE}: the shopper's visitor token",
                               "schema": {"type": "string"}}}


def _resolve_limited(limits: RateLimits, sf: SessionFactory, code: str, visitor: str | None,
                     now: float) -> dict[str, Any]:
    """codes.resolve, charging the campaign's bucket for a wrong guess (unknown or expired suffix);
    anything else gets its token back."""
    parts = split_code(code) if code.isascii() else None
    if parts is None:
        return codes.resolve(sf, code, visitor, now)  # malformed: names no campaign
    base = parts[0]
    limits.check_campaign(base)
    wrong_guess = False
    try:
        return codes.resolve(sf, code, visitor, now)
    except ApiError as e:
        wrong_guess = e.status in (404, 410)
        raise
    finally:
        if not wrong_guess:
            limits.campaign.give_back(base)


@router.get("/healthz", tags=["public"], response_model=o.Health)
def healthz(sf: SF) -> dict[str, str]:
    """The API and its database answer."""
    ping(sf)
    return {"status": "ok"}


@router.get("/r/{code}", tags=["public"], dependencies=[Depends(limit_client)], response_model=o.EntryOut,
            responses={200: {"headers": _VISITOR_SET}, **errors(400, 404, 410, 429)})
def resolve_code(code: CodePath, request: Request, sf: SF, now: Now, st: SettingsDep,
                 visitor: VisitorCookie = None) -> JSONResponse:
    """A typed M-code (BASE-NN from a display, BASE-NNNNNN from a sharer) becomes an entry.
    Wrong guesses also count against the campaign's limit."""
    entry = _resolve_limited(request.app.state.rate_limits, sf, code, visitor, now())
    resp = JSONResponse(entry)
    resp.set_cookie(VISITOR_COOKIE, entry["visitor"], max_age=VISITOR_MAX_AGE_S, httponly=True,
                    samesite="lax", secure=st.cookie_secure)
    return resp


@router.post("/entries/{entry_id}/share", status_code=201, tags=["public"],
             dependencies=[Depends(limit_client)], response_model=o.ShareOut,
             responses=errors(400, 404, 409, 429))
def share_entry(entry_id: str, sf: SF) -> dict[str, Any]:
    """The entry's shopper becomes a sharer with a personal code; asking again returns it."""
    return codes.share(sf, entry_id)


@router.get("/me/earnings", tags=["sharer"], dependencies=[Depends(limit_client)],
            response_model=o.MyEarnings, responses=errors(404, 429))
def get_my_earnings(sf: SF, now: Now, visitor: EarningsCookie = "") -> dict[str, Any]:
    """A sharer's own statement, by the visitor cookie their phone got at their first code (no key)."""
    if not valid_visitor(visitor):
        raise not_found("no_visitor", "this browser has no share codes yet", "此浏览器还没有分享码")
    return sharers.my_earnings(sf, visitor, int(now() * 1000))
