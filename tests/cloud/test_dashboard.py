"""The merchant dashboard (issue 14 part 2): a period against the previous one, a time series,
funnels whose rows add up to the totals, the top sharers, chain depths and device health; and the
page in Chromium at phone size."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from cloud.services import codes, dashboard, orders
from cloud.store.engine import SessionFactory
from cloud.store.models import Payout
from protocol.rotation import window
from tests.cloud.conftest import Clock, World
from tests.cloud.test_merchant_page_browser import base_url, log_in  # noqa: F401 (fixture)
from tests.cloud.test_resolve_orders import PERIOD, code_at
from tests.pw import PHONE, chromium, context

DAY = 24 * 3600
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def _traffic(sf: SessionFactory, world: World, now: float) -> dict[str, str]:
    """This week: A and B come from display 0, C through A's share code and buys; eight days ago:
    D came from display 0 and bought."""
    mid = world.merchant["merchant_id"]
    code = code_at(world, window(now, PERIOD))
    a = codes.resolve(sf, code, "a" * 22, now)
    codes.resolve(sf, code, "b" * 22, now)
    share = codes.share(sf, a["entry_id"])["share_code"]
    c = codes.resolve(sf, share, "c" * 22, now)
    orders.place_order(sf, mid, "now-1", c["entry_id"], 10_000, at_ms=int(now * 1000))
    old = now - 8 * DAY
    d = codes.resolve(sf, code_at(world, window(old, PERIOD)), "d" * 22, old)
    orders.place_order(sf, mid, "old-1", d["entry_id"], 4_000, at_ms=int(old * 1000))
    return {"share": share.split("-")[-1]}


def test_headlines_compare_with_the_previous_period_and_rows_add_up(sf: SessionFactory, world: World) -> None:
    now = time.time()
    made = _traffic(sf, world, now)
    mid, now_ms = world.merchant["merchant_id"], int(now * 1000)
    d = dashboard.dashboard(sf, mid, dashboard.period("7d", now_ms), now_ms)
    h = d["headlines"]
    assert (h["entries"]["now"], h["entries"]["before"], h["entries"]["change_pct"]) == (3, 1, 200)
    assert (h["orders"]["now"], h["orders"]["before"], h["orders"]["change_pct"]) == (1, 1, 0)
    assert (h["revenue_minor"]["now"], h["revenue_minor"]["before"]) == (10_000, 4_000)
    assert h["shares"]["now"] == 1 and h["taps"]["now"] == 0
    with sf() as s:
        paid_now = s.scalar(select(func.sum(Payout.amount_minor)).where(Payout.payee == "participant",
                                                                        Payout.order_id == 1))
    assert h["paid_minor"]["now"] == paid_now > 0 and h["cost_per_order_minor"]["now"] == paid_now
    # every funnel's rows add up to the headlines
    for key in ("entries", "shares", "orders", "paid_minor"):
        assert sum(r[key] for r in d["per_display"]) == h[key]["now"], key
        assert sum(r[key] for r in d["per_campaign"]) == h[key]["now"], key
    assert len(d["series"]) == 7 and sum(x["entries"] for x in d["series"]) == 3
    assert sum(x["orders"] for x in d["series"]) == 1
    top = d["sharers"]["top"][0]
    assert (top["share_code"], top["entries"], top["orders"]) == (made["share"], 1, 1)
    assert top["earned_minor"] == paid_now and d["sharers"]["depth"] == {0: 2, 1: 1}


def test_periods_and_the_silent_alarm(sf: SessionFactory, world: World) -> None:
    now_ms = int(time.time() * 1000)
    today = dashboard.period("today", now_ms)
    assert today.end_ms - today.start_ms == DAY * 1000 and today.bucket_ms == 3600 * 1000
    assert today.start_ms <= now_ms < today.end_ms and today.previous.end_ms == today.start_ms
    for bad in (("week", None, None), ("custom", 5, 5), ("custom", 0, 400 * DAY * 1000)):
        try:
            dashboard.period(bad[0], now_ms, bad[1], bad[2])
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
    quiet = dashboard.health(sf, world.merchant["merchant_id"], now_ms)
    later = dashboard.health(sf, world.merchant["merchant_id"], now_ms + 7 * PERIOD * 1000)
    assert quiet and not any(r["alarm"] for r in quiet)  # just registered: not silent yet
    assert all(r["alarm"] and r["last_received_ms"] is None for r in later)  # never heard of, 7 windows on


def test_the_dashboard_page_at_phone_size(base_url: str, sf: SessionFactory, world: World,  # noqa: F811
                                          clock: Clock) -> None:
    _traffic(sf, world, clock())  # the served app's clock
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        for locale in ("zh-CN", "en"):
            with context(browser, PHONE, locale) as ctx:
                page, errors = log_in(ctx, base_url, world.merchant["api_key"])
                assert page.locator("#kpi-entries .v").inner_text() == "3"
                assert page.locator("svg.chart rect").count() == 14  # 7 days x (entries, orders)
                page.click("#period-today")
                page.wait_for_url(f"{base_url}/merchant?period=today")
                assert page.locator("#kpi-entries .v").inner_text() == "3"
                page.goto(f"{base_url}/merchant?period=custom&from=2026-02-30&to=x")
                assert page.locator("p.error").count() == 1  # a bad period says so, shows 7 days
                page.goto(f"{base_url}/merchant")
                page.screenshot(path=str(SHOTS / f"dashboard-{locale}.png"), full_page=True)
                assert errors == []
