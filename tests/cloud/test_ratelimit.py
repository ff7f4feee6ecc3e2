"""Rate limits on the keyless endpoints: the database token bucket on a fake clock, then the API
(per client address, the campaign's budgets for clean and failing clients, 429 with a JSON error
and Retry-After), X-Forwarded-For from trusted proxies only.

Regressions of issue 12, finding C: the in-memory table let wrong guesses at made-up base codes
evict the real campaign's bucket (restoring its burst), and held memory for any typed string."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, event, func, select

from cloud.http.app import create_app
from cloud.http.ratelimit import forwarded_client
from cloud.services.ratelimits import Buckets, Limit, client_key
from cloud.store.engine import SessionFactory
from cloud.store.models import RateBucket
from protocol.rotation import window
from tests.cloud.conftest import SETTINGS, Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at

# --- the bucket -------------------------------------------------------------------------------


def test_burst_then_refill_at_rate(sf: SessionFactory) -> None:
    clock = Clock(100.0)
    b, lim = Buckets(sf, clock), Limit("t", rate=2.0, burst=5)
    assert [b.take(lim, "a") for _ in range(5)] == [0.0] * 5
    assert b.take(lim, "a") == pytest.approx(0.5)  # one token comes back in 1/rate s
    clock.t += 0.5
    assert b.take(lim, "a") == 0.0
    assert b.take(lim, "a") > 0
    clock.t += 100  # refill stops at burst
    assert [b.take(lim, "a") for _ in range(6)].count(0.0) == 5


def test_keys_are_independent_and_refusal_takes_nothing(sf: SessionFactory) -> None:
    clock = Clock(0.0)
    b, lim = Buckets(sf, clock), Limit("t", rate=1.0, burst=2)
    assert b.take(lim, "a") == b.take(lim, "a") == 0.0
    for _ in range(10):  # refused requests do not dig the hole deeper
        assert b.take(lim, "a") == pytest.approx(1.0)
    assert b.take(lim, "b") == 0.0
    assert b.take(Limit("u", rate=1.0, burst=2), "a") == 0.0  # another limit, same key
    b.give_back(lim, "a")
    assert b.take(lim, "a") == 0.0 and b.take(lim, "a") > 0
    assert b.level(lim, "never-seen") == 2


def test_clock_stepping_back_drains_nothing(sf: SessionFactory) -> None:
    clock = Clock(1000.0)
    b, lim = Buckets(sf, clock), Limit("t", rate=1.0, burst=3)
    b.take(lim, "a")
    clock.t -= 500
    assert b.take(lim, "a") == b.take(lim, "a") == 0.0 and b.take(lim, "a") > 0


def test_refilled_rows_are_swept(sf: SessionFactory) -> None:
    clock = Clock(0.0)
    b, lim = Buckets(sf, clock), Limit("t", rate=1.0, burst=10)
    for i in range(50):
        b.take(lim, f"k{i}")
    for _ in range(9):
        b.take(lim, "busy")
    assert b.rows() == 51
    clock.t += 1.5  # each k* has refilled (1 token in 1 s); "busy" needs 9 s
    assert b.sweep() == 50 and b.rows() == 1
    waits = [b.take(lim, "busy") for _ in range(3)]  # 1 + 1.5 tokens: its count was kept
    assert waits[:2] == [0.0, 0.0] and waits[2] == pytest.approx(0.5)


def test_burst_zero_is_off(sf: SessionFactory) -> None:
    b = Buckets(sf, Clock())
    assert all(b.take(Limit("t", 0.0, 0), "a") == 0.0 for _ in range(100)) and b.rows() == 0


def test_client_keys() -> None:
    assert client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert client_key("x" * 1000) == "x" * 45


# --- the API ----------------------------------------------------------------------------------

CLIENT_BURST = 10
FAIL_BURST = 4
CLEAN_BURST = 3
LIMITS = dict(rate_client_per_s=1.0, rate_client_burst=CLIENT_BURST,
              rate_campaign_fail_per_s=0.5, rate_campaign_fail_burst=FAIL_BURST,
              rate_campaign_clean_per_s=0.001, rate_campaign_clean_burst=CLEAN_BURST,
              rate_address_fail_per_s=1 / 3600, rate_address_fail_burst=2)


@pytest.fixture
def app_clock() -> Clock:
    return Clock()


def _client(app: object, address: str) -> TestClient:
    return TestClient(app, base_url="https://testserver", client=(address, 40000))  # type: ignore[arg-type]


@pytest.fixture
def limited(engine: Engine, app_clock: Clock) -> Iterator[tuple[TestClient, TestClient, object]]:
    """Two clients at different addresses on one app with small limits (and the app, for more)."""
    app = create_app(dataclasses.replace(SETTINGS, **LIMITS), engine=engine, clock_=app_clock)
    with _client(app, "198.51.100.1") as a, _client(app, "198.51.100.2") as b:
        yield a, b, app


def assert_limited(r: Response) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "rate_limited" and body["message"] and body["message_zh"]
    assert int(r.headers["Retry-After"]) >= 1


def test_per_client_limit(limited: tuple[TestClient, TestClient, object], sf: SessionFactory,
                          app_clock: Clock) -> None:
    a, b, _ = limited
    world = provision_world(sf)
    good = code_at(world, window(app_clock.t, PERIOD))
    for _ in range(CLIENT_BURST):  # right codes: only the client's bucket is charged
        assert a.get(f"/r/{good}").status_code == 200
    r = a.get(f"/r/{good}")
    assert_limited(r)
    assert r.headers["Retry-After"] == "1"  # 1 token/s
    entry = b.get(f"/r/{good}").json()["entry_id"]
    assert_limited(a.post(f"/entries/{entry}/share"))  # the other keyless endpoints share it
    assert b.post(f"/entries/{entry}/share").status_code == 201  # another address is not affected
    app_clock.t += 2
    assert a.get(f"/r/{good}").status_code == 200
    assert a.get(f"/r/{good}").status_code == 200
    assert_limited(a.get(f"/r/{good}"))


def wrong_code(world: World, w: int, skip: int = 0) -> str:
    """A well-formed display code for slot 0 that no window in w-1..w+1 shows."""
    live = {code_at(world, w + dw) for dw in (-1, 0, 1)}
    base, digits, slots = world.campaign["base_code"], world.campaign["digits"], world.campaign["slots"]
    wrong = [f"{base}-{v:0{digits}d}" for v in range(0, 10 ** digits, slots)]
    return [c for c in wrong if c not in live][skip]


def test_failing_clients_share_one_budget_and_clean_ones_stay_in(
        limited: tuple[TestClient, TestClient, object], sf: SessionFactory, app_clock: Clock) -> None:
    """A client with two wrong guesses draws on the campaign's fail budget; once it is spent, every
    code from such clients gets 429, right ones too (no oracle), while a clean client still gets in.
    On the old code one budget served everyone: 20 wrong guesses locked every shopper out."""
    a, b, app = limited
    world = provision_world(sf)
    other = provision_world(sf, base="5150", name="Shop B", gateway_id="00000000000000b2")
    w = window(app_clock.t, PERIOD)
    wrong, good = wrong_code(world, w), code_at(world, w)
    assert a.get(f"/r/{wrong}").status_code == 410  # clean budget; one typo is forgiven
    assert a.get(f"/r/{wrong_code(world, w, 1)}").status_code == 410  # now a is not clean
    for _ in range(FAIL_BURST):
        assert a.get(f"/r/{wrong}").status_code == 410
    r = a.get(f"/r/{good}")  # the fail budget is spent: even a right code is refused
    assert_limited(r)
    assert r.headers["Retry-After"] == "2"  # 0.5 token/s
    assert b.get(f"/r/{good}").status_code == 200  # b has no wrong guesses: it gets in
    with _client(app, "198.51.100.3") as c:
        assert c.get(f"/r/{good}").status_code == 200
    assert a.get(f"/r/{code_at(other, w)}").status_code == 200  # other campaigns are open
    app_clock.t += 2  # one token back in the fail budget: one more attempt
    assert a.get(f"/r/{good}").status_code == 200
    assert a.get(f"/r/{wrong}").status_code == 410  # the right code gave its token back
    assert_limited(a.get(f"/r/{wrong}"))


def test_clean_budget_caps_fresh_addresses(limited: tuple[TestClient, TestClient, object],
                                          sf: SessionFactory, app_clock: Clock) -> None:
    """Wrong guesses from fresh addresses draw on the clean budget, which has its own cap: with
    more addresses than it covers, the attacker's total still stops there."""
    _, _, app = limited
    world = provision_world(sf)
    w = window(app_clock.t, PERIOD)
    seen = []
    for i in range(CLEAN_BURST + 3):
        with _client(app, f"203.0.113.{i + 1}") as c:
            seen.append(c.get(f"/r/{wrong_code(world, w, i)}").status_code)
    assert seen == [410] * CLEAN_BURST + [429] * 3


def test_malformed_and_unknown_campaigns_use_no_campaign_bucket(
        limited: tuple[TestClient, TestClient, object], sf: SessionFactory, app_clock: Clock) -> None:
    a, b, _ = limited
    provision_world(sf)
    for i in range(CLIENT_BURST):
        c = a if i % 2 else b
        assert c.get("/r/4919-1234567" if i % 3 else f"/r/{1000 + i}-12").status_code in (400, 404)
    with sf() as s:
        keys = set(s.scalars(select(RateBucket.key)))
    assert keys == {"client:198.51.100.1", "client:198.51.100.2"}


def test_guessing_made_up_codes_cannot_reset_the_campaign(engine: Engine, sf: SessionFactory,
                                                          app_clock: Clock) -> None:
    """Finding C: 2,000 wrong guesses at made-up base codes made 2,000 buckets and evicted the real
    campaign's, restoring its burst. Buckets now exist only for rented campaigns (by id) and for
    client addresses, so the table holds a handful of rows and the campaign stays closed."""
    app = create_app(dataclasses.replace(SETTINGS, **{**LIMITS, "rate_client_burst": 5000}),
                     engine=engine, clock_=app_clock)
    world = provision_world(sf)
    w = window(app_clock.t, PERIOD)
    with _client(app, "198.51.100.9") as a:
        for i in range(2 + FAIL_BURST):
            assert a.get(f"/r/{wrong_code(world, w, i)}").status_code == 410
        assert_limited(a.get(f"/r/{code_at(world, w)}"))
        for i in range(2000):
            assert a.get(f"/r/{10_000 + i}-{i % 100:02d}").status_code == 404
        assert_limited(a.get(f"/r/{code_at(world, w)}"))
        assert_limited(a.get(f"/r/{wrong_code(world, w)}"))
    with sf() as s:
        assert s.scalar(select(func.count()).select_from(RateBucket)) == 4  # client, addr-fail, 2 budgets


def test_overlong_codes_are_refused_before_any_lookup(client: TestClient, engine: Engine,
                                                      world: World) -> None:
    """Finding C: 60,000-digit codes were looked up and became bucket keys (157 MB in 15 s). Now
    anything longer than the longest possible code (12 + 1 + 6 characters) is a 400 with no SQL
    but the client's own bucket."""
    statements: list[str] = []

    def seen(_c: object, _cur: object, statement: str, *_a: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for code in ("4919-" + "7" * 60_000, "9" * 60_000 + "-27", "4919-1234567", "1234567890123-12"):
            r = client.get(f"/r/{code}")
            assert (r.status_code, r.json()["code"]) == (400, "malformed_code")
            assert len(r.text) < 300
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert not any("campaigns" in s for s in statements), statements
    assert all("rate_buckets" in s for s in statements)


# --- X-Forwarded-For --------------------------------------------------------------------------


def test_forwarded_client() -> None:
    assert forwarded_client("127.0.0.1", "203.0.113.5", "") == "127.0.0.1"  # nobody trusted
    assert forwarded_client("198.51.100.1", "203.0.113.5", "10.0.0.1") == "198.51.100.1"  # not a proxy
    assert forwarded_client("10.0.0.1", "203.0.113.5", "10.0.0.1") == "203.0.113.5"
    # the client wrote the left part; the proxies appended the right part
    assert forwarded_client("10.0.0.1", "1.2.3.4, 203.0.113.5, 10.0.0.2", "10.0.0.0/24") == "203.0.113.5"
    assert forwarded_client("10.0.0.1", "", "10.0.0.1") == "10.0.0.1"


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_spoofed_forwarded_for_is_ignored_unless_trusted(engine: Engine, app_clock: Clock,
                                                         trusted: str) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, so a local client could pick a new
    address per request. By default the peer is the client; only a configured proxy is believed."""
    st = dataclasses.replace(SETTINGS, **LIMITS, trusted_proxies=trusted)
    app = create_app(st, engine=engine, clock_=app_clock)
    with _client(app, "127.0.0.1") as c:
        codes = [c.get("/r/1-1", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                 for i in range(CLIENT_BURST + 2)]
    assert codes == ([404] * (CLIENT_BURST + 2) if trusted else [404] * CLIENT_BURST + [429, 429])
