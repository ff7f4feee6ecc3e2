"""The campaign pages in Debian's Chromium (issue 14 part 3), at phone and desktop sizes, in zh-CN
and en: rent a code found by the search, type the landing text and watch the shopper's page follow
in the preview frame (static/campaigns.js), save, publish, read the history; and without
JavaScript, the Preview button. No CSP violation on any page. Screenshots in build/screenshots/."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from cloud.store.engine import SessionFactory
from tests.cloud.conftest import World
from tests.cloud.test_console_campaigns import chain_order
from tests.cloud.test_merchant_page_browser import base_url, log_in, png_size  # noqa: F401 (fixture)
from tests.pw import DESKTOP, PHONE, chromium, context

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
RUNS = (("zh-CN", PHONE, "phone"), ("en", PHONE, "phone"), ("zh-CN", DESKTOP, "desktop"),
        ("en", DESKTOP, "desktop"))


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert png_size(path)[0] > 0


def _fits(page: Page) -> None:
    """Nothing wider than the screen: the page does not scroll sideways."""
    wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert wide <= 0, f"the page is {wide}px wider than the screen"


def test_rent_edit_with_live_preview_publish_in_chromium(base_url: str, sf: SessionFactory,  # noqa: F811
                                                         world: World) -> None:
    chain_order(sf, world, "o1", 20_000, 2)
    chain_order(sf, world, "o2", 6_000, 1)
    cid = world.campaign["campaign_id"]
    live = {"zh-CN": "Shop A 欢迎", "en": "Welcome to Shop A"}  # each language's published title
    with chromium() as browser:
        for i, (lang, size, kind) in enumerate(RUNS):
            with context(browser, size, lang) as ctx:
                page, errors = log_in(ctx, base_url, world.merchant["api_key"])
                page.click("#campaigns")
                page.wait_for_url(f"{base_url}/merchant/campaigns")
                page.fill("#q", "49??")
                page.click("#search")
                free = page.locator("#found li.is-free").first
                expect(free).to_be_visible()
                if i == 0:  # rent one: the first free code of the pattern
                    code = free.get_attribute("data-code")
                    free.locator("summary").click()
                    free.locator("input[name=label_zh]").fill("春季新品")
                    free.locator("input[name=label_en]").fill("Spring arrivals")
                    free.locator("button.rent-button").click()
                    page.wait_for_url(f"{base_url}/merchant/campaigns/*")
                    expect(page.locator("#version")).to_have_text("1")
                    expect(page.locator("h1 .code")).to_have_text(str(code))
                    page.goto(f"{base_url}/merchant/campaigns?q=49%3F%3F")
                _fits(page)
                _shot(page, f"campaigns-{lang}-{kind}")

                page.goto(f"{base_url}/merchant/campaigns/{cid}")
                expect(page.locator("#draft")).to_have_attribute("data-live-preview", "on")
                frame = page.frame_locator("#preview")
                expect(frame.locator("h1")).to_have_text(live[lang])
                title = f"Sale {i}" if lang == "en" else f"特卖 {i}"
                page.fill(f"#label_{'en' if lang == 'en' else 'zh'}", title)  # typed, not saved
                expect(frame.locator("h1")).to_have_text(title)
                page.fill(f"#landing_{'en' if lang == 'en' else 'zh'}", "Two for one / 买一送一")
                expect(frame.locator(".text p")).to_have_text("Two for one / 买一送一")
                page.select_option("#rule", "fixed-levels")
                expect(page.locator("#levels_bp")).to_be_visible()
                expect(page.locator("#a")).to_be_hidden()
                page.fill("#pool", str(20 + i))
                page.click("#save")
                page.wait_for_url(f"{base_url}/merchant/campaigns/{cid}?done=saved")
                expect(page.locator("#pending")).to_contain_text(f"¥{20 + i}.00")
                expect(page.locator("#rule-preview li.chain[data-source=order]")).to_have_count(2)
                _fits(page)
                _shot(page, f"campaign-{lang}-{kind}")
                page.click("#publish-button")
                page.wait_for_url(f"{base_url}/merchant/campaigns/{cid}?done=published")
                expect(page.locator("#version")).to_have_text(str(i + 1))
                live[lang] = title
                expect(page.locator(f"#history li[data-version='{i + 1}']")).to_be_visible()
                if kind == "phone":
                    page.locator("#history").scroll_into_view_if_needed()
                assert errors == [], errors


def test_the_preview_button_works_without_javascript(base_url: str, world: World) -> None:  # noqa: F811
    cid = world.campaign["campaign_id"]
    with chromium() as browser, context(browser, PHONE, "en") as ctx:
        page, errors = log_in(ctx, base_url, world.merchant["api_key"])
        nojs = browser.new_context(locale="en", java_script_enabled=False, **PHONE)
        try:
            nojs.add_cookies(ctx.cookies())  # type: ignore[arg-type]  # the same fields
            p2 = nojs.new_page()
            p2.goto(f"{base_url}/merchant/campaigns/{cid}")
            assert p2.locator("#draft").get_attribute("data-live-preview") is None  # no script ran
            p2.fill("#label_en", "Typed without a script")
            p2.click("#preview-button")
            expect(p2.frame_locator("#preview").locator("h1")).to_have_text("Typed without a script")
            expect(p2.locator("#label_en")).to_have_value("Typed without a script")  # the page stayed
        finally:
            nojs.close()
        assert errors == []
