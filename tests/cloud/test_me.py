"""/me, a shopper's earnings (issue 13 part 4), through the HTTP API on SQLite and PostgreSQL: the
payout shows held with its date and a stable id, the recovery code is shown once, "add this phone"
links a new phone to the person, and every bad input gets a page in the shopper's language."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from cloud.web.sales_pages import money
from protocol.rotation import window
from tests.cloud.conftest import Clock, World
from tests.cloud.test_resolve_orders import PERIOD, code_at, enter, share

HTML = {"Accept": "text/html", "Accept-Language": "en-GB,en;q=0.9"}
ZH = {"Accept": "text/html", "Accept-Language": "zh-CN,zh;q=0.9"}
VISITOR = "mcode_visitor"


def sharer_with_payout(client: TestClient, world: World, clock: Clock) -> tuple[str, dict[str, Any]]:
    """A typed the display's code and shared it; B came through A's code and bought. Returns A's
    visitor cookie and the order."""
    a = enter(client, code_at(world, window(clock.t, PERIOD)))
    code = share(client, a["entry_id"])
    a_cookie = client.cookies.get(VISITOR)
    assert a_cookie
    b = enter(client, code)
    r = client.post("/orders", json={"entry_id": b["entry_id"], "amount_minor": 8800},
                    headers={"Authorization": f"Bearer {world.merchant['api_key']}", "Idempotency-Key": "o1"})
    assert r.status_code == 201, r.text
    phone(client, a_cookie)
    return a_cookie, r.json()


def phone(client: TestClient, cookie: str | None) -> None:
    """Make the client one phone: its own visitor cookie (or none)."""
    client.cookies.clear()
    if cookie:
        client.cookies.set(VISITOR, cookie)


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:300]
    return m.group(1)


def recovery_code(html: str) -> str | None:
    m = re.search(r'data-code="([0-9A-Z-]{19})"', html)
    return m.group(1) if m else None


def post_form(client: TestClient, path: str, page: httpx.Response, headers: dict[str, str] | None = None,
              **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(page.text), **fields}, headers=headers or HTML,
                       follow_redirects=False)


def test_me_shows_the_payout_held_with_its_date_and_the_recovery_code_once(
        client: TestClient, world: World, clock: Clock) -> None:
    a_cookie, order = sharer_with_payout(client, world, clock)
    paid = next(p for p in order["payouts"] if p["level"] == 1)["amount_minor"]
    assert paid > 0
    r = client.get("/me", headers=HTML)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert '<html lang="en">' in r.text and "My earnings" in r.text
    assert money(paid) in r.text and "¥" in money(paid)
    assert "held until" in r.text and "Level 1" in r.text
    ids = re.findall(r'<li id="payout-(\d+)"', r.text)
    assert len(ids) == 1 and f'href="#payout-{ids[0]}"' in r.text
    first = recovery_code(r.text)
    assert first, "the first earnings bring the recovery code"
    again = client.get("/me", headers=HTML)
    assert recovery_code(again.text) is None and money(paid) in again.text  # shown once
    zh = client.get("/me", headers=ZH)
    assert '<html lang="zh-CN">' in zh.text and "冻结至" in zh.text and "第 1 级" in zh.text
    mine = client.get("/me/earnings").json()
    assert mine["person"] is True and mine["balance_minor"] == mine["held_minor"] == paid
    assert mine["totals"] == [{"currency": "CNY", "balance_minor": paid, "held_minor": paid, "due_minor": 0,
                               "next_due_at_ms": mine["history"][0]["due_at_ms"]}]
    h = mine["history"][0]
    assert (h["payout_id"], h["level"], h["held"], h["order_id"]) == (int(ids[0]), 1, True, order["order_id"])
    # after the hold, the payout is available
    clock.t = h["due_at_ms"] / 1000 + 1
    later = client.get("/me", headers=HTML)
    assert "held until" not in later.text and "available" in later.text
    assert client.get("/me/earnings").json()["due_minor"] == paid


def test_add_this_phone_with_the_recovery_code(client: TestClient, world: World, clock: Clock) -> None:
    a_cookie, order = sharer_with_payout(client, world, clock)
    code = recovery_code(client.get("/me", headers=HTML).text)
    assert code
    phone(client, None)  # the phone is lost: a new one has no cookie
    empty = client.get("/me", headers=HTML)
    assert empty.status_code == 200 and "No earnings yet" in empty.text and recovery_code(empty.text) is None
    typed = " " + code.lower().replace("-", " ") + " "  # as a person types it
    r = post_form(client, "/me/phone", empty, recovery=typed)
    assert r.status_code == 303 and r.headers["location"] == "/me?added=1", r.text
    assert VISITOR in r.cookies or client.cookies.get(VISITOR)
    shown = client.get("/me?added=1", headers=HTML)
    assert "This phone is added" in shown.text and "held until" in shown.text
    assert "one of your 2 phones" in shown.text
    assert client.get("/me/earnings").json()["phones"] == 2


def test_a_new_recovery_code_replaces_the_old(client: TestClient, world: World, clock: Clock) -> None:
    a_cookie, _ = sharer_with_payout(client, world, clock)
    page = client.get("/me", headers=HTML)
    old = recovery_code(page.text)
    r = post_form(client, "/me/recovery", page)
    new = recovery_code(r.text)
    assert r.status_code == 200 and new and new != old and r.headers["cache-control"] == "no-store"
    phone(client, None)
    form = client.get("/me", headers=HTML)
    refused = post_form(client, "/me/phone", form, recovery=old or "")
    assert refused.status_code == 404 and "no one has this recovery code" in refused.text
    ok = post_form(client, "/me/phone", refused, recovery=new)
    assert ok.status_code == 303


def test_bad_input_gets_a_page_in_the_shoppers_language(client: TestClient, world: World) -> None:
    page = client.get("/me", headers=ZH)
    assert page.status_code == 200 and "还没有收益" in page.text
    malformed = post_form(client, "/me/phone", page, ZH, recovery="12345")
    assert malformed.status_code == 400 and "恢复码由 16 个字母和数字组成" in malformed.text
    assert malformed.headers["content-type"].startswith("text/html")
    forged = client.post("/me/phone", data={"csrf": "made-up", "recovery": "0" * 16}, headers=ZH)
    assert forged.status_code == 403 and "表单已过期" in forged.text
    other_site = client.post("/me/phone", data={"csrf": csrf(page.text), "recovery": "0" * 16},
                             headers={**HTML, "Origin": "https://evil.example"})
    assert other_site.status_code == 403 and "The form expired" in other_site.text
    nothing = post_form(client, "/me/recovery", client.get("/me", headers=HTML))
    assert nothing.status_code == 409 and "nothing to keep" in nothing.text
    # wrong guesses: 10 at once, then a page with Retry-After, before any lookup
    statuses = []
    form = client.get("/me", headers=HTML)
    for i in range(11):
        form = post_form(client, "/me/phone", form, recovery=f"{i:016d}")
        statuses.append(form.status_code)
    assert statuses == [404] * 10 + [429], statuses
    assert "too many requests" in form.text and int(form.headers["retry-after"]) > 0
    assert client.get("/me/earnings").json()["code"] == "no_visitor"


def test_earnings_json_needs_a_signed_cookie(client: TestClient, world: World, clock: Clock) -> None:
    a_cookie, _ = sharer_with_payout(client, world, clock)
    visitor_id = a_cookie.split(".")[0]
    phone(client, visitor_id)  # the id alone, without the server's signature
    assert client.get("/me/earnings").json()["code"] == "no_visitor"
    assert "No earnings yet" in client.get("/me", headers=HTML).text
