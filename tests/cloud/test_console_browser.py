"""The console's access pages in Chromium at phone size, zh-CN and en: an invitation link whose
code follows '#' (the page moves it into the form and out of the address bar), a person's login,
the owner's page of people and links, and a read-only link that opens by itself. No CSP error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.services import shared_links, users
from cloud.store.engine import SessionFactory
from tests.cloud.conftest import Clock, World
from tests.cloud.test_merchant_page_browser import base_url, watch_console  # noqa: F401 (fixture)
from tests.pw import PHONE, chromium, context

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PASSWORD = "correct horse battery"


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_invite_login_access_and_shared_link(base_url: str, sf: SessionFactory, world: World,  # noqa: F811
                                             clock: Clock, locale: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    now = int(clock() * 1000)
    mid = world.merchant["merchant_id"]
    code = users.invite(sf, mid, users.OWNER, now)["code"]
    link = shared_links.create(sf, mid, "bank", now)["path"]
    with chromium() as browser:
        with context(browser, PHONE, locale) as ctx:
            page = ctx.new_page()
            errors = watch_console(page)
            missing: list[str] = []
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            page.goto(f"{base_url}/invite#{code}")
            assert page.input_value("#code") == code and "#" not in page.url  # moved out of the bar
            page.fill("#login", f"owner-{locale}")
            page.fill("#password", PASSWORD)
            page.screenshot(path=str(SHOTS / f"console-invite-{locale}.png"), full_page=True)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/merchant")
            page.click("#access")
            page.wait_for_url(f"{base_url}/merchant/access")
            assert page.locator(f'tr[data-user="owner-{locale.lower()}"]').count() == 1
            page.screenshot(path=str(SHOTS / f"console-access-{locale}.png"), full_page=True)
            page.goto(f"{base_url}/login")
            page.screenshot(path=str(SHOTS / f"console-login-{locale}.png"), full_page=True)
            assert errors == [], missing
        with context(browser, PHONE, locale) as ctx:  # someone the owner sent the read-only link
            page = ctx.new_page()
            errors = watch_console(page)
            page.goto(f"{base_url}{link}")
            page.wait_for_url(f"{base_url}/merchant")
            assert page.locator("#access").count() == 0 and errors == []
