"""The merchant page in Chromium through Playwright, as a merchant uses it: the page sends a browser
without a login to /login, the merchant types the key once, and sees each device with its scans,
in both languages, at phone and desktop sizes; tenants stay apart; sign-out ends the session.
No page breaks its Content-Security-Policy (Chromium reports every violation on the console).

Regresses: the page was opened as /merchant?key=<key> (the key in the URL, the history, the log)."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, Page
from sqlalchemy import Engine

from cloud.http.app import create_app
from cloud.services.ingest import ingest
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol import batch as pbatch
from protocol import record
from tests.browser import serve
from tests.cloud.conftest import Clock, World, provision_world
from tests.cloud.mqtt_helpers import records
from tests.pw import DESKTOP, PHONE, chromium, context

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def store(sf: SessionFactory, world: World, bseq: int, recs: list[tuple[bytes, bytes]]) -> None:
    payload = pbatch.sign(pbatch.Batch(bytes.fromhex(world.gateway_id), bseq, 0, recs), world.gw_key)
    res = ingest(sf, pbatch.batch_topic(world.gateway_id), payload)
    assert res.status == pbatch.ACK_STORED and res.rejected == 0


@pytest.fixture
def base_url(client: TestClient, engine: Engine, clock: Clock) -> Iterator[str]:
    # the suite's settings, with Secure cookies (Chromium keeps them for http://127.0.0.1, a secure
    # context)
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    assert settings.cookie_secure
    app = create_app(settings, engine=engine, clock_=clock)
    with serve(app) as url:
        yield url


def row(dom: str, device_id: str) -> str:
    m = re.search(rf'<tr data-device="{device_id}">(.*?)</tr>', dom, re.S)
    assert m, f"no row for device {device_id}"
    return m.group(1)


def cell(html: str, cls: str) -> str:
    m = re.search(rf'<td class="{cls}">\s*(\d+)\s*</td>', html)
    assert m, f"no {cls} cell in {html!r}"
    return m.group(1)


def watch_console(page: Page) -> list[str]:
    """Console errors, where Chromium reports CSP violations ("Refused to ...")."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def log_in(ctx: BrowserContext, base: str, key: str) -> tuple[Page, list[str]]:
    page = ctx.new_page()
    errors = watch_console(page)
    page.goto(f"{base}/merchant")
    assert page.url == f"{base}/login"  # no login yet: sent to the form
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/merchant")
    return page, errors


def png_size(path: Path) -> tuple[int, int]:
    png = path.read_bytes()
    assert png[:8] == PNG_MAGIC and png[12:16] == b"IHDR"
    w, h = struct.unpack(">II", png[16:24])
    assert len(png) > 8 * 1024  # a blank or failed page compresses to far less
    return w, h


def test_merchant_logs_in_and_sees_the_page_in_chromium(base_url: str, sf: SessionFactory) -> None:
    a = provision_world(sf, base="4919", name="Shop A", n_devices=2)
    b = provision_world(sf, base="5151", name="Shop B", n_devices=1, gateway_id="b1b2b3b4b5b6b7b8")
    a0, a1 = a.devices
    # a0: taps 1..5 and 8 (6, 7 lost: 2 gaps) and a boot record; a1: 3 taps; B's device: 4 taps
    store(sf, a, 1, records(a0, [1, 2, 3, 4, 5, 8]) + records(a0, [9], kind=record.KIND_BOOT))
    store(sf, a, 2, records(a1, [1, 2, 3]))
    store(sf, b, 1, records(b.devices[0], [1, 2, 3, 4]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        for size, size_name in ((PHONE, "phone"), (DESKTOP, "desktop")):
            for locale in ("zh-CN", "en"):
                with context(browser, size, locale) as ctx:
                    page = ctx.new_page()
                    page.goto(f"{base_url}/login")
                    for zh, en in (("商户登录", "Merchant sign-in"), ("商户密钥", "Merchant key")):
                        assert page.get_by_text(zh).count() and page.get_by_text(en).count(), (zh, en)
                    shot = ARTIFACTS / f"login-{size_name}-{locale}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    assert png_size(shot)[0] == size["viewport"]["width"] * size.get("device_scale_factor", 1)
                    page.close()

                    page, errors = log_in(ctx, base_url, a.merchant["api_key"])
                    dom = page.content()
                    assert "Shop A" in dom and "Shop B" not in dom
                    for zh, en in (("商户数据", "Merchant data"), ("扫码", "Scans"), ("缺失", "Gaps")):
                        assert zh in dom and en in dom, (zh, en)
                    for dev, scans, events, gaps in ((a0, 6, 7, 2), (a1, 3, 3, 0)):
                        r = row(dom, dev["device_id"])
                        assert (cell(r, "scans"), cell(r, "events"), cell(r, "gaps")) == \
                            (str(scans), str(events), str(gaps))
                    assert re.search(r'id="total-scans"[^>]*>\s*9\s*<', dom)
                    assert b.devices[0]["device_id"] not in dom
                    assert a.merchant["api_key"] not in page.url and "key=" not in page.url
                    cookies = {c["name"]: c for c in ctx.cookies()}
                    session = cookies["__Host-mcode_session"]
                    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
                    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
                    width = size["viewport"]["width"]
                    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways page
                    shot = ARTIFACTS / f"merchant-{size_name}-{locale}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    assert png_size(shot)[0] == width * size.get("device_scale_factor", 1)

                    page.click("form.logout button")
                    page.wait_for_url(f"{base_url}/login")
                    page.goto(f"{base_url}/merchant")
                    assert page.url == f"{base_url}/login"  # the session is gone
                    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors

        with context(browser, PHONE, "zh-CN") as ctx:  # tenant B sees only its own
            page, _ = log_in(ctx, base_url, b.merchant["api_key"])
            dom = page.content()
            assert "Shop B" in dom and cell(row(dom, b.devices[0]["device_id"]), "scans") == "4"
            assert "Shop A" not in dom and a0["device_id"] not in dom and a1["device_id"] not in dom

        with context(browser, PHONE, "en") as ctx:  # a wrong key: the form again, with the reason
            page = ctx.new_page()
            page.goto(f"{base_url}/login")
            page.fill("#key", "mk_not-a-key")
            page.click("button[type=submit]")
            assert page.url == f"{base_url}/login"
            assert page.get_by_text("Wrong key").count() and page.get_by_text("密钥错误").count()
            ctx.clear_cookies()
            assert not [c for c in ctx.cookies() if c["name"].endswith("mcode_session")]


def test_docs_page_runs_under_the_csp(base_url: str) -> None:
    """Swagger UI starts from a static script: no CSP violation, and the operations are listed."""
    with chromium() as browser, context(browser, DESKTOP, "en") as ctx:
        page = ctx.new_page()
        errors = watch_console(page)
        page.goto(f"{base_url}/docs")
        page.wait_for_selector(".opblock-summary", timeout=60_000)
        assert page.locator(".opblock").count() > 20
        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
