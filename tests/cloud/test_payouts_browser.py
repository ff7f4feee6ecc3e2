"""The payouts page in Chromium, at phone and desktop sizes, zh-CN and en: the owner opens it from the
dashboard, the due total is the sum of the rows, marks one sharer paid, downloads the settlement's
CSV, opens the sharer's statement and downloads a payout's proof bundle. Nothing is wider than the
phone's screen and no CSP error. Screenshots go to build/screenshots/payouts-<lang>-<size>.png."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.store.engine import SessionFactory
from cloud.web.sales_pages import money
from tests.cloud.conftest import Clock, World
from tests.cloud.test_merchant_page_browser import base_url, log_in  # noqa: F401 (fixture)
from tests.cloud.test_payouts_http import sell
from tests.pw import DESKTOP, PHONE, chromium, context

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_owner_pays_one_sharer_and_downloads(base_url: str, client: TestClient, sf: SessionFactory,  # noqa: F811
                                             world: World, clock: Clock, locale: str, size: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    h = sell(client, sf, world, clock)
    due: dict[str, Any] = client.get("/payouts/due", headers=h).json()
    first = due["sharers"][0]
    tag = "zh" if locale == "zh-CN" else "en"
    with chromium() as browser, context(browser, PHONE if size == "phone" else DESKTOP, locale) as ctx:
        page, errors = log_in(ctx, base_url, world.merchant["api_key"])
        page.click("#payouts")
        page.wait_for_url(f"{base_url}/merchant/payouts")
        total = sum(r["due_minor"] for r in due["sharers"])
        assert page.inner_text("#total-due-CNY").strip() == money(total, "CNY")
        assert page.locator("tr[data-sharer]").count() == len(due["sharers"])
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= page.viewport_size["width"]  # type: ignore[index]  # the tables scroll inside
        page.screenshot(path=str(SHOTS / f"payouts-{tag}-{size}.png"), full_page=True)
        page.check(f'tr[data-sharer="{first["participant_id"]}"] input[type=checkbox]')
        page.click("#pay-selected")
        page.wait_for_selector("#notice")
        assert page.locator(f'tr[data-sharer="{first["participant_id"]}"]').count() == 0
        page.screenshot(path=str(SHOTS / f"payouts-paid-{tag}-{size}.png"), full_page=True)
        with page.expect_download() as dl:
            page.click("a.csv")
        rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
        assert [(int(r["sharer_id"]), int(r["amount_minor"])) for r in rows] == [
            (first["participant_id"], first["due_minor"])]
        page.goto(f"{base_url}/merchant/payouts/sharers/{first['participant_id']}")
        assert page.inner_text("#kpi-due .v").strip() == money(0, "CNY")
        assert page.inner_text("#kpi-paid .v").strip() == money(first["due_minor"], "CNY")
        page.screenshot(path=str(SHOTS / f"payout-statement-{tag}-{size}.png"), full_page=True)
        with page.expect_download() as dl:
            page.click("a.proof")
        assert json.loads(Path(dl.value.path()).read_text())["format"] == "mcode-proof-bundle/v1"
        assert errors == []
