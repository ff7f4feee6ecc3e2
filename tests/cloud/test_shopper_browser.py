"""The shopper's pages in Chromium through Playwright, at phone size (390x844, touch), in zh-CN and
en, with JavaScript on and off: type a code at `/` (as a Chinese keyboard types it), land, save,
share (code, link, QR; Web Share or copy with script, the link to copy by hand without), a friend
opens the share link, and the refusal pages. No page breaks its CSP (Chromium logs violations on
the console). Screenshots go to build/screenshots/shopper-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from cloud.http.app import create_app
from cloud.services import campaigns
from cloud.store.engine import SessionFactory
from protocol.rotation import window
from tests.browser import serve
from tests.cloud.conftest import Clock, World
from tests.cloud.test_merchant_page_browser import png_size, watch_console
from tests.cloud.test_resolve_orders import PERIOD, code_at
from tests.cloud.test_shopper import _owner
from tests.pw import PHONE, chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")


@pytest.fixture
def base_url(client: TestClient, engine: Engine, clock: Clock) -> Iterator[str]:
    app = create_app(client.app.state.settings, engine=engine, clock_=clock)  # type: ignore[attr-defined]
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"shopper-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert png_size(path)[0] == 390 * 2  # phone width at device scale 2


def no_overflow(page: Page) -> None:
    """Nothing wider than the phone: no sideways scrolling."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("locale,js", [("zh-CN", True), ("en", True), ("zh-CN", False), ("en", False)])
def test_type_land_save_share_and_a_friend_follows(browser: Browser, base_url: str, world: World,
                                                   clock: Clock, sf: SessionFactory, locale: str,
                                                   js: bool) -> None:
    campaigns.update(sf, _owner(world), world.campaign["campaign_id"],
                     {"target_url": "https://shop.example/", "landing_zh": "满 100 减 20，仅限今天。",
                      "landing_en": "20 off 100, today only."})
    tag = f"{locale}-{'js' if js else 'nojs'}"
    ctx = browser.new_context(locale=locale, java_script_enabled=js, **PHONE)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    # headless Chromium has no Web Share; a phone's browser does: stand one in that records the call
    ctx.add_init_script("navigator.share = (d) => { window.__shared = d; return Promise.resolve(); };")
    page = ctx.new_page()
    errors = watch_console(page)
    page.goto(f"{base_url}/")
    assert page.get_attribute("html", "lang") == locale
    field = page.locator("#code")
    assert field.get_attribute("inputmode") == "numeric" and field.bounding_box()["height"] >= 44  # type: ignore[index]
    no_overflow(page)
    shot(page, f"home-{tag}")
    code = code_at(world, window(clock.t, PERIOD))
    field.fill(code.translate(WIDE) if locale == "zh-CN" else " " + code.replace("-", " ") + " ")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/c/4919")
    assert page.locator("[data-via=display]").is_visible()
    assert page.locator("#go-shop").get_attribute("href").startswith("/go/")  # type: ignore[union-attr]
    assert page.locator("#pay").is_visible()
    no_overflow(page)
    shot(page, f"landing-{tag}")
    page.click("#save")
    page.wait_for_url(f"{base_url}/c/4919")
    assert page.locator("#saved").is_visible()
    page.click("#get-share")
    page.wait_for_url(f"{base_url}/c/4919#share")
    share_code = page.locator(".share-code").inner_text().strip()
    link = page.locator("#share-link").input_value()
    assert share_code.startswith("4919-") and link == f"{base_url}/r/{share_code}"
    assert page.locator(".qr-box svg").is_visible()
    copy = page.locator("#copy-button")
    if js:
        page.click("#share-button")
        assert page.evaluate("window.__shared") == {"title": page.title().split(" · ")[0], "text": share_code,
                                                    "url": link}
        assert copy.is_visible()
        copy.click()
        assert page.evaluate("navigator.clipboard.readText()") == link
        assert copy.inner_text() in ("已复制", "Copied")
    else:
        assert not copy.is_visible() and not page.locator("#share-button").is_visible()
        assert page.locator("#share-link").is_visible()
    no_overflow(page)
    page.locator("#share").scroll_into_view_if_needed()
    shot(page, f"share-{tag}")
    assert errors == []

    friend_ctx = browser.new_context(locale=locale, java_script_enabled=js, **PHONE)
    friend = friend_ctx.new_page()
    friend_errors = watch_console(friend)
    friend.goto(link)
    friend.wait_for_url(f"{base_url}/c/4919")
    assert friend.locator("[data-via=share]").is_visible()
    assert friend.locator(".share-code").count() == 0  # the friend's own code, not the sharer's
    shot(friend, f"friend-{tag}")
    assert friend_errors == []
    friend_ctx.close()
    ctx.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("locale,js", [("zh-CN", True), ("en", False)])
def test_refusals_are_pages_in_the_shoppers_language(browser: Browser, base_url: str, world: World,
                                                     locale: str, js: bool) -> None:
    tag = f"{locale}-{'js' if js else 'nojs'}"
    ctx = browser.new_context(locale=locale, java_script_enabled=js, **PHONE)
    page = ctx.new_page()
    errors = watch_console(page)
    for typed, name in (("5555-12", "unknown"), ("49a9", "malformed"), ("4919-98", "wrong-suffix")):
        page.goto(f"{base_url}/")
        page.fill("#code", typed)
        page.click("button[type=submit]")
        problem = page.locator("#problem")
        assert problem.is_visible()
        assert page.get_attribute("html", "lang") == locale
        assert page.locator("#code").input_value() == typed  # kept, to correct
        text = problem.inner_text()
        assert ("请" in text) == (locale == "zh-CN"), text
        shot(page, f"error-{name}-{tag}")
    # the switch: the other language, then kept
    page.click("a.switch")
    other = "en" if locale == "zh-CN" else "zh-CN"
    assert page.get_attribute("html", "lang") == other
    page.goto(f"{base_url}/c/9999")
    assert page.get_attribute("html", "lang") == other and page.locator("#problem").is_visible()
    shot(page, f"error-campaign-{tag}")
    # the pages' own 4xx statuses are logged as failed loads; nothing else may be (no CSP refusal)
    assert [e for e in errors if "the server responded with a status of 4" not in e] == []
    ctx.close()
