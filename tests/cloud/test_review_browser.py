"""The fraud review page in Chromium, phone and desktop, zh-CN and en: the owner follows the
dashboard's link, reads a flagged sybil chain drawn link by link, holds one order and rejects the
other; the page fits a phone's width and raises no console (CSP) error. Screenshots in
build/screenshots/review-<lang>-<size>.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.store.engine import SessionFactory
from tests.cloud.conftest import World
from tests.cloud.test_ledger import check_books
from tests.cloud.test_merchant_page_browser import base_url, log_in  # noqa: F401 (fixture)
from tests.cloud.test_review import flagged
from tests.pw import DESKTOP, PHONE, chromium, context

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
SIZES: dict[str, dict[str, Any]] = {"phone": PHONE, "desktop": DESKTOP}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_owner_reviews_flags_on_phone_and_desktop(base_url: str, sf: SessionFactory, world: World,  # noqa: F811
                                                 locale: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    orders = flagged(sf, world, 4)
    with chromium() as browser:
        for size, (held, rejected) in zip(SIZES, (orders[:2], orders[2:]), strict=True):
            with context(browser, SIZES[size], locale) as ctx:
                page, errors = log_in(ctx, base_url, world.merchant["api_key"])
                page.click("#review")
                page.wait_for_url(f"{base_url}/merchant/review")
                card = page.locator(f'section[data-order="{held}"]')
                assert card.locator("ol.chain li").count() == 4  # display's sharer, two fakes, buyer
                assert card.locator('li[data-rule="sybil"]').count() == 1
                page.screenshot(path=str(SHOTS / f"review-{locale}-{size}.png"), full_page=True)
                page.click(f"#hold-{held}")
                page.wait_for_url(f"{base_url}/merchant/review#order-{held}")
                assert page.locator(f'section[data-order="{held}"]').get_attribute("data-status") == "held"
                page.click(f"#reject-{rejected}")
                page.wait_for_url(f"{base_url}/merchant/review#order-{rejected}")
                after = page.locator(f'section[data-order="{rejected}"]')
                assert after.get_attribute("data-status") == "rejected"
                assert after.locator(f"#hold-{rejected}").count() == 0  # final: no more buttons
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= SIZES[size]["viewport"]["width"], (size, width)
                assert errors == []
    check_books(sf)
