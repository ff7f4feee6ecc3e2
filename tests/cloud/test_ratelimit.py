"""Rate limits on the keyless endpoints: the token bucket on a fake clock, then the API (per client
address, per campaign's failed guesses, 429 with a JSON error and Retry-After)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud.http.app import create_app
from cloud.http.ratelimit import TokenBuckets
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol.rotation import window
from tests.cloud.conftest import ADMIN_KEY, Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at

# --- the bucket -------------------------------------------------------------------------------


def test_burst_then_refill_at_rate() -> None:
    clock = Clock(100.0)
    b = TokenBuckets(rate=2.0, burst=5, max_keys=10, clock=clock)
    assert [b.take("a") for _ in range(5)] == [0.0] * 5
    assert b.take("a") == pytest.approx(0.5)  # one token comes back in 1/rate s
    clock.t += 0.5
    assert b.take("a") == 0.0
    assert b.take("a") > 0
    clock.t += 100  # refill stops at burst
    assert [b.take("a") for _ in range(6)].count(0.0) == 5


def test_keys_are_independent_and_refusal_takes_nothing() -> None:
    clock = Clock(0.0)
    b = TokenBuckets(rate=1.0, burst=2, max_keys=10, clock=clock)
    assert b.take("a") == b.take("a") == 0.0
    for _ in range(10):  # refused requests do not dig the hole deeper
        assert b.take("a") == pytest.approx(1.0)
    assert b.take("b") == 0.0
    b.give_back("a")
    assert b.take("a") == 0.0 and b.take("a") > 0


def test_clock_stepping_back_drains_nothing() -> None:
    clock = Clock(1000.0)
    b = TokenBuckets(rate=1.0, burst=3, max_keys=10, clock=clock)
    b.take("a")
    clock.t -= 500
    assert b.take("a") == b.take("a") == 0.0 and b.take("a") > 0


def test_memory_is_bounded_and_refilled_buckets_go_first() -> None:
    clock = Clock(0.0)
    b = TokenBuckets(rate=1.0, burst=10, max_keys=50, clock=clock)
    for i in range(1000):
        b.take(f"k{i}")
        assert len(b) <= 50
    # the most recent are kept, with their counts
    for _ in range(9):
        assert b.take("k999") == 0.0
    assert b.take("k999") > 0
    # once every bucket has refilled (burst/rate s idle), they are dropped: nothing is lost
    clock.t += 10
    b.take("fresh")
    assert len(b) == 1


def test_burst_zero_is_off() -> None:
    b = TokenBuckets(rate=0.0, burst=0, max_keys=1, clock=Clock())
    assert all(b.take("a") == 0.0 for _ in range(1000)) and len(b) == 0


# --- the API ----------------------------------------------------------------------------------

CLIENT_BURST = 6
CAMPAIGN_BURST = 4


@pytest.fixture
def app_clock() -> Clock:
    return Clock()


@pytest.fixture
def limited(engine: Engine, app_clock: Clock) -> Iterator[tuple[TestClient, TestClient]]:
    """Two clients at different addresses on one app with small limits."""
    st = dataclasses.replace(Settings(db_url="unused", admin_key=ADMIN_KEY),
                             rate_client_per_s=1.0, rate_client_burst=CLIENT_BURST,
                             rate_campaign_fail_per_s=0.5, rate_campaign_fail_burst=CAMPAIGN_BURST)
    app = create_app(st, engine=engine, clock_=app_clock)
    with TestClient(app, client=("198.51.100.1", 40000)) as a, \
            TestClient(app, client=("198.51.100.2", 40000)) as b:
        yield a, b


def assert_limited(r: object) -> None:
    from httpx import Response
    assert isinstance(r, Response)
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "rate_limited" and body["message"] and body["message_zh"]
    assert int(r.headers["Retry-After"]) >= 1


def test_per_client_limit(limited: tuple[TestClient, TestClient], sf: SessionFactory,
                          app_clock: Clock) -> None:
    a, b = limited
    world = provision_world(sf)
    w = window(app_clock.t, PERIOD)
    good = code_at(world, w)
    for _ in range(CLIENT_BURST):  # right codes: only the client's bucket is charged
        assert a.get(f"/r/{good}").status_code == 200
    r = a.get(f"/r/{good}")
    assert_limited(r)
    assert r.headers["Retry-After"] == "1"  # 1 token/s
    # the other keyless endpoint shares the client's bucket
    entry = b.get(f"/r/{good}").json()["entry_id"]
    assert_limited(a.post(f"/entries/{entry}/share"))
    # another address is not affected
    assert b.post(f"/entries/{entry}/share").status_code == 201
    # endpoints with an API key are not limited here
    assert a.get("/merchant/stats.json", headers={"Authorization": f"Bearer {world.merchant['api_key']}"}
                 ).status_code == 200
    app_clock.t += 2
    assert a.get(f"/r/{good}").status_code == 200
    assert a.get(f"/r/{good}").status_code == 200
    assert_limited(a.get(f"/r/{good}"))


def wrong_code(world: World, w: int) -> str:
    """A well-formed display code for slot 0 that no window in w-1..w+1 shows."""
    live = {code_at(world, w + dw) for dw in (-1, 0, 1)}
    base, digits, slots = world.campaign["base_code"], world.campaign["digits"], world.campaign["slots"]
    for v in range(0, 10 ** digits, slots):
        code = f"{base}-{v:0{digits}d}"
        if code not in live:
            return code
    raise AssertionError("no wrong code")


def test_per_campaign_limit_counts_wrong_guesses_from_every_client(
        limited: tuple[TestClient, TestClient], sf: SessionFactory, app_clock: Clock) -> None:
    a, b = limited
    world = provision_world(sf)
    other = provision_world(sf, base="5150", name="Shop B", gateway_id="00000000000000b2")
    w = window(app_clock.t, PERIOD)
    wrong, good = wrong_code(world, w), code_at(world, w)
    # wrong guesses split between two addresses, each under its own client limit
    for i in range(CAMPAIGN_BURST):
        r = (a if i % 2 else b).get(f"/r/{wrong}")
        assert r.status_code == 410, r.text
    for c in (a, b):  # the campaign is closed to everyone, even for a right code
        r = c.get(f"/r/{good}")
        assert_limited(r)
        assert r.headers["Retry-After"] == "2"  # 0.5 token/s
    # other campaigns are open
    assert b.get(f"/r/{code_at(other, w)}").status_code == 200
    app_clock.t += 2  # one token back: one more attempt
    assert a.get(f"/r/{good}").status_code == 200
    # a right code gave its token back, so a wrong one can still be tried, then not
    assert a.get(f"/r/{wrong}").status_code == 410
    assert_limited(b.get(f"/r/{wrong}"))


def test_right_codes_and_malformed_ones_do_not_use_the_campaign_allowance(
        limited: tuple[TestClient, TestClient], sf: SessionFactory, app_clock: Clock) -> None:
    a, b = limited
    world = provision_world(sf)
    good = code_at(world, window(app_clock.t, PERIOD))
    for i in range(6):  # 3 each: with the 3 below, each address stays within its CLIENT_BURST
        c = a if i % 2 else b
        assert c.get(f"/r/{good}" if i % 3 else "/r/4919-123").status_code in (200, 400)
    # 4 wrong guesses still fit in the campaign's burst
    for c in (a, b):
        assert c.get("/r/4919-39").status_code == 404  # slot 3 has no device
    assert a.get("/r/4919-39").status_code == 404
    assert b.get("/r/4919-39").status_code == 404
    assert_limited(a.get(f"/r/{good}"))
