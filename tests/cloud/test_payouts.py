"""Payouts and settlements (cloud/services/payouts.py) against a model of the money kept by the test
itself: hypothesis interleaves orders, refunds, fraud flags and rejects, settlements (with retries
of the same key) and the passing of time. After every operation the books balance, no transaction
is unbalanced, each sharer's earned, refunded, held and paid match the model (so paid + due + held
== earned - refunded), and a settlement pays each sharer exactly what was due, never more."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud.errors import ApiError
from cloud.services import campaigns, ledger, merchants, orders, payouts
from cloud.services.auth import MERCHANT, Principal
from cloud.store.engine import SessionFactory
from cloud.store.models import (
    FraudFlag,
    LedgerAccount,
    LedgerEntry,
    LedgerTxn,
    LogLeaf,
    Order,
    SettlementLine,
)
from protocol import leaves
from tests.cloud.conftest import T0, provision_world
from tests.cloud.test_ledger import chain_entry

HOLD_S = 600
AT = int(T0 * 1000)


@dataclass
class Model:
    """What the books should say, from the operations alone."""
    now: int = AT
    n: int = 0  # for fresh idempotency keys
    credits: dict[int, dict[int, int]] = field(default_factory=dict)  # order -> participant -> amount
    due_at: dict[int, int] = field(default_factory=dict)
    reversed: set[int] = field(default_factory=set)
    holding: set[int] = field(default_factory=set)  # orders with a fraud flag open or held (the table's)
    paid: dict[int, int] = field(default_factory=dict)
    settlements: int = 0

    def key(self, what: str) -> str:
        self.n += 1
        return f"{what}-{self.n}"

    def sharer(self, pid: int) -> dict[str, int]:
        earned = refunded = held = 0
        for oid, by in self.credits.items():
            amount = by.get(pid, 0)
            earned += amount
            if oid in self.reversed:
                refunded += amount
            elif self.due_at[oid] > self.now or oid in self.holding:
                held += amount
        paid = self.paid.get(pid, 0)
        return {"earned_minor": earned, "refunded_minor": refunded, "paid_minor": paid, "held_minor": held,
                "due_minor": earned - refunded - paid - held}

    def pids(self) -> set[int]:
        return {p for by in self.credits.values() for p in by}


@dataclass
class Shop:
    sf: SessionFactory
    mid: int
    entries: list[str]
    model: Model


@pytest.fixture
def shop(sf: SessionFactory) -> Shop:
    world = provision_world(sf)
    mid = world.merchant["merchant_id"]
    campaigns.update(sf, Principal(MERCHANT, mid), world.campaign["campaign_id"],
                     {"hold_s": HOLD_S, "pool_minor": 999})
    rng = random.Random(14)
    return Shop(sf, mid, [chain_entry(sf, world, d, rng) for d in (0, 1, 2, 3)], Model())


def _reject(sf: SessionFactory, order_id: int, now: int) -> None:
    """A fraud review's reject as the contract books it: the order's sharer lines reversed, their
    sum back to the campaign's budget (cloud/services/fraud.py does this for real)."""
    with sf.begin() as s:
        o = s.get(Order, order_id)
        assert o is not None
        txn = s.scalar(select(LedgerTxn.id).where(LedgerTxn.order_id == order_id, LedgerTxn.kind == "order"))
        rows = s.execute(select(LedgerAccount.ref, LedgerAccount.participant_id, LedgerEntry.amount_minor)
                         .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
                         .where(LedgerEntry.txn_id == txn, LedgerAccount.kind == ledger.SHARER)).all()
        lines = [ledger.Line(ref, ledger.SHARER, -amount, now, participant_id=pid)
                 for ref, pid, amount in rows]
        back = sum(amount for _, _, amount in rows)
        lines.append(ledger.Line(f"{ledger.BUDGET}:{o.campaign_id}", ledger.BUDGET, back, now,
                                 campaign_id=o.campaign_id))
        ledger.post(s, o.merchant_id, o.campaign_id, order_id, "reject", lines)


def _holding(shop: Shop) -> None:
    """Fraud flags are the model's input, whoever set them (the review rules flag some orders as
    they are placed): read them back from the table."""
    with shop.sf() as s:
        shop.model.holding = set(s.scalars(select(FraudFlag.order_id).where(
            FraudFlag.merchant_id == shop.mid, FraudFlag.status.in_(("open", "held")))))


def _check(shop: Shop) -> None:
    m = shop.model
    _holding(shop)
    with shop.sf() as s:
        assert ledger.unbalanced_txns(s) == []
        bal = ledger.trial_balance(s, shop.mid)
        assert sum(bal.values()) == 0
        assert bal.get(f"{payouts.PAID}:{shop.mid}", 0) == sum(m.paid.values())
        got = payouts.tallies(s, shop.mid, m.now)
    for pid in m.pids():
        want = m.sharer(pid)
        t = got[pid]
        assert t.totals() == want, (pid, t.totals(), want)
        assert t.paid + t.due + t.held == t.earned - t.refunded
        assert bal[f"{ledger.SHARER}:{pid}"] == t.earned - t.refunded - t.paid
    listed = payouts.due_list(shop.sf, shop.mid, m.now)
    assert {r["participant_id"] for r in listed["sharers"]} == {p for p in m.pids()
                                                                if m.sharer(p)["due_minor"] > 0}
    for tot in listed["totals"]:  # every total is the sum of its rows
        rows = [r for r in listed["sharers"] if r["currency"] == tot["currency"]]
        assert tot["due_minor"] == sum(r["due_minor"] for r in rows) and tot["sharers"] == len(rows)


def _order(shop: Shop, i: int, amount: int) -> None:
    m = shop.model
    ans, replayed = orders.place_order(shop.sf, shop.mid, m.key("o"), shop.entries[i % len(shop.entries)],
                                       amount, at_ms=m.now)
    assert not replayed
    by: dict[int, int] = {}
    for p in ans["payouts"]:
        by[p["participant_id"]] = by.get(p["participant_id"], 0) + p["amount_minor"]
    m.credits[ans["order_id"]] = by
    m.due_at[ans["order_id"]] = m.now + HOLD_S * 1000


def _settle(shop: Shop, pick: list[int] | None, retries: int) -> str:
    m = shop.model
    pids = sorted(m.pids())
    chosen = None if pick is None or not pids else sorted({pids[i % len(pids)] for i in pick})
    _holding(shop)
    due = {p: m.sharer(p)["due_minor"] for p in (pids if chosen is None else chosen)}
    key = m.key("s")
    try:
        ans, replayed = payouts.settle(shop.sf, shop.mid, key, chosen, m.now, "test")
    except ApiError as e:
        assert e.code == "nothing_due" and all(d <= 0 for d in due.values())
        return "nothing due"
    assert not replayed
    got = {ln["participant_id"]: ln["amount_minor"] for ln in ans["lines"]}
    assert got == {p: d for p, d in due.items() if d > 0}  # exactly what was due: never more
    assert ans["total_minor"] == sum(got.values())
    for p, amount in got.items():
        m.paid[p] = m.paid.get(p, 0) + amount
    m.settlements += 1
    for _ in range(retries):  # a retried POST or a double click: the first answer, nothing paid again
        again, replayed = payouts.settle(shop.sf, shop.mid, key, chosen, m.now + 1, "test")
        assert replayed and again == ans
    return "paid"


def _apply(shop: Shop, op: tuple[Any, ...]) -> None:
    m = shop.model
    placed = sorted(m.credits)
    kind = op[0]
    if kind == "order":
        _order(shop, op[1], op[2])
    elif kind == "time":
        m.now += op[1] * 1000
    elif kind == "settle":
        event(f"settle: {_settle(shop, op[1], op[2])}")  # --hypothesis-show-statistics
    elif kind == "review":
        with shop.sf.begin() as s:
            for oid in s.scalars(select(FraudFlag.order_id).where(FraudFlag.status.in_(("open", "held")))):
                _flag(shop, oid, "released")
    elif placed and kind in ("refund", "reject", "flag"):
        oid = placed[op[1] % len(placed)]
        if kind == "refund" and oid not in m.reversed:
            orders.refund(shop.sf, Principal(MERCHANT, shop.mid), oid, at_ms=m.now)
            m.reversed.add(oid)
        elif kind == "reject" and oid not in m.reversed:
            _reject(shop.sf, oid, m.now)
            m.reversed.add(oid)
        elif kind == "flag":
            _flag(shop, oid, op[2])


def _flag(shop: Shop, oid: int, status: str) -> None:
    """A review decision on every flag of the order (a flag is made first if it has none)."""
    with shop.sf.begin() as s:
        flags = list(s.scalars(select(FraudFlag).where(FraudFlag.order_id == oid)))
        if not flags:
            s.add(FraudFlag(merchant_id=shop.mid, order_id=oid, rule="velocity", detail_json="{}",
                            status=status, created_at_ms=shop.model.now))
        for f in flags:
            f.status = status


OPS = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 3), st.integers(1, 50_000)),
    st.tuples(st.just("time"), st.integers(0, 2 * HOLD_S)),
    st.tuples(st.just("time"), st.integers(0, 2 * HOLD_S)),  # twice: holds must pass for payouts
    st.tuples(st.just("review")),  # every open or held flag released
    st.tuples(st.just("settle"), st.none() | st.lists(st.integers(0, 20), min_size=1, max_size=3),
              st.integers(0, 2)),
    st.tuples(st.just("refund"), st.integers(0, 1000)),
    st.tuples(st.just("reject"), st.integers(0, 1000)),
    st.tuples(st.just("flag"), st.integers(0, 1000),
              st.sampled_from(["open", "held", "released", "rejected"])),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=8, max_size=40))
def test_settlements_keep_the_books_and_never_overpay(shop: Shop, ops: list[tuple[Any, ...]]) -> None:
    # the shop and its model persist across examples: each example continues the same history
    for op in ops:
        _apply(shop, op)
        _check(shop)
    with shop.sf() as s:  # every settlement is in the trust log, with its postings
        logged = s.scalar(select(func.count()).select_from(LogLeaf).where(LogLeaf.kind == leaves.SETTLEMENT))
        txns = list(s.scalars(select(SettlementLine.txn_id)))
        postings = s.scalar(select(func.count()).select_from(LogLeaf).where(
            LogLeaf.kind == leaves.POSTING, LogLeaf.ref.in_([f"posting:{t}" for t in txns])))
    assert logged == shop.model.settlements and postings == len(txns)


def test_flagged_orders_are_not_due_until_released(shop: Shop) -> None:
    m = shop.model
    _order(shop, 1, 10_000)
    _order(shop, 2, 10_000)
    flagged, other = sorted(m.credits)
    _flag(shop, other, "released")  # whatever the review rules flagged as the orders came in
    _flag(shop, flagged, "open")
    m.now += (HOLD_S + 1) * 1000  # past the hold: only the unflagged order's credits are due
    _check(shop)
    pid = next(iter(m.credits[flagged]))
    assert payouts.statement(shop.sf, shop.mid, pid, m.now)["orders"][0]["state"] == "flagged"
    _settle(shop, None, 1)
    _check(shop)
    _flag(shop, flagged, "released")
    _check(shop)
    assert m.sharer(pid)["due_minor"] > 0
    _settle(shop, None, 0)
    _check(shop)
    assert all(m.sharer(p)["due_minor"] == 0 for p in m.pids())


def test_concurrent_batches_pay_each_due_once(shop: Shop) -> None:
    m = shop.model
    for i in range(4):
        _order(shop, i, 20_000)
    m.now += (HOLD_S + 1) * 1000
    _holding(shop)
    due = sum(m.sharer(p)["due_minor"] for p in m.pids())
    answers: list[dict[str, Any]] = []
    refused: list[str] = []

    def pay(key: str) -> None:
        try:
            answers.append(payouts.settle(shop.sf, shop.mid, key, None, m.now, "owner")[0])
        except ApiError as e:
            refused.append(e.code)

    threads = [threading.Thread(target=pay, args=(f"click-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a["total_minor"] for a in answers) == due > 0  # one batch paid it; the rest found nothing
    assert len(answers) == 1 and refused == ["nothing_due"] * 3
    for ln in answers[0]["lines"]:
        m.paid[ln["participant_id"]] = m.paid.get(ln["participant_id"], 0) + ln["amount_minor"]
    _check(shop)


def test_statement_and_other_tenants(shop: Shop) -> None:
    m = shop.model
    _order(shop, 3, 8_000)
    _flag(shop, next(iter(m.credits)), "released")
    m.now += (HOLD_S + 1) * 1000
    pid = sorted(m.pids())[0]
    _settle(shop, None, 0)
    st_ = payouts.statement(shop.sf, shop.mid, pid, m.now)
    assert st_["paid_minor"] == sum(x["amount_minor"] for x in st_["settlements"]) > 0
    assert st_["earned_minor"] == sum(o["credited_minor"] for o in st_["orders"])
    assert all(o["proof"] == f"/ledger/payouts/{o['payout_id']}/proof" for o in st_["orders"])
    other = merchants.create_merchant(shop.sf, "Shop B")["merchant_id"]
    with pytest.raises(ApiError) as e:  # another merchant's sharer is unknown, like a missing one
        payouts.statement(shop.sf, other, pid, m.now)
    assert e.value.status == 404
    with pytest.raises(ApiError) as e:
        payouts.settlement(shop.sf, other, st_["settlements"][0]["settlement_id"])
    assert e.value.status == 404
