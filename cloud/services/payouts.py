"""Payouts (issue 14 part 5): what each sharer earned, has held, is due and was paid, and batches
of due payouts marked paid (settlements).

Per sharer, from the ledger account sharer:<participant> (cloud/services/ledger.py):
  earned   = the order credits booked to it
  refunded = their reversals (a refund, or a fraud review's reject)
  paid     = the settlements booked from it
  held     = the net credit of each order still inside its hold, or with a fraud flag open or held
  due      = earned - refunded - paid - held
so paid + due + held == earned - refunded always. `due` is negative when an order is refunded after
its credit was paid (the sharer owes it back); only a positive due is ever paid.

A settlement books one ledger transaction of kind "settlement" per sharer paid (sharer -due,
paid:<merchant> +due), so the books still balance, and one `settlement` leaf in the trust log, in
the same database transaction. Its first statement writes the merchant's row, which serializes
settlements of one merchant (a row lock on PostgreSQL, the write lock on SQLite): two batches
never both pay one due. Idempotent per (merchant, Idempotency-Key): a retry answers the first batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cloud.errors import conflict, not_found
from cloud.services import ledger, tlog
from cloud.store.engine import SessionFactory
from cloud.store.models import (
    Campaign,
    FraudFlag,
    LedgerAccount,
    LedgerEntry,
    LedgerTxn,
    Merchant,
    Participant,
    Payout,
    Settlement,
    SettlementLine,
    User,
)

PAID = "paid"  # the merchant's paid-out account: paid:<merchant>
HOLDING = ("open", "held")  # fraud flag states that keep an order's credits from falling due
REVERSALS = ("refund", "reject")


@dataclass
class OrderCredit:
    """One order's credits on one sharer's account."""
    order_id: int
    credited: int = 0  # the order txn's lines
    reversed: int = 0  # refund and reject lines (negative)
    due_at_ms: int = 0
    flagged: bool = False

    @property
    def net(self) -> int:
        return self.credited + self.reversed

    def state(self, now: int) -> str:
        if self.net <= 0:
            return "reversed"
        if self.flagged:
            return "flagged"
        return "held" if self.due_at_ms > now else "cleared"


@dataclass
class Tally:
    participant_id: int
    earned: int = 0
    refunded: int = 0
    paid: int = 0
    held: int = 0
    orders: dict[int, OrderCredit] = field(default_factory=dict)

    @property
    def due(self) -> int:
        return self.earned - self.refunded - self.paid - self.held

    def totals(self) -> dict[str, int]:
        return {"earned_minor": self.earned, "refunded_minor": self.refunded, "paid_minor": self.paid,
                "held_minor": self.held, "due_minor": self.due}


def _flagged(s: Session, merchant_id: int) -> set[int]:
    return set(s.scalars(select(FraudFlag.order_id).where(FraudFlag.merchant_id == merchant_id,
                                                          FraudFlag.status.in_(HOLDING)).distinct()))


def tallies(s: Session, merchant_id: int, now: int, only: Iterable[int] | None = None) -> dict[int, Tally]:
    """Each sharer's money at `now` (all the merchant's sharers with a ledger line, or `only`)."""
    q = (select(LedgerAccount.participant_id, LedgerTxn.kind, LedgerTxn.order_id,
                func.sum(LedgerEntry.amount_minor), func.max(LedgerEntry.due_at_ms))
         .join(LedgerTxn, LedgerEntry.txn_id == LedgerTxn.id)
         .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id)
         .where(LedgerAccount.merchant_id == merchant_id, LedgerAccount.kind == ledger.SHARER)
         .group_by(LedgerAccount.participant_id, LedgerTxn.kind, LedgerTxn.order_id))
    if only is not None:
        q = q.where(LedgerAccount.participant_id.in_(sorted(set(only))))
    flagged = _flagged(s, merchant_id)
    out: dict[int, Tally] = {}
    for pid, kind, oid, amount, due_at in s.execute(q):
        t = out.setdefault(int(pid or 0), Tally(int(pid or 0)))  # sharer accounts name one
        amount = int(amount)
        if kind == "settlement":
            t.paid -= amount
            continue
        assert oid is not None  # only settlements have no order
        oc = t.orders.setdefault(oid, OrderCredit(oid, flagged=oid in flagged))
        if kind == "order":
            oc.credited += amount
            oc.due_at_ms = int(due_at)
            t.earned += amount
        else:  # refund, reject
            oc.reversed += amount
            t.refunded -= amount
    for t in out.values():
        t.held = sum(oc.net for oc in t.orders.values() if oc.state(now) in ("held", "flagged"))
    return out


def _sharers(s: Session, pids: Iterable[int]) -> dict[int, dict[str, Any]]:
    q = (select(Participant.id, Participant.share_code, Campaign.id, Campaign.base_code, Campaign.label_en,
                Campaign.currency)
         .join(Campaign, Participant.campaign_id == Campaign.id).where(Participant.id.in_(sorted(set(pids)))))
    return {pid: {"participant_id": pid, "share_code": f"{base}-{code}", "campaign_id": cid,
                  "campaign": name, "currency": cur} for pid, code, cid, base, name, cur in s.execute(q)}


def _currency_totals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = by.setdefault(r["currency"], {"currency": r["currency"], "sharers": 0, "earned_minor": 0,
                                          "refunded_minor": 0, "paid_minor": 0, "held_minor": 0,
                                          "due_minor": 0})
        t["sharers"] += 1
        for k in ("earned_minor", "refunded_minor", "paid_minor", "held_minor", "due_minor"):
            t[k] += r[k]
    return [by[c] for c in sorted(by)]


def due_list(sf: SessionFactory, merchant_id: int, now: int) -> dict[str, Any]:
    """Sharers with a positive due (largest first), totals per currency that are the sums of those
    rows, and what is still held across all sharers (not payable yet, not in the rows)."""
    with sf() as s:
        ts = tallies(s, merchant_id, now)
        info = _sharers(s, ts)
    rows = [{**info[pid], **t.totals()} for pid, t in ts.items() if t.due > 0]
    rows.sort(key=lambda r: (-r["due_minor"], r["participant_id"]))
    held = _currency_totals([{**info[pid], **t.totals()} for pid, t in ts.items() if t.held])
    return {"at_ms": now, "sharers": rows, "totals": _currency_totals(rows),
            "held": [{"currency": h["currency"], "sharers": h["sharers"], "held_minor": h["held_minor"]}
                     for h in held]}


def _all_mine(s: Session, merchant_id: int, pids: Sequence[int]) -> bool:
    """Every named sharer is the merchant's (another tenant's sharer is unknown, like a missing one)."""
    found = s.scalar(select(func.count(Participant.id)).join(Campaign, Participant.campaign_id == Campaign.id)
                     .where(Campaign.merchant_id == merchant_id, Participant.id.in_(sorted(set(pids)))))
    return found == len(set(pids))


def _request_hash(pids: Sequence[int] | None) -> str:
    what = "all" if pids is None else ",".join(str(p) for p in sorted(set(pids)))
    return hashlib.sha256(what.encode()).hexdigest()


def _answer(s: Session, st: Settlement) -> dict[str, Any]:
    lines = s.execute(select(SettlementLine).where(SettlementLine.settlement_id == st.id)
                      .order_by(SettlementLine.id)).scalars().all()
    info = _sharers(s, [ln.participant_id for ln in lines])
    return {"settlement_id": st.id, "paid_at_ms": st.created_at_ms, "created_by": st.created_by,
            "total_minor": st.total_minor,
            "lines": [{**info[ln.participant_id], "amount_minor": ln.amount_minor, "currency": ln.currency,
                       "txn_id": ln.txn_id} for ln in lines]}


def _book_line(s: Session, merchant_id: int, sharer: dict[str, Any], amount: int, now: int) -> int:
    pid = sharer["participant_id"]
    return ledger.post(s, merchant_id, sharer["campaign_id"], None, "settlement", [
        ledger.Line(f"{ledger.SHARER}:{pid}", ledger.SHARER, -amount, now, participant_id=pid),
        ledger.Line(f"{PAID}:{merchant_id}", PAID, amount, now)])


def settle(sf: SessionFactory, merchant_id: int, idempotency_key: str, participant_ids: Sequence[int] | None,
           now: int, by: str) -> tuple[dict[str, Any], bool]:
    """(answer, replayed): pay what is due now to the named sharers (None: every sharer with a due).
    Sharers named with nothing due are left out; nothing due at all is a 409 nothing_due; a sharer
    not of this merchant is a 404."""
    req = _request_hash(participant_ids)
    with sf.begin() as s:
        s.execute(update(Merchant).where(Merchant.id == merchant_id).values(name=Merchant.name))
        old = s.scalar(select(Settlement).where(Settlement.merchant_id == merchant_id,
                                                Settlement.idempotency_key == idempotency_key))
        if old is not None:
            if old.request_hash != req:
                raise conflict("idempotency_conflict", "this Idempotency-Key was used for other sharers",
                               "该 Idempotency-Key 已用于另一批分享者")
            return _answer(s, old), True
        if participant_ids is not None and not _all_mine(s, merchant_id, participant_ids):
            raise not_found("unknown_sharer", "no such sharer", "分享者不存在")
        ts = tallies(s, merchant_id, now, participant_ids)
        pay = {pid: t.due for pid, t in ts.items() if t.due > 0}
        if not pay:
            raise conflict("nothing_due", "none of these sharers has anything due now",
                           "这些分享者目前没有应付款项")
        info = _sharers(s, pay)
        st = Settlement(merchant_id=merchant_id, idempotency_key=idempotency_key, request_hash=req,
                        total_minor=sum(pay.values()), created_by=by[:100], created_at_ms=now)
        s.add(st)
        s.flush()
        paid = []
        for pid in sorted(pay):
            txn = _book_line(s, merchant_id, info[pid], pay[pid], now)
            s.add(SettlementLine(settlement_id=st.id, participant_id=pid, txn_id=txn, amount_minor=pay[pid],
                                 currency=info[pid]["currency"]))
            paid.append((pid, pay[pid], txn))
        tlog.add_settlement(s, st.id, merchant_id, paid, now)
        s.flush()
        return _answer(s, st), False


def who(sf: SessionFactory, user_id: int | None, shared_link_id: int | None) -> str:
    """Who marked a batch paid, as recorded: the person's login, else the merchant key's sign-in."""
    if user_id is not None:
        with sf() as s:
            login = s.scalar(select(User.login).where(User.id == user_id))
        return login or f"user {user_id}"
    return "merchant key" if shared_link_id is None else f"shared link {shared_link_id}"


def settlements(sf: SessionFactory, merchant_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The merchant's settlements, newest first, with their totals per currency."""
    with sf() as s:
        rows = s.execute(select(Settlement.id, Settlement.created_at_ms, Settlement.created_by,
                                SettlementLine.currency, func.count(SettlementLine.id),
                                func.sum(SettlementLine.amount_minor))
                         .join(SettlementLine, SettlementLine.settlement_id == Settlement.id)
                         .where(Settlement.merchant_id == merchant_id)
                         .group_by(Settlement.id, Settlement.created_at_ms, Settlement.created_by,
                                   SettlementLine.currency)
                         .order_by(Settlement.id.desc()).limit(limit)).all()
    return [{"settlement_id": sid, "paid_at_ms": at, "created_by": by, "currency": cur, "sharers": n,
             "total_minor": int(total)} for sid, at, by, cur, n, total in rows]


def settlement(sf: SessionFactory, merchant_id: int, settlement_id: int) -> dict[str, Any]:
    with sf() as s:
        st = s.get(Settlement, settlement_id)
        if st is None or st.merchant_id != merchant_id:
            raise not_found("unknown_settlement", "no such settlement", "该结算不存在")
        return _answer(s, st)


def _payout_ids(s: Session, pid: int, order_ids: Sequence[int]) -> dict[int, int]:
    if not order_ids:
        return {}
    q = (select(Payout.order_id, func.min(Payout.id)).where(Payout.participant_id == pid,
                                                            Payout.order_id.in_(order_ids))
         .group_by(Payout.order_id))
    return {int(o): int(i) for o, i in s.execute(q)}


def statement(sf: SessionFactory, merchant_id: int, participant_id: int, now: int) -> dict[str, Any]:
    """One sharer: totals, each order's credit (earned, reversed, its state and its payout's proof)
    and each settlement that paid them. Another tenant's sharer is unknown."""
    with sf() as s:
        info = _sharers(s, [participant_id]).get(participant_id)
        if info is None or s.scalar(select(Campaign.merchant_id)
                                    .where(Campaign.id == info["campaign_id"])) != merchant_id:
            raise not_found("unknown_sharer", "no such sharer", "分享者不存在")
        t = tallies(s, merchant_id, now, [participant_id]).get(participant_id, Tally(participant_id))
        proofs = _payout_ids(s, participant_id, sorted(t.orders))
        paid = s.execute(select(Settlement.id, Settlement.created_at_ms, SettlementLine.amount_minor,
                                SettlementLine.txn_id)
                         .join(SettlementLine, SettlementLine.settlement_id == Settlement.id)
                         .where(SettlementLine.participant_id == participant_id)
                         .order_by(Settlement.id)).all()
    orders = [{"order_id": oc.order_id, "credited_minor": oc.credited, "reversed_minor": -oc.reversed,
               "net_minor": oc.net, "due_at_ms": oc.due_at_ms, "state": oc.state(now),
               "payout_id": proofs.get(oc.order_id),
               "proof": ledger.proof_path(proofs[oc.order_id]) if oc.order_id in proofs else None}
              for oc in sorted(t.orders.values(), key=lambda o: o.order_id)]
    return {**info, **t.totals(), "at_ms": now, "orders": orders,
            "settlements": [{"settlement_id": sid, "paid_at_ms": at, "amount_minor": amount, "txn_id": txn}
                            for sid, at, amount, txn in paid]}

