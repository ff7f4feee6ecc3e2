"""Campaigns in the merchant console (issue 14 part 3): renting with an availability search, drafts
published as numbered versions that every order records, the landing preview rendered by the
shopper's own template, and a draft rule's split of the campaign's real recent chains. Service
tests first, then the pages and the JSON API (both databases)."""

from __future__ import annotations

import html
import json
import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud.errors import ApiError
from cloud.services import campaign_preview, campaign_versions, campaigns, codes, orders, rules, users
from cloud.services.auth import MERCHANT, Principal
from cloud.store.engine import SessionFactory
from cloud.store.models import Order
from protocol.rotation import window
from tests.cloud.conftest import Clock, World, provision_world
from tests.cloud.test_console_access import accept, invite_code
from tests.cloud.test_resolve_orders import PERIOD, code_at
from tests.cloud.test_sessions import form_csrf, login

NOW_MS = 1_700_000_000_000


def owner(world: World) -> Principal:
    return Principal(MERCHANT, world.merchant["merchant_id"])


def chain_order(sf: SessionFactory, world: World, key: str, amount: int, depth: int) -> str:
    """A display entry, then `depth` shares in a row, the last one buying: an order whose chain
    has `depth` sharers."""
    now = time.time()
    e = codes.resolve(sf, code_at(world, window(now, PERIOD)), f"{key}0".ljust(22, "v"), now)
    for i in range(depth):
        share = codes.share(sf, e["entry_id"])["share_code"]
        e = codes.resolve(sf, share, f"{key}{i + 1}".ljust(22, "v"), now)
    orders.place_order(sf, world.merchant["merchant_id"], key, e["entry_id"], amount)
    return str(e["entry_id"])


def test_search_answers_one_code_or_free_codes_for_a_pattern(sf: SessionFactory, world: World) -> None:
    provision_world(sf, base="4901", name="Shop B", gateway_id="00000000000000b2")
    taken = {"base_code": "4919", "free": False, "overlaps": []}
    assert campaign_preview.search(sf, "4919")["codes"] == [taken]
    one = campaign_preview.search(sf, "49")["codes"][0]
    assert one == {"base_code": "49", "free": True, "overlaps": ["4901", "4919"]}  # typed without a dash
    found = campaign_preview.search(sf, "49??")
    free = [c["base_code"] for c in found["codes"]]
    assert len(free) == campaign_preview.SEARCH_LIMIT and "4901" not in free and free[0] == "4900"
    assert free[1:3] == ["4902", "4903"]
    by_length = campaign_preview.search(sf, "", length=3)["codes"]
    assert by_length[0]["base_code"] == "100"  # a free first digit skips 0
    for bad in ("49a9", "", "1234567890123", "４９"):
        with pytest.raises(ApiError) as e:
            campaign_preview.search(sf, bad)
        assert e.value.code == "bad_pattern" and "?" in e.value.message_zh


def test_rent_publishes_version_one_and_a_taken_code_is_refused(sf: SessionFactory, world: World) -> None:
    mid = world.merchant["merchant_id"]
    made = campaign_versions.rent(sf, mid, "5150", "新店", "New shop", "mei", NOW_MS)
    p = owner(world)
    hist = campaign_versions.history(sf, p, made["campaign_id"])
    assert [(v["version"], v["published_by"]) for v in hist] == [(1, "mei")]
    assert campaign_preview.search(sf, "5150")["codes"][0]["free"] is False
    with pytest.raises(ApiError) as e:
        campaign_versions.rent(sf, mid, "5150", "x", "x", "mei", NOW_MS)
    assert e.value.code == "base_code_taken"


def test_a_draft_changes_nothing_live_until_published_and_orders_record_the_version(
    sf: SessionFactory, world: World
) -> None:
    p, cid = owner(world), world.campaign["campaign_id"]
    chain_order(sf, world, "before", 10_000, 1)
    d = campaign_versions.save_draft(
        sf, p, cid, {"pool_minor": 2500, "landing_en": "Half price"}, "mei", NOW_MS
    )
    assert d["has_draft"] and d["version"] is None and d["live"]["pool_minor"] == 1000
    assert {c["field"] for c in d["changes"]} == {"pool_minor", "landing_en"}
    assert campaigns.get(sf, p, cid)["pool_minor"] == 1000  # the live campaign is untouched
    chain_order(sf, world, "draft", 10_000, 1)
    v1 = campaign_versions.publish(sf, p, cid, "mei", NOW_MS + 1)
    assert v1["version"] == 1 and campaigns.get(sf, p, cid)["pool_minor"] == 2500
    chain_order(sf, world, "v1", 10_000, 1)
    levels = {"rule": "fixed-levels", "rule_params": {"levels_bp": "1000,500"}}
    campaign_versions.save_draft(sf, p, cid, levels, "olga", NOW_MS + 2)
    v2 = campaign_versions.publish(sf, p, cid, "olga", NOW_MS + 3)
    assert [(c["field"], c["after"]) for c in v2["changes"]] == [
        ("rule", "fixed-levels"),
        ("rule_params", {"levels_bp": [1000, 500]}),
    ]
    chain_order(sf, world, "v2", 10_000, 2)
    with sf() as s:
        got = {
            o.idempotency_key: (o.campaign_version, o.pool_minor, o.rule) for o in s.scalars(select(Order))
        }
    assert got == {
        "before": (None, 1000, "red-balloon"),
        "draft": (None, 1000, "red-balloon"),
        "v1": (1, 2500, "red-balloon"),
        "v2": (2, 2500, "fixed-levels"),
    }
    hist = campaign_versions.history(sf, p, cid)
    assert [v["version"] for v in hist] == [2, 1] and hist[0]["published_by"] == "olga"
    with pytest.raises(ApiError) as e:
        campaign_versions.publish(sf, p, cid, "olga", NOW_MS + 4)
    assert e.value.code == "nothing_to_publish"


def test_a_bad_draft_is_refused_in_both_languages_and_another_tenant_sees_nothing(
    sf: SessionFactory, world: World
) -> None:
    p, cid = owner(world), world.campaign["campaign_id"]
    for edits, code in (
        ({"pool_bp": 20_000}, "bad_pool_bp"),
        ({"image_url": "http://x"}, "bad_image_url"),
        ({"rule": "pyramid"}, "bad_rule"),
        ({"slots": 9}, "bad_field"),
        ({"starts_at_ms": 5, "ends_at_ms": 4}, "bad_dates"),
    ):
        with pytest.raises(ApiError) as e:
            campaign_versions.save_draft(sf, p, cid, edits, "mei", NOW_MS)
        assert e.value.code == code and e.value.message_zh
    other = provision_world(sf, base="7777", name="Shop B", gateway_id="00000000000000b2")
    for call in (
        lambda q: campaign_versions.draft(sf, q, cid),
        lambda q: campaign_versions.history(sf, q, cid),
        lambda q: campaign_versions.publish(sf, q, cid, "x", NOW_MS),
        lambda q: campaign_preview.rule_preview(sf, q, cid, {"rule": "red-balloon", "pool_minor": 1}),
    ):
        with pytest.raises(ApiError) as e:
            call(Principal(MERCHANT, other.merchant["merchant_id"]))
        assert e.value.status == 404
    assert campaign_versions.draft(sf, p, cid)["has_draft"] is False


def test_the_budget_cannot_drop_below_what_was_paid_on_publish(sf: SessionFactory, world: World) -> None:
    p, cid = owner(world), world.campaign["campaign_id"]
    chain_order(sf, world, "paid", 10_000, 1)
    campaign_versions.save_draft(sf, p, cid, {"budget_minor": 1}, "mei", NOW_MS)  # valid alone
    with pytest.raises(ApiError) as e:
        campaign_versions.publish(sf, p, cid, "mei", NOW_MS)
    assert e.value.code == "budget_below_spent"
    assert campaign_versions.history(sf, p, cid) == []  # nothing published, nothing changed


def test_rule_preview_splits_the_real_recent_chains_with_the_rule_itself(
    sf: SessionFactory, world: World
) -> None:
    p, cid = owner(world), world.campaign["campaign_id"]
    chain_order(sf, world, "o1", 20_000, 1)
    chain_order(sf, world, "o2", 8_000, 3)
    draft = campaign_versions.save_draft(
        sf,
        p,
        cid,
        {"rule": "geometric", "pool_minor": 0, "pool_bp": 1000, "pool_cap_minor": 1500},
        "mei",
        NOW_MS,
    )["draft"]
    pv = campaign_preview.rule_preview(sf, p, cid, draft)
    by = {x["ref"]: x for x in pv["chains"] if x["source"] == "order"}
    with sf() as s:
        ids = {o.idempotency_key: str(o.id) for o in s.scalars(select(Order))}
    o1, o2 = by[ids["o1"]], by[ids["o2"]]
    assert (o1["depth"], o1["pool_minor"], o2["depth"], o2["pool_minor"]) == (1, 1500, 3, 800)  # 10 %, cap
    assert tuple(o2["payouts"]) == rules.split("geometric", 800, 3, draft["rule_params"]).payouts
    assert all(sum(x["payouts"]) + x["remainder_minor"] == x["pool_minor"] for x in pv["chains"])
    assert o1["was_paid_minor"] == json.loads(orders_answer(sf, ids["o1"]))["paid_minor"]
    entries = [x for x in pv["chains"] if x["source"] == "entry"]
    assert entries and all(x["priced_at_minor"] == 14_000 for x in entries)  # the orders' mean


def orders_answer(sf: SessionFactory, order_id: str) -> str:
    with sf() as s:
        o = s.get(Order, int(order_id))
        assert o is not None
        return o.response_json


def test_the_landing_preview_is_the_shopper_template_with_the_draft(sf: SessionFactory, world: World) -> None:
    from cloud.web import shopper_pages

    c = world.campaign
    draft = {
        **campaign_versions.draft(sf, owner(world), c["campaign_id"])["draft"],
        "label_en": "Spring sale",
        "landing_en": "Two for one.\n\nAll week.",
        "image_url": "https://img.example/a.png",
        "target_url": "https://shop.example",
        "starts_at_ms": NOW_MS + 86_400_000,
    }
    html = shopper_pages.landing_page("en", campaign_preview.landing_data(c, draft, NOW_MS), None, "")
    assert "<h1>Spring sale</h1>" in html and "<p>All week.</p>" in html
    assert 'src="https://img.example/a.png"' in html and 'id="go-shop"' in html
    assert "has not started yet" in html


# ---- the pages and the JSON API ------------------------------------------------------------------


def owner_client(client: TestClient, world: World) -> str:
    """Signs the client in with the merchant key (an owner's session); the session's CSRF token."""
    assert login(client, world.merchant["api_key"]).status_code == 303
    return form_csrf(client.get("/merchant").text)


def test_rent_through_the_search_and_land_on_the_editor(client: TestClient, world: World) -> None:
    csrf = owner_client(client, world)
    page = client.get("/merchant/campaigns", params={"q": "49??"})
    assert page.status_code == 200 and 'data-code="4900"' in page.text and 'data-code="4919"' not in page.text
    assert 'data-campaign="1"' in page.text and "4919" in page.text  # the list has the world's campaign
    bad = client.get("/merchant/campaigns", params={"q": "49a"})
    assert bad.status_code == 400 and 'id="error"' in bad.text and "? 代表任意数字" in bad.text
    r = client.post(
        "/merchant/campaigns",
        data={"csrf": csrf, "base_code": "4900", "label_zh": "春季", "label_en": "Spring"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/merchant/campaigns/")
    edit = client.get(r.headers["location"])
    assert edit.status_code == 200 and 'id="version">1<' in edit.text and "春季" in edit.text
    taken = client.post(
        "/merchant/campaigns",
        data={"csrf": csrf, "base_code": "4900", "label_zh": "x", "label_en": "x"},
        follow_redirects=False,
    )
    assert taken.status_code == 409 and "已被租用" in taken.text
    forged = client.post(
        "/merchant/campaigns",
        data={"csrf": "nope", "base_code": "4901", "label_zh": "x", "label_en": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 403


def _form(page: str) -> dict[str, str]:
    """The draft form's fields as the page filled them in (inputs, textareas, selected options,
    checked radios)."""
    form = page[page.index('id="draft"') :]
    form = form[: form.index("</form>")]
    out = {
        m[0]: html.unescape(m[1])
        for m in re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', form)
        if 'type="radio"' not in m[0]
    }
    out.update({n: html.unescape(v) for n, v in re.findall(r'name="(\w+)"[^>]*>([^<]*)</textarea>', form)})
    out["pool_mode"] = re.search(r'name="pool_mode" value="(\w+)" checked', form).group(1)  # type: ignore[union-attr]
    out["rule"] = re.search(r'<option value="([\w-]+)" selected', form).group(1)  # type: ignore[union-attr]
    out["preview_lang"] = "en"
    return out


def test_edit_preview_publish_and_history_through_the_page(
    client: TestClient, world: World, sf: SessionFactory
) -> None:
    csrf = owner_client(client, world)
    cid = world.campaign["campaign_id"]
    url = f"/merchant/campaigns/{cid}"
    fields = _form(client.get(url).text)
    assert fields["pool"] == "10" and fields["window_days"] == "30" and fields["pool_mode"] == "fixed"
    typed = {
        **fields,
        "csrf": csrf,
        "label_en": "Spring sale",
        "landing_en": "Two for one.",
        "image_url": "https://img.example/a.png",
        "pool_mode": "share",
        "pool_pct": "12.5",
        "pool_cap": "30",
        "budget": "5000",
        "rule": "fixed-levels",
        "levels_bp": "1000, 500",
    }
    pv = client.post(f"{url}/preview", data=typed)  # what the Preview button (and the script) posts
    assert pv.status_code == 200 and "<h1>Spring sale</h1>" in pv.text and "Two for one." in pv.text
    assert "frame-ancestors 'self'" in pv.headers["content-security-policy"]
    assert "img-src 'self' data: https://img.example" in pv.headers["content-security-policy"]
    assert pv.headers["x-frame-options"] == "SAMEORIGIN"
    assert campaigns.get(sf, owner(world), cid)["label"]["en"] != "Spring sale"  # a preview stores nothing
    saved = client.post(url, data=typed, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"{url}?done=saved"
    page = client.get(saved.headers["location"]).text
    assert 'id="notice"' in page and 'id="pending"' in page and "12.5 %" in page
    assert "<h1>Spring sale</h1>" in client.get(f"{url}/preview", params={"lang": "en"}).text  # the draft
    bad = client.post(url, data={**typed, "budget": "lots"}, follow_redirects=False)
    assert bad.status_code == 400 and 'id="error"' in bad.text and 'value="lots"' in bad.text  # kept
    published = client.post(f"{url}/publish", data={"csrf": csrf}, follow_redirects=False)
    assert published.status_code == 303
    live = campaigns.get(sf, owner(world), cid)
    assert (live["pool_bp"], live["pool_cap_minor"], live["budget_minor"], live["rule"]) == (
        1250,
        3000,
        500_000,
        "fixed-levels",
    )
    hist = client.get(url).text
    assert 'data-version="1"' in hist and "¥5,000.00" in hist and 'id="pending"' not in hist
    again = client.post(f"{url}/publish", data={"csrf": csrf}, follow_redirects=False)
    assert again.status_code == 409 and "没有任何修改" in again.text


def test_viewers_read_staff_go_to_the_till_and_other_tenants_get_404(
    client: TestClient, world: World, sf: SessionFactory, clock: Clock
) -> None:
    cid = world.campaign["campaign_id"]
    other = provision_world(sf, base="7777", name="Shop B", gateway_id="00000000000000b2")
    now = int(clock() * 1000)
    assert accept(client, invite_code(sf, world, users.VIEWER, now), "vic").status_code == 303
    page = client.get(f"/merchant/campaigns/{cid}")
    assert page.status_code == 200 and 'id="read-only"' in page.text and "<fieldset disabled>" in page.text
    assert 'id="publish-button"' not in page.text and 'id="save"' not in page.text
    assert client.get(f"/merchant/campaigns/{cid}/preview").status_code == 200
    csrf = form_csrf(client.get("/merchant").text)
    assert (
        client.post(
            f"/merchant/campaigns/{cid}/publish", data={"csrf": csrf}, follow_redirects=False
        ).status_code
        == 403
    )
    client.cookies.clear()
    assert accept(client, invite_code(sf, world, users.STAFF, now), "sam").status_code == 303
    r = client.get("/merchant/campaigns", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/till")
    client.cookies.clear()
    assert client.get("/merchant/campaigns", follow_redirects=False).headers["location"] == "/login"
    csrf = owner_client(client, world)
    theirs = other.campaign["campaign_id"]
    for method, path in (
        ("GET", ""),
        ("GET", "/preview"),
        ("POST", ""),
        ("POST", "/publish"),
        ("POST", "/preview"),
        ("POST", "/discard"),
    ):
        r = client.request(
            method,
            f"/merchant/campaigns/{theirs}{path}",
            data={"csrf": csrf} if method == "POST" else None,
            follow_redirects=False,
        )
        assert r.status_code == 404 and "Shop B" not in r.text and "7777" not in r.text, (method, path)


def test_the_json_api_drafts_publishes_and_lists_versions(
    client: TestClient, world: World, sf: SessionFactory
) -> None:
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    cid = world.campaign["campaign_id"]
    free = client.get("/base-codes/availability", params={"q": "4919"}, headers=h).json()
    assert free["codes"] == [{"base_code": "4919", "free": False, "overlaps": []}]
    assert client.get("/base-codes/availability", params={"q": "4a"}, headers=h).status_code == 400
    d = client.put(f"/campaigns/{cid}/draft", json={"pool_minor": 4000}, headers=h)
    assert d.status_code == 200 and d.json()["has_draft"] and d.json()["changes"][0]["field"] == "pool_minor"
    assert client.get(f"/campaigns/{cid}", headers=h).json()["pool_minor"] == 1000
    v = client.post(f"/campaigns/{cid}/publish", headers=h)
    assert v.status_code == 200 and v.json()["version"] == 1 and v.json()["published_by"].startswith("key ")
    assert client.get(f"/campaigns/{cid}", headers=h).json()["pool_minor"] == 4000
    assert [x["version"] for x in client.get(f"/campaigns/{cid}/versions", headers=h).json()["versions"]] == [
        1
    ]
    assert client.post(f"/campaigns/{cid}/publish", headers=h).json()["code"] == "nothing_to_publish"
    # a PATCH is published at once as the next version, when it changes anything; a draft stays
    client.put(f"/campaigns/{cid}/draft", json={"label_en": "Later"}, headers=h)
    assert client.patch(f"/campaigns/{cid}", json={"pool_minor": 5000}, headers=h).status_code == 200
    assert client.patch(f"/campaigns/{cid}", json={"pool_minor": 5000}, headers=h).status_code == 200
    versions = client.get(f"/campaigns/{cid}/versions", headers=h).json()["versions"]
    assert [v["version"] for v in versions] == [2, 1] and versions[0]["published_by"].startswith("key ")
    assert [(c["field"], c["before"], c["after"]) for c in versions[0]["changes"]] == [
        ("pool_minor", 4000, 5000)
    ]
    assert client.get(f"/campaigns/{cid}/draft", headers=h).json()["draft"]["label_en"] == "Later"
    chain_order(sf, world, "after-patch", 10_000, 1)
    with sf() as s:
        assert s.scalar(select(Order.campaign_version).where(Order.idempotency_key == "after-patch")) == 2
    assert client.get(f"/campaigns/{cid}/draft").status_code == 401
