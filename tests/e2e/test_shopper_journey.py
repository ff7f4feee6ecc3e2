"""The shopper's whole journey in Chromium (Playwright, phone 390x844 with touch, zh-CN and en) on
real tiers: the virtual fleet (Mosquitto, the bumble radio, the cloud as `mcode cloud run`, a
gateway, a display running the firmware in MicroPython) and the demo's site (the displays page and
the merchant's online shop, sim/demo_site.py).

  read the code the display shows -> type it in three spellings -> land, save, share -> a friend
  (another browser context) opens the share link -> pays with a checkout code at the till (the
  cashier logs in) or online with the click token -> the sharer's /me shows the payout, held ->
  a new phone added with the recovery code shows it too.

Bad input at every step gets a page in the shopper's language. Every page is kept as a screenshot
in build/screenshots/ (test artifacts; docs/shopper.md uses a few)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from sim.demo_site import DemoSite, Shop
from sim.fleet import Fleet, FleetPlan
from tests.pw import PHONE, chromium, context
from tests.wait import wait_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
WIDE = "".join(chr(0xFF10 + i) for i in range(10))  # full-width digits, as Chinese keyboards type
TEXT = {  # what each language's pages say at the points the journey checks
    "zh-CN": {"held": "冻结至", "level": "第 1 级", "pay": "到店付款", "recorded": "已记录",
              "added": "已添加此手机",
              "bad_recovery": "恢复码由 16 个字母和数字组成", "wrong_recovery": "没有与此恢复码对应的人",
              "no_entry": "没有该进店记录", "till_unknown": "结账码"},
    "en": {"held": "held until", "level": "level 1", "pay": "Pay at the counter", "recorded": "Recorded",
           "added": "This phone is added", "bad_recovery": "16 letters and digits",
           "wrong_recovery": "no one has this recovery code", "no_entry": "no such entry",
           "till_unknown": "checkout code"},
}


@dataclass
class World:
    fleet: Fleet
    site: DemoSite
    browser: Browser

    @property
    def api(self) -> str:
        return self.fleet.api

    def shown_code(self) -> str:
        code = self.fleet.devices[0].shown_code()
        assert code, "the display shows no code"
        return code


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fleet = Fleet(tmp_path_factory.mktemp("journey"), FleetPlan(devices=1, period_s=60))
    try:
        fleet.start()
        site = DemoSite(lambda: fleet.devices, Shop(fleet.api, fleet.merchant["api_key"]), fleet.site_port)
        site.start()
        try:
            wait_for(lambda: fleet.devices[0].shown_code() is not None, 90, "the display shows its code")
            with chromium() as browser:
                yield World(fleet, site, browser)
        finally:
            site.stop()
    finally:
        fleet.stop()


def shot(page: Page, name: str) -> None:
    """Keep the page as a screenshot; no page may show a template's slip (a Python repr)."""
    assert "<built-in method" not in page.inner_text("body"), f"{name}: {page.url}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"), full_page=True)


def watch(page: Page) -> list[str]:
    """CSP violations (Chromium reports them on the console) and requests off this machine. A
    status page for bad input is meant: its "Failed to load resource" is not counted."""
    bad: list[str] = []
    page.on("console", lambda m: bad.append(m.text) if m.type == "error" and "Refused" in m.text else None)
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:"))
            else bad.append(r.url))
    return bad


def spellings(code: str) -> list[str]:
    """4919-27 as a person types it: as shown, digits only, a space, full-width with a full-width
    dash, with spaces around."""
    base, suffix = code.split("-")
    wide = (base + "－" + suffix).translate(str.maketrans("0123456789", WIDE))
    return [f"{base}{suffix}", f" {base} {suffix} ", wide]


def type_code(page: Page, world: World, typed: str) -> None:
    """At / : one field, the code as typed, Go."""
    page.goto(f"{world.api}/")
    page.fill("#code", typed)
    page.click("form.code button[type=submit]")


def land_and_share(page: Page, world: World, locale: str, name: str) -> str:
    """Type the display's code in three spellings (after two mistakes), land, save, share; the
    share link."""
    bad = watch(page)
    page.goto(f"{world.api}/")
    assert page.get_attribute("#code", "inputmode") == "numeric"
    shot(page, f"{name}-home-{locale}")
    for wrong in ("12", "7777-12"):  # too short; a base code nobody rents
        type_code(page, world, wrong)
        assert page.locator("#problem").count() == 1, page.content()[:500]
    shot(page, f"{name}-home-problem-{locale}")
    for typed in spellings(world.shown_code()):  # read off the display again each time
        type_code(page, world, typed)
        page.wait_for_url(re.compile(r".*/c/4919$"))
        assert page.get_attribute("[data-via]", "data-via") == "display"
    shot(page, f"{name}-landing-{locale}")
    page.click("#save")
    page.wait_for_selector("#saved")
    page.click("#get-share")
    page.wait_for_selector(".share-code")
    link = page.input_value("#share-link")
    assert re.fullmatch(rf"{re.escape(world.api)}/r/4919-\d{{6}}", link), link
    assert page.locator(".qr-box svg").count() == 1
    shot(page, f"{name}-landing-shared-{locale}")
    assert bad == [], bad
    return link


def cashier_records(world: World, locale: str, code: str, amount: str, name: str) -> Page:
    with context(world.browser, PHONE, locale) as till:
        page = till.new_page()
        bad = watch(page)
        page.goto(f"{world.api}/till")
        assert page.url.endswith("/login")  # the till is behind the merchant's login
        page.fill("#key", world.fleet.merchant["api_key"])
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/merchant$"))
        page.goto(f"{world.api}/till")
        page.fill("#code", "999999")
        page.fill("#amount", amount)
        page.click("button[type=submit]")
        assert page.locator("p.error").count() == 1  # a code nobody holds: said so, the form kept
        shot(page, f"{name}-till-unknown-{locale}")
        page.fill("#code", code)
        page.fill("#amount", "abc")
        page.click("button[type=submit]")
        assert page.locator("p.error").count() == 1
        page.fill("#amount", amount)
        page.click("button[type=submit]")
        assert TEXT[locale]["recorded"] in page.inner_text("p.done")
        shot(page, f"{name}-till-{locale}")
        assert bad == [], bad
        return page


def sharer_me(world: World, ctx: BrowserContext, locale: str, payouts: int, name: str) -> str:
    """The sharer's /me shows `payouts` lines, held; returns the recovery code if shown."""
    page = ctx.new_page()
    bad = watch(page)
    page.goto(f"{world.api}/me")
    assert page.locator("html").get_attribute("lang") == locale
    assert page.locator("ol.history > li").count() == payouts
    assert TEXT[locale]["held"] in page.inner_text("ol.history")
    assert TEXT[locale]["level"] in page.inner_text("ol.history").lower()
    assert "¥" in page.inner_text("[data-balance]")
    assert page.locator("ul.codes a[href]").count() >= 1  # the saved campaign, in "my codes"
    code = page.get_attribute("#recovery-code", "data-code") if page.locator("#recovery-code").count() else ""
    shot(page, f"{name}-me-{locale}")
    assert bad == [], bad
    page.close()
    return code or ""


def add_phone(world: World, locale: str, recovery: str, name: str) -> None:
    """The phone is lost: a new one types the recovery code (after a typo) and shows the earnings."""
    with context(world.browser, PHONE, locale) as ctx:
        page = ctx.new_page()
        bad = watch(page)
        page.goto(f"{world.api}/me")
        page.fill("#recovery", "1234")
        page.click("form[action='/me/phone'] button")
        assert TEXT[locale]["bad_recovery"] in page.inner_text("p.error")
        page.fill("#recovery", "0" * 16)
        page.click("form[action='/me/phone'] button")
        assert TEXT[locale]["wrong_recovery"] in page.inner_text("p.error")
        shot(page, f"{name}-add-phone-refused-{locale}")
        page.fill("#recovery", recovery.lower().replace("-", " "))
        page.click("form[action='/me/phone'] button")
        assert TEXT[locale]["added"] in page.inner_text("p.done")
        assert page.locator("ol.history > li").count() >= 1
        shot(page, f"{name}-add-phone-{locale}")
        assert bad == [], bad


@pytest.mark.timeout(600)
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_till_journey(world: World, locale: str) -> None:
    with context(world.browser, PHONE, locale) as sharer:
        page = sharer.new_page()
        page.goto(f"{world.site.url}/displays")
        assert world.shown_code() in page.inner_text("body")
        shot(page, f"displays-{locale}")
        link = land_and_share(page, world, locale, "till")
        with context(world.browser, PHONE, locale) as friend:
            fp = friend.new_page()
            bad = watch(fp)
            fp.goto(f"{world.api}/r/4919-000000")  # a share code nobody holds
            assert fp.locator("[role=alert]").count() >= 1
            fp.goto(f"{world.api}/e/{'0' * 32}/pay")
            assert TEXT[locale]["no_entry"] in fp.inner_text("body").lower()
            fp.goto(link)
            assert fp.get_attribute("[data-via]", "data-via") == "share"
            shot(fp, f"till-friend-landing-{locale}")
            fp.click("#pay")
            checkout = fp.get_attribute("[data-code]", "data-code")
            assert checkout and len(checkout) == 6
            shot(fp, f"till-pay-{locale}")
            assert bad == [], bad
        cashier_records(world, locale, checkout, "88.00", "till")
        recovery = sharer_me(world, sharer, locale, 1, "till")
        assert recovery, "the first payout brings the recovery code, shown once"
    add_phone(world, locale, recovery, "till")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_online_journey(world: World, locale: str) -> None:
    with context(world.browser, PHONE, locale) as sharer:
        page = sharer.new_page()
        link = land_and_share(page, world, locale, "online")
        with context(world.browser, PHONE, locale) as friend:
            fp = friend.new_page()
            bad = watch(fp)
            fp.goto(f"{world.fleet.shop_url}?mcode_click=made-up")  # a token the cloud never gave
            fp.click("button[type=submit]")
            assert fp.locator("[role=alert]").count() == 1  # the shop says the cloud refused it
            fp.goto(link)
            fp.click("#go-shop")  # the landing page's button: a redirect with the click token
            fp.wait_for_url(re.compile(re.escape(world.fleet.shop_url) + r"\?mcode_click=.+"))
            shot(fp, f"online-shop-{locale}")
            fp.click("button[type=submit]")
            assert "#" in fp.inner_text("h1 + p")  # the shop's thanks, with the order number
            shot(fp, f"online-bought-{locale}")
            assert bad == [], bad
        sharer_me(world, sharer, locale, 1, "online")
