"""Refunds at the till (issue 14 part 4), on SQLite and PostgreSQL: staff find an order by the
checkout code it was paid with or by its order number, see it, and confirm; the whole order is
refunded once (a second confirm or lookup says it was refunded already); an unknown reference,
another merchant's order, a forged form and a read-only sign-in are refused with the reason in
zh-CN and en. And the pages in Chromium at phone size, zh-CN and en, with screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cloud.http.app import create_app
from cloud.services import ledger, shared_links, till_refunds, users
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from cloud.store.models import Order
from tests.browser import serve
from tests.cloud.conftest import Clock, World, provision_world
from tests.cloud.test_console_access import accept, invite_code, password_login
from tests.cloud.test_sales import chain_of_two, pay_code, till
from tests.cloud.test_sessions import form_csrf, login
from tests.cloud.test_till_browser import shot, watch_console
from tests.pw import PHONE, chromium, context


def sale(client: TestClient, world: World, clock: Clock, idem: str, amount: int = 2000) -> tuple[str, int]:
    """A till sale through the API: (the checkout code it used, the order id)."""
    _, b = chain_of_two(client, world, clock)
    code = pay_code(client, b["entry_id"])
    r = till(client, world, idem, code, amount)
    assert r.status_code == 201, r.text
    return code, int(r.json()["order_id"])


def post(client: TestClient, **data: str) -> Any:
    page = client.get("/till/refund")
    assert page.status_code == 200
    return client.post("/till/refund", data={"csrf": form_csrf(page.text), **data})


def test_refs_are_read_as_codes_or_order_numbers() -> None:
    assert till_refunds.read_ref("123 456") == ("code", "123456")
    assert till_refunds.read_ref("１２３４５６") == ("code", "123456")
    assert till_refunds.read_ref("#123456") == ("order", "123456")
    assert till_refunds.read_ref("订单 12") == ("order", "12")
    assert till_refunds.read_ref("No.7") == ("order", "7")
    assert till_refunds.read_ref("42") == ("order", "42")
    for bad in ("", "abc", "#", "12a", "1" * 13):
        with pytest.raises(Exception) as e:
            till_refunds.read_ref(bad)
        assert getattr(e.value, "code", "") == "bad_order_ref"


def test_staff_refund_by_code_and_by_order_number(client: TestClient, sf: SessionFactory, world: World,
                                                  clock: Clock) -> None:
    code, oid = sale(client, world, clock, "r-1")
    _, oid2 = sale(client, world, clock, "r-2", amount=990)
    client.cookies.clear()
    assert accept(client, invite_code(sf, world, users.STAFF, int(clock() * 1000)), "sam").status_code == 303
    client.cookies.clear()
    assert password_login(client, "sam").headers["location"] == "/till"

    found = post(client, ref=code)  # step 1: the order, to confirm
    assert found.status_code == 200 and f"订单 #{oid}" in found.text and "¥20.00" in found.text
    assert 'id="confirm-refund"' in found.text
    with sf() as s:
        assert s.scalar(select(Order.status).where(Order.id == oid)) == "placed"  # looking refunds nothing
    done = post(client, order=str(oid))  # step 2: confirmed
    assert done.status_code == 200 and "已退款" in done.text and f"订单 #{oid}" in done.text
    again = post(client, order=str(oid))  # a double tap: not refunded twice
    assert "此前已退款" in again.text
    looked = post(client, ref=f"#{oid}")
    assert 'id="already"' in looked.text and 'id="confirm-refund"' not in looked.text
    by_number = post(client, ref=f"#{oid2}")
    assert "¥9.90" in by_number.text
    assert "已退款" in post(client, order=str(oid2)).text
    with sf() as s:
        statuses = s.scalars(select(Order.status).where(Order.id.in_([oid, oid2]))).all()
        assert statuses == ["refunded", "refunded"]
        assert ledger.unbalanced_txns(s) == []  # the reversals balance


def test_refusals_say_why(client: TestClient, sf: SessionFactory, world: World, clock: Clock) -> None:
    code, oid = sale(client, world, clock, "r-3")
    other = provision_world(sf, base="5000", name="Shop B", gateway_id="c1c2c3c4c5c6c7c8")
    _, foreign = sale(client, other, clock, "r-b")
    client.cookies.clear()
    assert login(client, world.merchant["api_key"]).status_code == 303  # the owner
    for ref, status, words in (("999999", 404, "没有该订单"), ("#99999", 404, "没有该订单"),
                               ("abc", 400, "请输入结账码"), (f"#{foreign}", 404, "没有该订单")):
        r = post(client, ref=ref)
        assert r.status_code == status and words in r.text, ref
    assert post(client, order=str(foreign)).status_code == 404  # B's order by a forged confirm
    assert post(client, order="x").status_code == 404
    forged = client.post("/till/refund", data={"csrf": "forged", "order": str(oid)})
    assert forged.status_code == 403 and "表单已过期" in forged.text
    with sf() as s:
        refunded = s.scalar(select(func.count()).select_from(Order).where(Order.status == "refunded"))
    assert refunded == 0
    # a read-only sign-in (a shared link's viewer) neither refunds nor sells
    client.cookies.clear()
    link = shared_links.create(sf, world.merchant["merchant_id"], "board", int(clock() * 1000))
    page = client.get("/shared")
    code_in_link = link["path"].split("#", 1)[1]
    assert client.post("/shared", data={"csrf": form_csrf(page.text), "code": code_in_link},
                       follow_redirects=False).status_code == 303
    r = post(client, order=str(oid))
    assert r.status_code == 403 and "只读账号" in r.text
    page = client.get("/till")
    sold = client.post("/till", data={"csrf": form_csrf(page.text), "idem": "v-1", "code": code,
                                      "amount": "5"})
    assert sold.status_code == 403
    with sf() as s:
        assert s.scalar(select(Order.status).where(Order.id == oid)) == "placed"


@pytest.fixture
def base_url(client: TestClient, engine: Engine, clock: Clock) -> Iterator[str]:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    with serve(create_app(settings, engine=engine, clock_=clock)) as url:
        yield url


TEXT = {"zh-CN": {"title": "退款", "done": "已退款", "already": "已于", "unknown": "没有该订单"},
        "en": {"title": "Refund", "done": "Refunded", "already": "already refunded",
               "unknown": "no such order"}}


def test_refund_at_the_till_in_chromium(base_url: str, client: TestClient, world: World, clock: Clock,
                                        sf: SessionFactory) -> None:
    with chromium() as browser:
        for locale in ("zh-CN", "en"):
            words = TEXT[locale]
            code, oid = sale(client, world, clock, f"b-{locale}")
            with context(browser, PHONE, locale) as cashier:
                page = cashier.new_page()
                errors = watch_console(page)
                page.goto(f"{base_url}/login")
                page.fill("#key", world.merchant["api_key"])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base_url}/merchant")
                page.goto(f"{base_url}/till")
                page.click("#to-refund")
                page.wait_for_url(f"{base_url}/till/refund?lang={locale}")
                assert page.locator("h1").inner_text().startswith(words["title"])
                for sel in ("#ref", "#find-order", "#to-sale"):
                    box = page.locator(sel).bounding_box()
                    assert box is not None and box["height"] >= 44, (sel, box)
                shot(page, f"till-refund-phone-{locale}")

                page.fill("#ref", "#99999")
                page.click("#find-order")
                assert words["unknown"] in page.locator("p.error").inner_text()

                page.fill("#ref", code)
                page.click("#find-order")
                assert "20.00" in page.locator("dd.amount").inner_text()
                box = page.locator("#confirm-refund").bounding_box()
                assert box is not None and box["height"] >= 52
                shot(page, f"till-refund-confirm-phone-{locale}")
                page.click("#confirm-refund")
                assert page.locator("p.done").inner_text().startswith(words["done"])
                shot(page, f"till-refund-done-phone-{locale}")
                with sf() as s:
                    assert s.scalar(select(Order.status).where(Order.id == oid)) == "refunded"

                page.fill("#ref", str(code))
                page.click("#find-order")
                assert words["already"] in page.locator("#already").inner_text()
                assert page.locator("#confirm-refund").count() == 0
                shot(page, f"till-refund-already-phone-{locale}")
                assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
