"""Share chains: rooted at a display, acyclic by construction, identities merged before the rule."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cloud.services import codes, orders
from cloud.services.chain import merged_chain, raw_chain
from cloud.store.engine import SessionFactory
from cloud.store.models import Entry, Participant
from protocol.rotation import window
from tests.cloud.conftest import T0, Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at

AT = int(T0 * 1000)  # orders booked at the entries' time: inside the attribution window
_BASES = itertools.count(7000)
SELF = "s" * 22  # one phone's visitor token
OTHER = "o" * 22


def _enter(sf: SessionFactory, code: str, visitor: str | None) -> dict[str, Any]:
    return codes.resolve(sf, code, visitor, T0)


def _share(sf: SessionFactory, entry: dict[str, Any]) -> str:
    return str(codes.share(sf, entry["entry_id"])["share_code"])


def test_chain_describes_display_location_sharers_and_shopper(client: TestClient, sf: SessionFactory,
                                                              world: World, clock: Clock) -> None:
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    loc = client.post("/locations", json={"name": "Entrance 入口", "address": "1 Main St"}, headers=h).json()
    dev = client.post("/devices", json={"campaign_id": world.campaign["campaign_id"], "label": "poster",
                                        "location_id": loc["location_id"], "board": "kiosk-esp32-ssd1306"},
                      headers=h).json()
    world.devices.append(dev)
    a = _enter(sf, code_at(world, window(clock.t, PERIOD), len(world.devices) - 1), "a" * 22)
    b = _enter(sf, _share(sf, a), "b" * 22)
    c = _enter(sf, _share(sf, b), "c" * 22)
    r = client.get(f"/entries/{c['entry_id']}/chain", headers=h).json()
    assert r["root"] == {"device_id": dev["device_id"], "label": "poster", "location": "Entrance 入口",
                         "location_id": loc["location_id"]}
    assert [s["share_code"] for s in r["sharers"]] == [_share(sf, a), _share(sf, b)]  # display side first
    assert r["shopper"] == {"entry_id": c["entry_id"], "depth": 2}
    assert [n["share_code"] for n in r["rule_nodes"]] == [_share(sf, b), _share(sf, a)]  # shopper side first


def test_self_referral_through_own_code_gains_nothing(sf: SessionFactory, world: World) -> None:
    """A shares, then enters again through A's own code on the same phone, shares that, and an
    honest shopper buys through the second code: A is one node, paid once, as if alone."""
    mid = world.merchant["merchant_id"]
    a1 = _enter(sf, code_at(world, window(T0, PERIOD)), SELF)
    a2 = _enter(sf, _share(sf, a1), SELF)
    shopper = _enter(sf, _share(sf, a2), OTHER)
    ans, _ = orders.place_order(sf, mid, "self-1", shopper["entry_id"], 100, at_ms=AT)
    assert [p["amount_minor"] for p in ans["payouts"]] == [500]  # not 500 + 250
    assert len(ans["payouts"][0]["merged_participants"]) == 2
    assert ans["charity_minor"] == 500
    # buying through one's own code pays oneself nothing
    me_again = _enter(sf, _share(sf, a1), SELF)
    ans, _ = orders.place_order(sf, mid, "self-2", me_again["entry_id"], 100, at_ms=AT)
    assert ans["payouts"] == [] and ans["charity_minor"] == 1000


def test_verified_account_merges_two_phones(client: TestClient, sf: SessionFactory, world: World) -> None:
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    mid = world.merchant["merchant_id"]
    a_phone1 = _enter(sf, code_at(world, window(T0, PERIOD)), "1" * 22)
    a_phone2 = _enter(sf, _share(sf, a_phone1), "2" * 22)
    shopper = _enter(sf, _share(sf, a_phone2), OTHER)
    before, _ = orders.place_order(sf, mid, "acc-1", shopper["entry_id"], 100, at_ms=AT)
    assert [p["amount_minor"] for p in before["payouts"]] == [500, 250]  # two strangers, as far as we know
    with sf() as s:
        pids = {e: s.scalar(select(Participant.id).where(Participant.entry_id == e))
                for e in (a_phone1["entry_id"], a_phone2["entry_id"])}
    for pid, ref in zip(pids.values(), ("+86 138 0000 0000", "+8613800000000"), strict=True):
        r = client.post(f"/sharers/{pid}/account", json={"account_ref": ref}, headers=h)
        assert r.status_code == 200, r.text
    assert len({client.post(f"/sharers/{pid}/account", json={"account_ref": "+86 138 0000 0000"},
                            headers=h).json()["account_id"] for pid in pids.values()}) == 1
    after, _ = orders.place_order(sf, mid, "acc-2", shopper["entry_id"], 100, at_ms=AT)
    assert [p["amount_minor"] for p in after["payouts"]] == [500]
    other = client.post(f"/sharers/{pids[a_phone1['entry_id']]}/account",
                        json={"account_ref": "someone else"}, headers=h)
    assert (other.status_code, other.json()["code"]) == (409, "account_already_linked")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3)), min_size=1, max_size=25))
def test_random_share_forests_are_rooted_and_acyclic(sf: SessionFactory, plan: list[tuple[int, int]]) -> None:
    """Each step enters through the display or through the share code of an earlier entry, as one
    of four phones. Every chain ends at the display, its length is the entry's depth, and the
    merged chain names each phone at most once and never the shopper's."""
    base = str(next(_BASES))  # hypothesis reuses the database: a fresh campaign per example
    world = provision_world(sf, base=base, name=f"forest {base}", gateway_id=f"{int(base):016x}")
    made: list[dict[str, Any]] = []
    for pick, phone in plan:
        visitor = str(phone) * 22
        if made and pick % 3:
            made.append(_enter(sf, _share(sf, made[pick % len(made)]), visitor))
        else:
            made.append(_enter(sf, code_at(world, window(T0, PERIOD)), visitor))
    with sf() as s:
        for e in made:
            entry = s.get(Entry, e["entry_id"])
            assert entry is not None
            chain = raw_chain(s, entry)
            assert len(chain) == entry.depth
            assert len({p.id for p in chain}) == len(chain)
            assert entry.root_device_id == world.devices[0]["device_id"]
            nodes = merged_chain(s, entry, world.merchant["merchant_id"])
            phones = [s.get(Participant, n.participant_id).visitor for n in nodes]  # type: ignore[union-attr]
            assert len(set(phones)) == len(phones) and entry.visitor not in phones
