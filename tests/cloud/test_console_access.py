"""Who may use the merchant console (issue 14, part 1): people with argon2id passwords who join
by a one-time invitation, roles (owner, staff at the till only, viewer), and revocable read-only
links. No secret is ever in a URL: invitation and link codes travel after '#' and reach the server
in a form body."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.services import shared_links, users
from cloud.store.engine import SessionFactory
from cloud.store.models import Invite, User
from tests.cloud.conftest import MASTER_KEY, Clock, World
from tests.cloud.test_sessions import form_csrf, login

PASSWORD = "correct horse battery"


def invite_code(sf: SessionFactory, world: World, role: str, now_ms: int) -> str:
    return str(users.invite(sf, world.merchant["merchant_id"], role, now_ms)["code"])


def accept(client: TestClient, code: str, name: str, password: str = PASSWORD) -> Response:
    page = client.get("/invite")
    assert page.status_code == 200 and 'data-from-fragment' in page.text
    return client.post("/invite", data={"csrf": form_csrf(page.text), "code": code, "login": name,
                                        "password": password}, follow_redirects=False)


def password_login(client: TestClient, name: str, password: str = PASSWORD) -> Response:
    page = client.get("/login")
    return client.post("/login", data={"csrf": form_csrf(page.text), "login": name, "password": password},
                       follow_redirects=False)


def test_an_invitation_makes_an_argon2id_user_once(client: TestClient, sf: SessionFactory, world: World,
                                                   clock: Clock) -> None:
    code = invite_code(sf, world, users.OWNER, int(clock() * 1000))
    r = accept(client, code, "Mei")
    assert (r.status_code, r.headers["location"]) == (303, "/merchant")
    assert client.get("/merchant").status_code == 200  # signed in by accepting
    with sf() as s:
        u = s.scalar(select(User).where(User.login == "mei"))
        inv = s.scalar(select(Invite))
    assert u is not None and u.password_hash.startswith("$argon2id$") and PASSWORD not in u.password_hash
    assert inv is not None and inv.used_at_ms is not None and code not in inv.token_hash
    client.cookies.clear()
    again = accept(client, code, "other")
    assert again.status_code == 401
    assert "邀请码无效" in again.text and "unknown, used or expired" in again.text


def test_expired_invitation_weak_password_and_taken_login_are_refused(client: TestClient, sf: SessionFactory,
                                                                      world: World, clock: Clock) -> None:
    now = int(clock() * 1000)
    old = str(users.invite(sf, world.merchant["merchant_id"], users.STAFF, now - 10_000, ttl_s=1)["code"])
    assert accept(client, old, "late").status_code == 401
    code = invite_code(sf, world, users.STAFF, now)
    weak = accept(client, code, "kim", "short")
    assert weak.status_code == 400 and "12" in weak.text
    assert accept(client, code, "kim").status_code == 303
    client.cookies.clear()
    taken = accept(client, invite_code(sf, world, users.VIEWER, now), "KIM")
    assert taken.status_code == 409


def test_password_login_roles_and_disable(client: TestClient, sf: SessionFactory, world: World,
                                          clock: Clock) -> None:
    now = int(clock() * 1000)
    for name, role in (("olga", users.OWNER), ("sam", users.STAFF), ("vic", users.VIEWER)):
        assert accept(client, invite_code(sf, world, role, now), name).status_code == 303
        client.cookies.clear()
    wrong = password_login(client, "olga", "not the password")
    missing = password_login(client, "nobody", PASSWORD)
    assert wrong.status_code == missing.status_code == 401  # the same answer: logins are not revealed
    assert password_login(client, "sam", PASSWORD).headers["location"] == "/till"
    assert client.get("/merchant", follow_redirects=False).headers["location"] == "/till"
    assert client.get("/merchant/stats.json").status_code == 403  # staff: the till only
    assert client.get("/merchant/access").status_code == 403
    client.cookies.clear()
    assert password_login(client, "vic", PASSWORD).headers["location"] == "/merchant"
    page = client.get("/merchant")
    assert page.status_code == 200 and 'href="/merchant/access"' not in page.text  # no owner tools
    users.disable(sf, world.merchant["merchant_id"], "vic", now)
    assert client.get("/merchant", follow_redirects=False).headers["location"] == "/login"  # session ended
    client.cookies.clear()
    assert password_login(client, "olga", PASSWORD).status_code == 303
    assert 'href="/merchant/access"' in client.get("/merchant").text


def test_a_shared_link_opens_a_viewer_session_until_revoked(client: TestClient, sf: SessionFactory,
                                                            world: World, clock: Clock) -> None:
    assert login(client, world.merchant["api_key"]).status_code == 303  # a merchant key: owner
    access = client.get("/merchant/access")
    assert access.status_code == 200
    made = client.post("/merchant/shared-links", data={"csrf": form_csrf(access.text), "label": "bank"})
    m = re.search(r'<code id="new-link">[^<#]*/shared#([A-Za-z0-9_-]+)</code>', made.text)
    assert made.status_code == 200 and m, made.text
    code = m.group(1)
    forged = client.post("/merchant/shared-links", data={"csrf": "forged", "label": "x"})
    assert forged.status_code == 403
    owner_cookies = dict(client.cookies)
    client.cookies.clear()
    page = client.get("/shared")
    opened = client.post("/shared", data={"csrf": form_csrf(page.text), "code": code}, follow_redirects=False)
    assert (opened.status_code, opened.headers["location"]) == (303, "/merchant")
    assert client.get("/merchant").status_code == 200
    assert client.get("/merchant/access").status_code == 403  # a viewer manages nothing
    link_id = shared_links.list_for(sf, world.merchant["merchant_id"])[0]["link_id"]
    viewer_cookies = dict(client.cookies)
    client.cookies.clear()
    client.cookies.update(owner_cookies)
    access = client.get("/merchant/access")
    assert client.post(f"/merchant/shared-links/{link_id}/revoke",
                       data={"csrf": form_csrf(access.text)}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.update(viewer_cookies)
    assert client.get("/merchant", follow_redirects=False).headers["location"] == "/login"
    page = client.get("/shared")
    assert client.post("/shared", data={"csrf": form_csrf(page.text), "code": code}).status_code == 401


def test_cli_invites_with_the_code_after_the_hash(sf: SessionFactory, world: World, db_url: str) -> None:
    from mcode.cli import app

    runner = CliRunner(env={"MCODE_CLOUD_MASTER_KEY": MASTER_KEY, "COLUMNS": "80"})
    r = runner.invoke(app, ["cloud", "user", "invite", "--merchant", str(world.merchant["merchant_id"]),
                                 "--role", "viewer", "--url", "https://shop.example", "--db-url", db_url])
    assert r.exit_code == 0, r.output
    assert re.search(r'"link": "https://shop.example/invite#[A-Za-z0-9_-]{40,}"', r.output)
    bad = runner.invoke(app, ["cloud", "user", "invite", "--merchant", "1", "--role", "boss",
                                   "--db-url", db_url])
    assert bad.exit_code == 2 and "bad_role" in bad.output and "角色" in bad.output
    made = runner.invoke(app, ["cloud", "shared-link", "create", "--merchant",
                                    str(world.merchant["merchant_id"]), "--db-url", db_url])
    assert made.exit_code == 0 and "/shared#" in made.output
