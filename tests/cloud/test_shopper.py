"""The shopper's pages through the HTTP API, on SQLite and PostgreSQL: typing a code at `/` in
every spelling a phone types, a bare base code, every refusal as a page in zh-CN and en (never
JSON to a browser, guess limits charged as for the API), the landing page with Save and Share, and
the share link landing the next person one level down. Browser runs: test_shopper_browser.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud.services import campaigns, saved, stats
from cloud.store.engine import SessionFactory
from cloud.store.models import Entry, RateBucket
from protocol.rotation import window
from tests.cloud.conftest import Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at, rotor

HTML = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}
ZH = {**HTML, "Accept-Language": "zh-CN,zh;q=0.9"}


def _entries(sf: SessionFactory) -> list[Entry]:
    with sf() as s:
        return list(s.scalars(select(Entry).order_by(Entry.created_at_ms, Entry.id)))


def _type(client: TestClient, typed: str, headers: dict[str, str] = HTML) -> Any:
    return client.get("/", params={"code": typed}, headers=headers, follow_redirects=False)


def _spellings(code: str) -> list[str]:
    base, suffix = code.split("-")
    wide = str.maketrans("0123456789-", "０１２３４５６７８９－")
    return [code, base + suffix, f"{base} {suffix}", f"  {code}\u3000", code.translate(wide),
            f"{base.translate(wide)}—{suffix}", f"{base}——{suffix}", f"{base}一{suffix}"]


def test_every_spelling_a_phone_types_lands_on_the_campaign(client: TestClient, world: World, clock: Clock,
                                                             sf: SessionFactory) -> None:
    code = code_at(world, window(clock.t, PERIOD))
    for typed in _spellings(code):
        client.cookies.clear()
        r = _type(client, typed)
        assert (r.status_code, r.headers["location"]) == (303, "/c/4919"), typed
        assert "mcode_visitor" in r.headers["set-cookie"]
    got = _entries(sf)
    assert [(e.code, e.via, e.depth) for e in got] == [(code, "display", 0)] * len(_spellings(code))
    # the API reads the same spellings (one rule: protocol.rotation.normalize_code)
    client.cookies.clear()
    body = client.get(f"/r/{code.replace('-', '')}").json()
    assert (body["code"], body["via"]) == (code, "display")


def test_a_bare_base_code_is_an_entry_without_presence(client: TestClient, world: World,
                                                      sf: SessionFactory) -> None:
    other = provision_world(sf, base="0001", name="Shop B", gateway_id="0123456789abcdef")
    for typed, base in (("4919", "4919"), ("0001", "0001"), (" ０００１ ", "0001")):
        client.cookies.clear()
        r = _type(client, typed)
        assert (r.status_code, r.headers["location"]) == (303, f"/c/{base}"), typed
    assert sorted((e.code, e.via, e.device_id, e.root_device_id) for e in _entries(sf)) == [
        ("0001", "base", None, None), ("0001", "base", None, None), ("4919", "base", None, None)]
    client.cookies.clear()
    body = client.get("/r/4919").json()
    assert (body["via"], body["device_id"], body["depth"]) == ("base", None, 0)
    # counted as their own kind in the merchant's stats
    by_via = stats.merchant_stats(sf, world.merchant["merchant_id"])["totals"]["entries_by_via"]
    assert by_via == {"display": 0, "printed": 0, "share": 0, "base": 2}
    assert stats.merchant_stats(sf, other.merchant["merchant_id"])["totals"]["entries_by_via"]["base"] == 2
    # the landing page says how they came
    page = client.get("/c/4919", headers=HTML).text
    assert 'data-via="base"' in page and "base code" in page


def _problem(r: Any) -> tuple[str, str]:
    assert r.headers["content-type"].startswith("text/html"), r.text[:200]
    said = re.search(r'<div class="problem" role="alert" id="problem">\s*<h2>(.*?)</h2>\s*<p>(.*?)</p>\s*'
                     r'<p class="next">(.*?)</p>', r.text, re.S)
    assert said, r.text
    assert 'name="code"' in r.text  # the field again, to try once more
    return said.group(2), said.group(3)


@pytest.mark.parametrize("headers,lang", [(HTML, "en"), (ZH, "zh-CN")])
def test_every_refusal_is_a_page_that_says_what_to_do(client: TestClient, world: World, clock: Clock,
                                                      sf: SessionFactory, headers: dict[str, str],
                                                      lang: str) -> None:
    rot = rotor(world)
    w = window(clock.t, PERIOD)
    while {rot.secret(w + 3)} & {rot.secret(w - 1), rot.secret(w), rot.secret(w + 1)}:
        w += 1
    clock.t = w * PERIOD + 1
    stale = code_at(world, w + 3)
    cases = [("abc", 400), ("4919-", 400), ("x" * 5000, 400), ("5555-12", 404), ("4919-123456", 404),
             ("491912345", 404), (stale, 410)]  # malformed, unknown, expired
    for typed, status in cases:
        for r in (_type(client, typed, headers), client.get(f"/r/{typed[:60]}", headers=headers)):
            assert r.status_code == status, (typed, r.text[:300])
            said, nxt = _problem(r)
            assert f'<html lang="{lang}">' in r.text
            zh = bool(re.search(r"[\u4e00-\u9fff]", nxt))
            assert zh == (lang == "zh-CN"), nxt
    # an ended campaign
    campaigns.update(sf, _owner(world), world.campaign["campaign_id"],
                     {"ends_at_ms": int(clock.t * 1000) - 1})
    r = _type(client, code_at(world, w), headers)
    assert r.status_code == 410
    assert _problem(r)[1] in ("This offer has ended; you can type another code.",
                              "该活动已结束，可以输入其他代码。")
    assert _entries(sf) == []


def _owner(world: World) -> Any:
    from cloud.services.auth import Principal
    return Principal(key_id=0, role="merchant", merchant_id=world.merchant["merchant_id"])


def _buckets(sf: SessionFactory) -> dict[str, float]:
    with sf() as s:
        return {b.key: b.tokens for b in s.scalars(select(RateBucket))}


def test_the_page_charges_guesses_exactly_as_the_api(client: TestClient, world: World, sf: SessionFactory,
                                                    clock: Clock) -> None:
    other = provision_world(sf, base="5000", name="Shop B", gateway_id="0123456789abcdef")
    assert client.get("/r/4919-98").status_code == 404  # through the API, a wrong guess at 4919
    after_api = _buckets(sf)
    assert _type(client, "5000-98").status_code == 404  # through the page, a wrong guess at 5000
    after_page = _buckets(sf)
    cid_a, cid_b = world.campaign["campaign_id"], other.campaign["campaign_id"]
    api = {k.replace(f":{cid_a}", ":C"): v for k, v in after_api.items()}
    page = {k.replace(f":{cid_b}", ":C"): after_page[k] - after_api.get(k, after_page[k] + 0)
            for k in after_page if f":{cid_b}" in k}
    assert {k for k in api if ":C" in k} == set(page), (api, page)
    for k in page:
        assert after_page[k.replace(":C", f":{cid_b}")] == api[k]
    # a right code takes nothing from a campaign's budget, on both paths
    code = code_at(world, window(clock.t, PERIOD))
    before = _buckets(sf)
    assert _type(client, code).status_code == 303
    assert {k: v for k, v in _buckets(sf).items() if f":{cid_a}" in k} == \
        {k: v for k, v in before.items() if f":{cid_a}" in k}


def _token(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def test_landing_save_and_share_then_the_link_lands_the_next_person(client: TestClient, world: World,
                                                                    clock: Clock, sf: SessionFactory,
                                                                    engine: Any) -> None:
    campaigns.update(sf, _owner(world), world.campaign["campaign_id"],
                     {"target_url": "https://shop.example/buy?x=1", "image_url": "https://img.example/a.png",
                      "landing_en": "Two for one.\n\nToday only."})
    assert _type(client, code_at(world, window(clock.t, PERIOD))).status_code == 303
    r = client.get("/c/4919", headers=HTML)
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    page = r.text
    entry = _entries(sf)[0]
    assert entry.id not in r.url.path  # the entry is found by the cookie, not the address
    assert f'href="/go/{entry.id}"' in page and f'href="/e/{entry.id}/pay"' in page
    assert "<p>Two for one.</p><p>Today only.</p>" in page
    # the merchant's image origin, and only it, joins img-src
    assert "img-src 'self' data: https://img.example;" in r.headers["content-security-policy"]
    assert "script-src 'self';" in r.headers["content-security-policy"]
    tok = _token(page)
    # Save: a form with the visitor's token; forged forms are refused
    bad = client.post("/me/saved", data={"csrf": "x" * 22, "base": "4919"}, follow_redirects=False)
    assert bad.headers["location"] == "/c/4919?n=bad_form"
    cross = client.post("/me/saved", data={"csrf": tok, "base": "4919"}, follow_redirects=False,
                        headers={"Origin": "https://evil.example"})
    assert cross.headers["location"] == "/c/4919?n=bad_form"
    assert saved.list_for(sf, entry.visitor) == []
    ok = client.post("/me/saved", data={"csrf": tok, "base": "4919"}, follow_redirects=False)
    assert (ok.status_code, ok.headers["location"]) == (303, "/c/4919")
    assert client.post("/me/saved", data={"csrf": tok, "base": "4919"}).status_code == 200  # again: no-op
    # Share: the personal code, its link and QR on the page
    r = client.post("/c/4919/share", data={"csrf": tok}, follow_redirects=False)
    assert r.headers["location"] == "/c/4919#share"
    page = client.get("/c/4919", headers=HTML).text
    share_code = re.search(r'data-code="(4919-\d{6})"', page).group(1)  # type: ignore[union-attr]
    link = f"https://testserver/r/{share_code}"
    assert f'value="{link}"' in page and "<svg" in page and 'id="saved"' in page
    assert client.post("/c/4919/share", data={"csrf": tok}).status_code == 200  # again: the same code
    assert share_code in client.get("/c/4919", headers=HTML).text
    assert saved.list_for(sf, [entry.visitor], "en") == [
        {"campaign_id": world.campaign["campaign_id"], "base_code": "4919", "code": share_code,
         "label": "Welcome to Shop A", "url": "/c/4919",
         "saved_at_ms": saved.list_for(sf, entry.visitor)[0]["saved_at_ms"]}]
    # the next person opens the link (GET) or types the share code: one level down
    from fastapi.testclient import TestClient as TC
    with TC(client.app, base_url="https://testserver") as friend:
        r = friend.get(f"/r/{share_code}", headers=HTML, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/c/4919")
        page = friend.get("/c/4919", headers=HTML).text
        assert 'data-via="share"' in page and f'data-code="{share_code}"' not in page  # not theirs
        assert _type(friend, share_code.replace("-", "")).status_code == 303
    kids = [e for e in _entries(sf) if e.via == "share"]
    assert [(e.depth, e.root_device_id) for e in kids] == [(1, entry.root_device_id)] * 2
    # the pay page's way back (/e/{entry}) goes to the landing page
    r = client.get(f"/e/{entry.id}", headers=HTML, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/c/4919")
    assert client.get("/e/" + "0" * 32, headers=HTML).status_code == 404


def test_landing_without_an_entry_and_unknown_campaigns(client: TestClient, world: World) -> None:
    page = client.get("/c/4919", headers=ZH)
    assert page.status_code == 200 and 'id="enter-base"' in page.text and "/go/" not in page.text
    r = client.post("/c/4919/share", data={"csrf": "nope"}, follow_redirects=False)
    assert r.headers["location"] == "/c/4919?n=bad_form"
    assert "表单已过期" in client.get("/c/4919?n=bad_form", headers=ZH).text
    for base in ("9999", "12345678901234567890", "abc"):
        r = client.get(f"/c/{base}", headers=ZH)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert '<html lang="zh-CN">' in r.text


def test_language_follows_the_switch_then_the_cookie(client: TestClient, world: World) -> None:
    assert '<html lang="zh-CN">' in client.get("/", headers={"Accept-Language": "zh-CN"}).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "en-US,en"}).text
    r = client.get("/?lang=en", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in r.text and 'href="?lang=zh-CN"' in r.text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "zh-CN"}).text
    page = client.get("/").text
    assert 'inputmode="numeric"' in page and 'autocomplete="off"' in page and 'method="get"' in page
    assert "<script" not in page  # `/` needs no script at all


@pytest.mark.parametrize("field,value,code", [
    ("image_url", "http://img.example/a.png", "bad_image_url"),
    ("target_url", "javascript:alert(1)", "bad_target_url"),
    ("target_url", "https://user:pw@shop.example/", "bad_target_url"),
    ("target_url", "https://" + "a" * 500 + ".example/", "bad_target_url"),
    ("currency", "cny", "bad_currency"),
    ("currency", "YUAN", "bad_currency"),
])
def test_campaign_landing_fields_are_checked(client: TestClient, world: World, sf: SessionFactory,
                                             field: str, value: str, code: str) -> None:
    from cloud.errors import ApiError
    with pytest.raises(ApiError) as e:
        campaigns.update(sf, _owner(world), world.campaign["campaign_id"], {field: value})
    assert e.value.code == code and e.value.message_zh
    got = campaigns.update(sf, _owner(world), world.campaign["campaign_id"],
                           {"target_url": "https://shop.example/", "currency": "HKD"})
    assert (got["target_url"], got["currency"], got["image_url"]) == ("https://shop.example/", "HKD", None)
    cleared = campaigns.update(sf, _owner(world), world.campaign["campaign_id"], {"target_url": None})
    assert cleared["target_url"] is None


def test_api_clients_keep_json_and_the_document_says_both(client: TestClient, world: World,
                                                          clock: Clock) -> None:
    code = code_at(world, window(clock.t, PERIOD))
    for accept in (None, "*/*", "application/json"):
        r = client.get(f"/r/{code}", headers={"Accept": accept} if accept else {})
        assert (r.status_code, r.headers["content-type"]) == (200, "application/json"), accept
        r = client.get("/r/5555-12", headers={"Accept": accept} if accept else {})
        assert (r.status_code, r.json()["code"]) == (404, "unknown_code")
    op = client.app.openapi()["paths"]["/r/{code}"]["get"]  # type: ignore[attr-defined]
    assert "application/json" in op["responses"]["200"]["content"]
    assert "browser" in op["responses"]["303"]["description"]
    for status in ("400", "404", "410", "429"):
        assert set(op["responses"][status]["content"]) == {"application/json", "text/html"}, status
