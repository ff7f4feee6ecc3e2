"""Sales attributed two ways, through the HTTP API on SQLite and PostgreSQL: at the till by the
shopper's checkout code (GET /e/{entry}/pay, POST /sales/till) and online by a click token
(POST /sales/online). Both book an order with its chain, both are idempotent, and every refusal
has its code and a message in en and zh-CN."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cloud.services import clicks
from cloud.store.engine import SessionFactory
from cloud.store.models import Click
from protocol.rotation import window
from tests.cloud.conftest import Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at, enter, share

HTML = "text/html,application/xhtml+xml,*/*;q=0.8"  # what a browser sends


def auth(world: World, idem: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.merchant['api_key']}", "Idempotency-Key": idem}


def chain_of_two(client: TestClient, world: World, clock: Clock) -> tuple[dict[str, Any], dict[str, Any]]:
    """A typed the display's code and shared; B came through A's share code."""
    a = enter(client, code_at(world, window(clock.t, PERIOD)))
    b = enter(client, share(client, a["entry_id"]))
    return a, b


def pay_code(client: TestClient, entry_id: str) -> str:
    r = client.get(f"/e/{entry_id}/pay", headers={"Accept-Language": "en"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    m = re.search(r'data-code="(\d{6})"', r.text)
    assert m, r.text[:500]
    assert "<svg" in r.text and "Show this checkout code to the cashier" in r.text
    return m.group(1)


def till(client: TestClient, world: World, idem: str, code: str, amount: int = 2000,
         **extra: Any) -> httpx.Response:
    return client.post("/sales/till", json={"checkout_code": code, "amount_minor": amount, **extra},
                       headers=auth(world, idem))


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.json()["message"] and r.json()["message_zh"] != r.json()["message"]


def test_till_sale_pays_the_chain_once(client: TestClient, world: World, clock: Clock) -> None:
    a, b = chain_of_two(client, world, clock)
    code = pay_code(client, b["entry_id"])
    assert pay_code(client, b["entry_id"]) == code  # a reload shows the same code
    r = till(client, world, "till-1", code)
    assert r.status_code == 201, r.text
    ans = r.json()
    assert ans["channel"] == "till" and ans["entry_id"] == b["entry_id"] and ans["pool_minor"] == 1000
    assert [p["amount_minor"] for p in ans["payouts"]] == [500]  # A, one level up
    assert r.headers["Idempotent-Replayed"] == "false"
    again = till(client, world, "till-1", code)  # the same request again: the first answer
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, ans, "true")
    refused(till(client, world, "till-2", code), 409, "checkout_code_used")
    assert pay_code(client, b["entry_id"]) != code  # a used code is not shown again
    detail = client.get(f"/orders/{ans['order_id']}", headers=auth(world, "-")).json()
    assert detail["channel"] == "till"


def test_till_code_typed_loosely(client: TestClient, world: World, clock: Clock) -> None:
    _, b = chain_of_two(client, world, clock)
    code = pay_code(client, b["entry_id"])
    loose = " " + "".join(chr(ord(c) + 0xFEE0) for c in code[:3]) + " - " + code[3:] + " "  # full width
    r = till(client, world, "loose", loose)
    assert r.status_code == 201 and r.json()["entry_id"] == b["entry_id"], r.text


def test_till_refusals(client: TestClient, sf: SessionFactory, world: World, clock: Clock) -> None:
    _, b = chain_of_two(client, world, clock)
    for bad in ("12345", "1234567", "abcdef", ""):
        refused(till(client, world, f"bad-{bad}", bad), 400, "bad_checkout_code")
    code = pay_code(client, b["entry_id"])
    unknown = f"{(int(code) + 1) % 10**6:06d}"
    refused(till(client, world, "unknown", unknown), 404, "unknown_checkout_code")
    # another merchant's code is unknown to this one
    other = provision_world(sf, base="5151", name="Shop B", gateway_id="b1b2b3b4b5b6b7b8")
    refused(till(client, other, "foreign", code), 404, "unknown_checkout_code")
    # a till set to another campaign of the same merchant
    second = client.post("/campaigns", json={"base_code": "4920", "slots": 4, "digits": 2, "period_s": 60,
                                             "pool_minor": 10, "label_zh": "二", "label_en": "two"},
                         headers=auth(world, "-")).json()
    refused(till(client, world, "wrong", code, campaign_id=second["campaign_id"]), 409, "wrong_campaign")
    ok = till(client, world, "right", code, campaign_id=world.campaign["campaign_id"])
    assert ok.status_code == 201, ok.text
    # expired: past its 15 minutes
    code2 = pay_code(client, b["entry_id"])
    clock.t += 15 * 60 + 1
    refused(till(client, world, "late", code2), 409, "checkout_code_expired")
    refused(till(client, world, "zero", pay_code(client, b["entry_id"]), amount=0), 400, "bad_amount")


def test_window_end_and_release(client: TestClient, world: World, clock: Clock) -> None:
    h = auth(world, "-")
    cid = world.campaign["campaign_id"]
    r = client.patch(f"/campaigns/{cid}", json={"attribution_window_s": 600}, headers=h)
    assert r.status_code == 200 and r.json()["attribution_window_s"] == 600, r.text
    _, b = chain_of_two(client, world, clock)
    code = pay_code(client, b["entry_id"])
    clock.t += 601  # the code lives 15 minutes, the window only 10
    refused(till(client, world, "window", code), 409, "outside_window")
    page = client.get(f"/e/{b['entry_id']}/pay", headers={"Accept-Language": "zh-CN", "Accept": HTML})
    assert page.status_code == 409 and "归因窗口" in page.text
    assert page.headers["content-type"].startswith("text/html")
    # a fresh entry, then the campaign ends
    _, c = chain_of_two(client, world, clock)
    code = pay_code(client, c["entry_id"])
    client.patch(f"/campaigns/{cid}", json={"ends_at_ms": int(clock.t * 1000) + 1000}, headers=h)
    clock.t += 2
    refused(till(client, world, "ended", code), 409, "campaign_ended")
    client.patch(f"/campaigns/{cid}", json={"ends_at_ms": None}, headers=h)
    assert client.post(f"/campaigns/{cid}/release", headers=h).status_code == 200
    refused(till(client, world, "released", code), 409, "campaign_released")


def click_token(sf: SessionFactory, entry_id: str, campaign_id: int, t_ms: int, token: str) -> str:
    """A click as GET /go/{entry} records it (tests/cloud/test_sales_go.py follows the redirect)."""
    with sf.begin() as s:
        s.add(Click(token_hash=clicks.hash_token(token), entry_id=entry_id, campaign_id=campaign_id,
                    created_at_ms=t_ms))
    return token


def online(client: TestClient, world: World, idem: str, token: str, amount: int = 5000) -> httpx.Response:
    return client.post("/sales/online", json={"click_token": token, "amount_minor": amount},
                       headers=auth(world, idem))


def test_online_sale_by_click_token(client: TestClient, sf: SessionFactory, world: World,
                                    clock: Clock) -> None:
    _, b = chain_of_two(client, world, clock)
    tok = click_token(sf, b["entry_id"], world.campaign["campaign_id"], int(clock.t * 1000), "tok-b-1")
    r = online(client, world, "shop-order-1", tok)
    assert r.status_code == 201, r.text
    ans = r.json()
    assert ans["channel"] == "online" and ans["entry_id"] == b["entry_id"]
    assert [p["amount_minor"] for p in ans["payouts"]] == [500]
    again = online(client, world, "shop-order-1", tok)
    assert again.json() == ans and again.headers["Idempotent-Replayed"] == "true"
    refused(online(client, world, "shop-order-1", tok, amount=5001), 409, "idempotency_conflict")
    second = online(client, world, "shop-order-2", tok)  # the same shopper buys again
    assert second.status_code == 201 and second.json()["order_id"] != ans["order_id"]
    refused(online(client, world, "x", "no-such-token"), 404, "unknown_click")
    refused(online(client, world, "x", "t" * 65), 400, "bad_click_token")
    other = provision_world(sf, base="5151", name="Shop B", gateway_id="b1b2b3b4b5b6b7b8")
    refused(online(client, other, "x", tok), 404, "unknown_click")  # B cannot use A's token
    clock.t += 30 * 24 * 3600 + 1  # past the default 30-day window
    refused(online(client, world, "shop-order-3", tok), 409, "outside_window")


@pytest.mark.parametrize("amount, pool", [(2000, 100), (10_000, 300), (1, 0)])
def test_pool_as_a_share_of_the_sale(client: TestClient, world: World, clock: Clock, amount: int,
                                     pool: int) -> None:
    h = auth(world, "-")
    cid = world.campaign["campaign_id"]
    r = client.patch(f"/campaigns/{cid}", json={"pool_bp": 500, "pool_cap_minor": 300}, headers=h)
    assert (r.json()["pool_bp"], r.json()["pool_cap_minor"]) == (500, 300), r.text
    _, b = chain_of_two(client, world, clock)
    ans = till(client, world, f"bp-{amount}", pay_code(client, b["entry_id"]), amount=amount).json()
    assert ans["pool_minor"] == pool  # 5 % of the sale, floored, at most 300
    assert sum(p["amount_minor"] for p in ans["payouts"]) + ans["remainder_minor"] == pool


def test_pool_fields_are_checked(client: TestClient, world: World) -> None:
    h = auth(world, "-")
    cid = world.campaign["campaign_id"]
    for body, code in (({"pool_bp": 10_001}, "bad_pool_bp"), ({"pool_bp": -1}, "bad_pool_bp"),
                       ({"pool_cap_minor": -1}, "bad_pool_cap"),
                       ({"pool_cap_minor": 10**12 + 1}, "bad_pool_cap"),
                       ({"attribution_window_s": 0}, "bad_window")):
        refused(client.patch(f"/campaigns/{cid}", json=body, headers=h), 400, code)
    r = client.patch(f"/campaigns/{cid}", json={"pool_bp": 100}, headers=h)
    assert r.status_code == 200 and r.json()["pool_bp"] == 100
    r = client.patch(f"/campaigns/{cid}", json={"pool_bp": None}, headers=h)  # back to the fixed pool
    assert r.status_code == 200 and r.json()["pool_bp"] is None


def test_pay_page_refusals_are_pages(client: TestClient, world: World, clock: Clock) -> None:
    for lang, words in (("zh-CN", "没有该进店记录"), ("en", "no such entry")):
        r = client.get("/e/0123456789abcdef0123456789abcdef/pay", headers={"Accept-Language": lang,
                                                                           "Accept": HTML})
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), r.text
        assert words in r.text and f'lang="{lang}"' in r.text and "<svg" not in r.text
    r = client.get("/e/0123456789abcdef0123456789abcdef/pay")  # an API client: the usual JSON error
    refused(r, 404, "unknown_entry")
    _, b = chain_of_two(client, world, clock)
    r = client.get(f"/e/{b['entry_id']}/pay?lang=en", headers={"Accept-Language": "zh-CN"})
    assert "Pay at the counter" in r.text and client.cookies.get("lang") == "en"


def test_go_redirects_with_a_click_token_the_shop_reports(client: TestClient, world: World,
                                                           clock: Clock) -> None:
    _, b = chain_of_two(client, world, clock)
    r = client.get(f"/go/{b['entry_id']}", headers={"Accept": HTML, "Accept-Language": "en"},
                   follow_redirects=False)
    assert r.status_code == 404 and "no online shop" in r.text
    assert r.headers["content-type"].startswith("text/html")
    refused(client.get(f"/go/{b['entry_id']}", follow_redirects=False), 404, "no_target")  # an API client
    cid = world.campaign["campaign_id"]
    r = client.patch(f"/campaigns/{cid}", json={"target_url": "https://shop.example/p?sku=7#top"},
                     headers=auth(world, "-"))
    assert r.status_code == 200, r.text
    tokens = []
    for _ in range(2):  # each click is a new token
        r = client.get(f"/go/{b['entry_id']}", headers={"Accept": HTML}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["referrer-policy"] == "no-referrer"
        m = re.fullmatch(r"https://shop\.example/p\?sku=7&mcode_click=([A-Za-z0-9_-]{22})#top",
                         r.headers["location"])
        assert m, r.headers["location"]
        tokens.append(m.group(1))
    assert tokens[0] != tokens[1]
    ans = online(client, world, "shop-1", tokens[1]).json()
    assert ans["channel"] == "online" and ans["entry_id"] == b["entry_id"]
    r = client.get("/go/0123456789abcdef0123456789abcdef",
                   headers={"Accept": HTML, "Accept-Language": "zh-CN"})
    assert r.status_code == 404 and "没有该进店记录" in r.text
