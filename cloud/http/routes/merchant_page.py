"""The merchant page (商户页): HTML from cloud/web, and the same numbers as JSON. A browser signs
in at /login (a session cookie); an API client sends its key as `Authorization: Bearer`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.http import schemas as o
from cloud.http.deps import SF, MerchantDep, PageMerchant
from cloud.http.schemas import errors
from cloud.services import stats, users
from cloud.web import pages

router = APIRouter(tags=["merchant page"])


@router.get("/merchant", response_class=HTMLResponse, responses=errors(401, 403))
def get_merchant_page(sf: SF, found: PageMerchant) -> Response:
    """The merchant page (商户页), zh-CN and en. Without a key or a live login: 303 to /login."""
    if found is None:
        return RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    merchant, session = found
    if session is not None and session.console_role == users.STAFF:  # staff work the till only
        return RedirectResponse("/till", status_code=303, headers={"Cache-Control": "no-store"})
    html = pages.merchant_page(merchant.name, stats.merchant_stats(sf, merchant.id),
                               csrf=session.csrf_token if session is not None else None,
                               owner=session is not None and session.console_role == users.OWNER)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/merchant/stats.json", response_model=o.MerchantStats, responses=errors(401, 403))
def get_merchant_stats(sf: SF, merchant: MerchantDep) -> dict[str, Any]:
    """The merchant page's numbers: per device scans, events, gaps, entries; totals."""
    return stats.merchant_stats(sf, merchant.id)
