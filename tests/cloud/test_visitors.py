"""Visitors and sharers (issue 12, "What it must show" 7). Regressions: the visitor token was chosen
by the client (any 16-64 characters were taken as is) and echoed in JSON bodies; one cookie made
97 share codes in 196 requests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cloud.http.app import create_app
from cloud.services import codes
from cloud.store.engine import SessionFactory
from cloud.store.models import Entry
from protocol.rotation import window
from tests.cloud.conftest import SETTINGS, VISITOR_SECRET, Clock, World
from tests.cloud.test_resolve_orders import PERIOD, code_at

COOKIE = codes.VISITOR_COOKIE


def _app(engine: Engine, clock: Clock, **over: object) -> FastAPI:
    return create_app(dataclasses.replace(SETTINGS, **over), engine=engine, clock_=clock)  # type: ignore[arg-type]


def _client(app: FastAPI, address: str = "198.51.100.1") -> TestClient:
    return TestClient(app, base_url="https://testserver", client=(address, 40000))


@pytest.fixture
def phone(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with _client(_app(engine, clock)) as c:
        yield c


def _visitor_of(sf: SessionFactory, entry_id: str) -> str:
    with sf() as s:
        v = s.scalar(select(Entry.visitor).where(Entry.id == entry_id))
    assert v is not None
    return v


def test_tokens_are_issued_signed_and_never_in_json(phone: TestClient, sf: SessionFactory, world: World,
                                                    clock: Clock) -> None:
    code = code_at(world, window(clock.t, PERIOD))
    r = phone.get(f"/r/{code}")
    assert r.status_code == 200
    token = phone.cookies.get(COOKIE)
    assert token and "HttpOnly" in r.headers["set-cookie"]
    vid = _visitor_of(sf, r.json()["entry_id"])
    assert token == codes.visitor_token(codes.visitor_key(VISITOR_SECRET, ""), vid)
    share = phone.post(f"/entries/{r.json()['entry_id']}/share")
    again = phone.get(f"/r/{code}")
    assert "set-cookie" not in again.headers  # a valid token is kept
    assert _visitor_of(sf, again.json()["entry_id"]) == vid
    mine = phone.get("/me/earnings")
    assert mine.status_code == 200 and len(mine.json()["sharers"]) == 1
    for body in (r.text, share.text, again.text, mine.text):
        assert vid not in body and token not in body and "visitor" not in body


@pytest.mark.parametrize("chosen", ["chosen-by-the-client-0001", "s" * 22,
                                    "s" * 22 + ".AAAAAAAAAAAAAAAAAAAAAA", "x" * 5000])
def test_a_token_the_server_did_not_sign_gets_a_fresh_one(phone: TestClient, sf: SessionFactory, world: World,
                                                          clock: Clock, chosen: str) -> None:
    phone.cookies.set(COOKIE, chosen, domain="testserver.local")
    r = phone.get(f"/r/{code_at(world, window(clock.t, PERIOD))}")
    assert r.status_code == 200
    fresh = r.cookies.get(COOKIE)  # the answer sets a new cookie
    assert fresh and fresh != chosen
    vid = _visitor_of(sf, r.json()["entry_id"])
    assert vid not in chosen and fresh.startswith(vid + ".")


def test_a_visitor_id_alone_does_not_open_its_earnings(phone: TestClient, sf: SessionFactory, world: World,
                                                      clock: Clock) -> None:
    """Knowing a sharer's visitor id (say, from a leaked database row) is not enough: the cookie
    must carry the server's signature."""
    r = phone.get(f"/r/{code_at(world, window(clock.t, PERIOD))}")
    phone.post(f"/entries/{r.json()['entry_id']}/share")
    vid = _visitor_of(sf, r.json()["entry_id"])
    phone.cookies.clear()
    phone.cookies.set(COOKIE, vid, domain="testserver.local")
    assert phone.get("/me/earnings").json()["code"] == "no_visitor"


def test_every_process_with_the_secret_accepts_the_token(engine: Engine, clock: Clock, world: World,
                                                         sf: SessionFactory) -> None:
    code = code_at(world, window(clock.t, PERIOD))
    with _client(_app(engine, clock)) as first:
        first.get(f"/r/{code}")
        token = first.cookies.get(COOKIE)
    assert token
    for secret, kept in ((VISITOR_SECRET, True), ("another-cloud-s-secret", False)):
        with _client(_app(engine, clock, visitor_secret=secret)) as other:
            other.cookies.set(COOKIE, token, domain="testserver.local")
            r = other.get(f"/r/{code}")
            assert ("set-cookie" not in r.headers) == kept
            assert (_visitor_of(sf, r.json()["entry_id"]) == token.split(".")[0]) == kept


def test_no_secret_no_tokens(engine: Engine, clock: Clock, world: World) -> None:
    with _client(_app(engine, clock, visitor_secret="", admin_key="")) as c:
        r = c.get(f"/r/{code_at(world, window(clock.t, PERIOD))}")
    assert (r.status_code, r.json()["code"]) == (503, "visitor_secret_unset") and r.json()["message_zh"]


def test_share_codes_are_capped_per_visitor(phone: TestClient, world: World, clock: Clock) -> None:
    """One cookie made 97 share codes in 196 requests; now share_max_per_visitor per campaign."""
    code = code_at(world, window(clock.t, PERIOD))
    made = []
    for _ in range(SETTINGS.share_max_per_visitor + 3):
        entry = phone.get(f"/r/{code}").json()["entry_id"]
        r = phone.post(f"/entries/{entry}/share")
        made.append(r.status_code)
        if r.status_code == 201:  # asking again for the same entry returns its code, not a new one
            assert phone.post(f"/entries/{entry}/share").json() == r.json()
    assert made == [201] * SETTINGS.share_max_per_visitor + [409] * 3
    assert r.json()["code"] == "share_limit" and r.json()["message_zh"]


def test_share_codes_are_capped_per_address(engine: Engine, clock: Clock, world: World) -> None:
    """Dropping the cookie gives a new visitor each time; the address's bucket still stops it."""
    app = _app(engine, clock, rate_share_address_burst=4, rate_share_address_per_s=1 / 900)
    code = code_at(world, window(clock.t, PERIOD))
    with _client(app) as c, _client(app, "198.51.100.2") as elsewhere:
        made = []
        for _ in range(6):
            c.cookies.clear()
            made.append(c.post(f"/entries/{c.get(f'/r/{code}').json()['entry_id']}/share").status_code)
        assert made == [201] * 4 + [429] * 2
        entry = elsewhere.get(f"/r/{code}").json()["entry_id"]
        assert elsewhere.post(f"/entries/{entry}/share").status_code == 201
        clock.t += 900  # one code per 15 min comes back
        code = code_at(world, window(clock.t, PERIOD))
        c.cookies.clear()
        last = c.post(f"/entries/{c.get(f'/r/{code}').json()['entry_id']}/share")
        assert last.status_code == 201, last.text
