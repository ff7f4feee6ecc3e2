"""Password and key guessing at POST /login is bounded (cloud/services/login_limits.py): per client
address and per login name, in the database buckets every API process shares. Regresses: /login had
no limit at all, so a guesser had unlimited tries and could make the server run argon2id at will."""

from __future__ import annotations

import dataclasses

from fastapi.testclient import TestClient

from cloud.services.login_limits import LoginLimits, login_key
from cloud.services.ratelimits import Buckets, RateLimited
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from tests.cloud.conftest import Clock, World
from tests.cloud.test_console_access import PASSWORD, accept, invite_code, password_login
from tests.cloud.test_console_browser import SHOTS
from tests.cloud.test_merchant_page_browser import base_url  # noqa: F401 (a fixture)
from tests.cloud.test_sessions import login
from tests.pw import PHONE, chromium, context

BURST = Settings().rate_login_burst
REFILL_S = 1 / Settings().rate_login_per_s


def test_wrong_passwords_run_out_then_refill(client: TestClient, sf: SessionFactory, world: World,
                                             clock: Clock) -> None:
    assert accept(client, invite_code(sf, world, "viewer", int(clock.t * 1000)), "ana").status_code == 303
    for _ in range(3):  # a person who logs in right spends nothing
        assert password_login(client, "ana").status_code == 303
    for i in range(BURST):
        assert password_login(client, "ana", "wrong guess").status_code == 401, i
    r = password_login(client, "ana", PASSWORD)  # even the right password waits: no hash is run
    assert r.status_code == 429 and "Traceback" not in r.text
    assert "尝试次数过多" in r.text and "Too many tries" in r.text  # the page speaks both
    assert 0 < int(r.headers["retry-after"]) <= REFILL_S + 1
    assert login(client, world.merchant["api_key"]).status_code == 429  # the address is spent too
    clock.t += REFILL_S
    assert password_login(client, "ana").status_code == 303


def test_budgets_per_address_and_per_name(sf: SessionFactory, clock: Clock) -> None:
    st = dataclasses.replace(Settings(), rate_login_burst=3, rate_login_per_s=1 / 60)
    lim = LoginLimits(Buckets(sf, clock), st)
    for i in range(3):  # one name from three addresses: the name's budget is what runs out
        lim.check(f"198.51.100.{i}", "Ana")
        lim.failed(f"198.51.100.{i}", "Ana")
    try:
        lim.check("198.51.100.9", "ＡＮＡ")  # full-width and upper case are the same name
        raise AssertionError("a fourth try at one name from a fourth address was let through")
    except RateLimited as e:
        assert "login" in e.message and 1 <= e.retry_after <= 60
    lim.check("198.51.100.9", "bob")  # another name from a fresh address is not affected
    for name in ("b1", "b2", "b3"):  # one address guessing three names: the address runs out
        lim.failed("203.0.113.7", name)
    try:
        lim.check("203.0.113.7", None)  # a merchant key login from that address
        raise AssertionError("a spent address was let through")
    except RateLimited as e:
        assert "address" in e.message
    assert login_key(" Ａｎａ ") == "ana"



def test_the_limited_login_page_on_a_phone(base_url: str) -> None:  # noqa: F811 (the fixture)
    """The login page speaks both languages at once (like the rest of the console). Looked at:
    build/screenshots/login-limited-phone.png."""
    with chromium() as browser, context(browser, PHONE, "zh-CN") as ctx:
        page = ctx.new_page()
        for _ in range(BURST + 1):
            page.goto(f"{base_url}/login")
            page.fill("#login", "nobody")
            page.fill("#password", "wrong guess")
            page.click("form.person button[type=submit]")
        alert = page.locator("[role=alert]").inner_text()
        assert "尝试次数过多" in alert and "Too many tries" in alert, alert
        assert page.locator("#password").is_visible()  # the form is still there to try later
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "login-limited-phone.png"))
