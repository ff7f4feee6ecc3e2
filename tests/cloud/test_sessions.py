"""The merchant page's login (issue 12, finding A): no key in any URL, a session cookie instead.

Regresses: `?key=` was accepted on every keyed endpoint (and the merchant page's links carried it),
and the page had no login; the access log and the demo then showed the key."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from cloud.services import auth
from cloud.store.engine import SessionFactory
from cloud.store.models import WebSession
from tests.cloud.conftest import ADMIN_KEY, Clock, World

SESSION = "__Host-mcode_session"
LOGIN_CSRF = "__Host-mcode_login_csrf"


def form_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf field in the form"
    return m.group(1)


def login(client: TestClient, key: str) -> Response:
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={"csrf": form_csrf(page.text), "key": key}, follow_redirects=False)


def set_cookie(r: Response, name: str) -> str:
    line = next((v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(name + "=")), "")
    assert line, f"no Set-Cookie for {name}: {r.headers}"
    return line


@pytest.mark.parametrize("path", ["/merchant", "/merchant/stats.json", "/campaigns", "/r/4919-00",
                                  "/healthz", "/no/such/path"])
def test_key_in_url_is_refused_everywhere(client: TestClient, world: World, path: str) -> None:
    """A valid key in the query is refused (400, zh and en), whatever the path; the same request
    with the key in the header works."""
    key = world.merchant["api_key"]
    for name in ("key", "api_key", "KEY"):
        r = client.get(path, params={name: key})
        assert (r.status_code, r.json()["code"]) == (400, "key_in_url"), (path, name, r.text)
        assert "Authorization" in r.json()["message"] and "Authorization" in r.json()["message_zh"]
        assert key not in r.text
    assert client.post("/orders", params={"key": key}, json={}).json()["code"] == "key_in_url"


def test_login_sets_a_strict_session_cookie_and_opens_the_page(client: TestClient, world: World,
                                                                sf: SessionFactory) -> None:
    page = client.get("/login")
    assert "商户登录" in page.text and "Merchant sign-in" in page.text and "<script" not in page.text
    pre = set_cookie(page, LOGIN_CSRF)
    for attr in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attr.lower() in pre.lower(), (attr, pre)
    r = client.post("/login", data={"csrf": form_csrf(page.text), "key": world.merchant["api_key"]},
                    follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/merchant")
    cookie = set_cookie(r, SESSION)
    for attr in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age=28800"):
        assert attr.lower() in cookie.lower(), (attr, cookie)
    token = cookie.split(";")[0].split("=", 1)[1]
    with sf() as s:  # only the token's hash is stored
        rows = s.scalars(select(WebSession)).all()
    assert len(rows) == 1 and rows[0].token_hash != token and token not in rows[0].token_hash
    assert rows[0].merchant_id == world.merchant["merchant_id"] and rows[0].role == "merchant"
    html = client.get("/merchant").text
    assert "Shop A" in html and 'action="/logout"' in html
    assert client.get("/merchant/stats.json").json()["merchant_id"] == world.merchant["merchant_id"]
    assert world.merchant["api_key"] not in html


def test_login_refuses_wrong_keys_other_roles_and_forged_forms(client: TestClient, world: World,
                                                               sf: SessionFactory) -> None:
    r = login(client, "mk_wrong")
    assert r.status_code == 401 and "密钥错误" in r.text and "Wrong key" in r.text
    tech = str(auth.issue_key(sf, auth.TECHNICIAN, world.merchant["merchant_id"])["api_key"])
    r = login(client, tech)
    assert r.status_code == 403 and "not a merchant key" in r.text
    assert login(client, ADMIN_KEY).status_code == 401  # the bootstrap admin key opens no page
    key = world.merchant["api_key"]
    page = client.get("/login")
    token = form_csrf(page.text)
    # no token in the form; a token that is not the cookie's; no cookie; another site's Origin
    assert client.post("/login", data={"key": key}, follow_redirects=False).status_code == 403
    assert client.post("/login", data={"csrf": "x" + token, "key": key},
                       follow_redirects=False).status_code == 403
    assert client.post("/login", data={"csrf": token, "key": key}, headers={"Origin": "https://evil.example"},
                       follow_redirects=False).status_code == 403
    assert client.post("/login", data={"csrf": token, "key": key}, headers={"Origin": "null"},
                       follow_redirects=False).status_code == 403
    assert client.post("/login", data={"csrf": token, "key": key}, headers={"Sec-Fetch-Site": "cross-site"},
                       follow_redirects=False).status_code == 403
    client.cookies.delete(LOGIN_CSRF)
    r = client.post("/login", data={"csrf": token, "key": key}, follow_redirects=False)
    assert r.status_code == 403 and "表单已过期" in r.text
    with sf() as s:
        assert s.scalars(select(WebSession)).all() == []


def test_session_expires_logs_out_and_dies_with_its_key(client: TestClient, world: World, clock: Clock,
                                                        sf: SessionFactory) -> None:
    assert login(client, world.merchant["api_key"]).status_code == 303
    assert client.get("/merchant").status_code == 200
    clock.t += 8 * 3600 + 1  # past the 8 h default
    r = client.get("/merchant", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert client.get("/merchant/stats.json").status_code == 401

    assert login(client, world.merchant["api_key"]).status_code == 303
    html = client.get("/merchant").text
    forged = client.post("/logout", data={"csrf": "not-it"}, follow_redirects=False)
    assert forged.status_code == 403 and client.get("/merchant").status_code == 200
    r = client.post("/logout", data={"csrf": form_csrf(html)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    with sf() as s:  # the expired one was swept at the second login, the second one deleted
        assert s.scalars(select(WebSession)).all() == []
    assert client.get("/merchant", follow_redirects=False).status_code == 303

    assert login(client, world.merchant["api_key"]).status_code == 303
    key_id = auth.list_keys(sf, world.merchant["merchant_id"])[0]["key_id"]
    auth.revoke_key(sf, auth.Principal(auth.ADMIN, None), int(str(key_id)))
    assert client.get("/merchant", follow_redirects=False).status_code == 303


def test_a_replayed_cookie_after_logout_is_nothing(client: TestClient, world: World) -> None:
    """The cookie value is worthless once logged out (the session is deleted server-side)."""
    assert login(client, world.merchant["api_key"]).status_code == 303
    token = client.cookies.get(SESSION)
    assert token
    html = client.get("/merchant").text
    client.post("/logout", data={"csrf": form_csrf(html)}, follow_redirects=False)
    client.cookies.set(SESSION, token)
    assert client.get("/merchant", follow_redirects=False).status_code == 303


def test_bearer_header_still_serves_api_clients(client: TestClient, world: World) -> None:
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    assert client.get("/merchant", headers=h).status_code == 200
    assert client.get("/merchant/stats.json", headers=h).status_code == 200
    bad = client.get("/merchant", headers={"Authorization": "Bearer mk_wrong"}, follow_redirects=False)
    assert (bad.status_code, bad.json()["code"]) == (401, "unauthorized")
