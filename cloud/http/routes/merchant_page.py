"""The merchant page (商户页): HTML from cloud/web, and the same numbers as JSON. A browser signs
in at /login (a session cookie); an API client sends its key as `Authorization: Bearer`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.http import schemas as o
from cloud.http.deps import SF, MerchantDep, Now, PageMerchant
from cloud.http.schemas import errors
from cloud.services import dashboard, stats, users
from cloud.web import dashboard_pages, pages

router = APIRouter(tags=["merchant page"])


@router.get("/merchant", response_class=HTMLResponse, responses=errors(401, 403))
def get_merchant_page(request: Request, sf: SF, now: Now, found: PageMerchant) -> Response:
    """The merchant page (商户页), zh-CN and en: the dashboard for a period (the page's own query,
    `period=today|7d|30d`, or `period=custom&from=YYYY-MM-DD&to=YYYY-MM-DD`, UTC days) against the
    previous one, then each device. Without a key or a live login: 303 to /login."""
    if found is None:
        return RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    merchant, session = found
    if session is not None and session.console_role == users.STAFF:  # staff work the till only
        return RedirectResponse("/till", status_code=303, headers={"Cache-Control": "no-store"})
    now_ms = int(now() * 1000)
    q = request.query_params
    name, bad, custom = q.get("period", "7d"), False, (q.get("from", ""), q.get("to", ""))
    try:
        bounds = _custom(*custom) if name == "custom" else (None, None)
        span = dashboard.period(name, now_ms, *bounds)
    except ValueError:
        name, bad, span = "7d", True, dashboard.period("7d", now_ms)
    section = dashboard_pages.dashboard_section(dashboard.dashboard(sf, merchant.id, span, now_ms), name,
                                                dashboard.currency(sf, merchant.id), bad, custom)
    html = pages.merchant_page(merchant.name, stats.merchant_stats(sf, merchant.id),
                               csrf=session.csrf_token if session is not None else None,
                               owner=session is not None and session.console_role == users.OWNER,
                               dashboard=section)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/merchant/stats.json", response_model=o.MerchantStats, responses=errors(401, 403))
def get_merchant_stats(sf: SF, merchant: MerchantDep) -> dict[str, Any]:
    """The merchant page's numbers: per device scans, events, gaps, entries; totals."""
    return stats.merchant_stats(sf, merchant.id)


def _custom(start: str, end: str) -> tuple[int, int]:
    """[start day, the day after end) in UTC milliseconds; ValueError for anything else."""
    a = dt.datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    b = dt.datetime.strptime(end, "%Y-%m-%d").replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    return int(a.timestamp() * 1000), int(b.timestamp() * 1000)
