"""The merchant page (商户页): HTML from cloud/web, and the same numbers as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from cloud.http import schemas as o
from cloud.http.deps import SF, MerchantDep
from cloud.http.schemas import errors
from cloud.services import stats
from cloud.web import pages

router = APIRouter(tags=["merchant page"])


@router.get("/merchant", response_class=HTMLResponse, responses=errors(401, 403))
def get_merchant_page(sf: SF, merchant: MerchantDep) -> HTMLResponse:
    """The merchant page (商户页), zh-CN and en."""
    return HTMLResponse(pages.merchant_page(merchant.name, stats.merchant_stats(sf, merchant.id)),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/merchant/stats.json", response_model=o.MerchantStats, responses=errors(401, 403))
def get_merchant_stats(sf: SF, merchant: MerchantDep) -> dict[str, Any]:
    """The merchant page's numbers: per device scans, events, gaps, entries; totals."""
    return stats.merchant_stats(sf, merchant.id)
