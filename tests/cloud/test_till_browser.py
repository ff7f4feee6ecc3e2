"""The till and the checkout code page in Chromium at phone size, in zh-CN and en: a shopper's phone
shows a checkout code (Pay at the counter); the cashier, signed in through /login, types it with
the amount on /till and the sale is recorded once; a used code, a wrong amount and a stale form
each get the reason in the page's language. Screenshots go to build/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page
from sqlalchemy import Engine, func, select

from cloud.http.app import create_app
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from cloud.store.models import Order
from tests.browser import serve
from tests.cloud.conftest import Clock, World
from tests.cloud.test_merchant_page_browser import ARTIFACTS, png_size, watch_console
from tests.cloud.test_sales import chain_of_two
from tests.pw import PHONE, chromium, context

TEXT = {"zh-CN": {"title": "收银台", "done": "已记录", "used": "已用于一笔销售",
                  "amount": "请输入大于零的金额", "pay": "请向收银员出示此结账码", "csrf": "表单已过期"},
        "en": {"title": "Till", "done": "Recorded", "used": "already used", "amount": "type the amount",
               "pay": "Show this checkout code to the cashier", "csrf": "The form expired"}}


@pytest.fixture
def base_url(client: TestClient, engine: Engine, clock: Clock) -> Iterator[str]:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    with serve(create_app(settings, engine=engine, clock_=clock)) as url:
        yield url


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert png_size(path)[0] == PHONE["viewport"]["width"] * PHONE["device_scale_factor"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["viewport"]["width"]


def targets_are_big(page: Page) -> None:
    for sel in ("#code", "#amount", "button[type=submit]"):
        box = page.locator(sel).bounding_box()
        assert box is not None and box["height"] >= 44, (sel, box)


def test_cashier_records_a_sale_by_checkout_code(base_url: str, client: TestClient, world: World,
                                                 clock: Clock, sf: SessionFactory) -> None:
    with chromium() as browser:
        for locale in ("zh-CN", "en"):
            words = TEXT[locale]
            _, b = chain_of_two(client, world, clock)
            client.cookies.clear()
            with context(browser, PHONE, locale) as shopper:  # the shopper's phone
                page = shopper.new_page()
                errors = watch_console(page)
                page.goto(f"{base_url}/e/{b['entry_id']}/pay")
                assert page.get_by_text(words["pay"]).count()
                code = page.locator(".checkout-code").get_attribute("data-code")
                assert code and re.fullmatch(r"\d{6}", code)
                assert page.locator("svg.qr").count() == 1
                shot(page, f"pay-phone-{locale}")
                assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors

            with context(browser, PHONE, locale) as cashier:
                page = cashier.new_page()
                errors = watch_console(page)
                page.goto(f"{base_url}/till")
                assert page.url == f"{base_url}/login"  # not signed in: the login first
                page.fill("#key", world.merchant["api_key"])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base_url}/merchant")
                page.goto(f"{base_url}/till")
                assert page.locator("h1").inner_text().startswith(words["title"])
                assert page.locator("html").get_attribute("lang") == locale
                targets_are_big(page)
                shot(page, f"till-phone-{locale}")

                page.fill("#code", code)
                page.fill("#amount", "0")  # a wrong amount: the reason, the code kept
                page.click("button[type=submit]")
                assert page.get_by_text(words["amount"]).count()
                assert page.input_value("#code") == code
                shot(page, f"till-error-phone-{locale}")

                page.fill("#amount", "20.00")
                page.click("button[type=submit]")
                assert page.locator("p.done").inner_text().startswith(words["done"])
                assert "20.00" in page.locator("p.done").inner_text()
                shot(page, f"till-done-phone-{locale}")
                page.reload()  # the browser posts the same form again: recorded once
                with sf() as s:
                    orders = s.scalar(select(func.count()).select_from(Order)
                                      .where(Order.entry_id == b["entry_id"]))
                assert orders == 1

                page.goto(f"{base_url}/till")
                page.fill("#code", code)
                page.fill("#amount", "5")
                page.click("button[type=submit]")
                assert page.get_by_text(words["used"]).count()
                shot(page, f"till-used-phone-{locale}")

                page.evaluate("document.querySelector('input[name=csrf]').value = 'forged'")
                page.click("button[type=submit]")
                assert page.get_by_text(words["csrf"]).count()
                assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
