"""The payout ledger: double entry, in integer minor units.

Accounts (per tenant):
- campaign_budget:<campaign>  the merchant's reward money for a campaign; each order debits its pool
- sharer:<participant>        payable to a sharer (酬客)
- charity:<merchant>          payable to the charity, for rules whose remainder goes there
- merchant:<merchant>         the remainder handed back to the merchant (fixed-levels)

Every transaction's entries sum to zero, so all balances together sum to zero after every
operation. An order books one transaction; its refund books the exact negation. Credits are held
until `due_at_ms` (the campaign's hold period, so a refund inside it never claws back money already
paid); statements split each balance into held and due.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import not_found
from cloud.services import tlog
from cloud.services.auth import Principal, sees
from cloud.store.engine import SessionFactory, insert_ignore, now_ms
from cloud.store.models import Campaign, LedgerAccount, LedgerEntry, LedgerTxn, Order, Participant, Payout

BUDGET = "campaign_budget"
SHARER = "sharer"
CHARITY = "charity"
MERCHANT = "merchant"


class Unbalanced(RuntimeError):
    """A transaction whose entries do not sum to zero: a bug, never booked."""


@dataclass(frozen=True)
class Line:
    ref: str
    kind: str
    amount_minor: int
    due_at_ms: int
    campaign_id: int | None = None
    participant_id: int | None = None


def budget_line(c: Campaign, amount: int, due: int) -> Line:
    return Line(f"{BUDGET}:{c.id}", BUDGET, amount, due, campaign_id=c.id)


def sharer_line(c: Campaign, participant_id: int, amount: int, due: int) -> Line:
    return Line(f"{SHARER}:{participant_id}", SHARER, amount, due, participant_id=participant_id)


def remainder_line(c: Campaign, to: str, amount: int, due: int) -> Line:
    kind = CHARITY if to == CHARITY else MERCHANT
    return Line(f"{kind}:{c.merchant_id}", kind, amount, due)


def _account_ids(s: Session, merchant_id: int, lines: Sequence[Line]) -> dict[str, int]:
    refs = sorted({ln.ref for ln in lines})
    have = dict(s.execute(select(LedgerAccount.ref, LedgerAccount.id)
                          .where(LedgerAccount.ref.in_(refs))).all())
    missing = [ln for ln in {ln.ref: ln for ln in lines}.values() if ln.ref not in have]
    if missing:
        insert_ignore(s, LedgerAccount.__table__, [  # type: ignore[arg-type]
            {"ref": ln.ref, "kind": ln.kind, "merchant_id": merchant_id, "campaign_id": ln.campaign_id,
             "participant_id": ln.participant_id} for ln in missing], ["ref"])
        have = dict(s.execute(select(LedgerAccount.ref, LedgerAccount.id)
                              .where(LedgerAccount.ref.in_(refs))).all())
    return have


def post(s: Session, merchant_id: int, campaign_id: int, order_id: int | None, kind: str,
         lines: Sequence[Line]) -> int:
    """Book one balanced transaction; returns its id. Zero lines are left out."""
    if sum(ln.amount_minor for ln in lines) != 0:
        raise Unbalanced(f"{kind} of order {order_id}: entries sum to {sum(ln.amount_minor for ln in lines)}")
    txn = LedgerTxn(merchant_id=merchant_id, campaign_id=campaign_id, order_id=order_id, kind=kind,
                    created_at_ms=now_ms())
    s.add(txn)
    s.flush()
    ids = _account_ids(s, merchant_id, lines)
    s.add_all([LedgerEntry(txn_id=txn.id, account_id=ids[ln.ref], amount_minor=ln.amount_minor,
                           due_at_ms=ln.due_at_ms) for ln in lines if ln.amount_minor])
    tlog.add_posting(s, txn.id, kind, merchant_id, campaign_id, order_id,
                     [(ln.ref, ln.amount_minor, ln.due_at_ms) for ln in lines], txn.created_at_ms)
    return txn.id


def reverse(s: Session, order: Order, now: int) -> int:
    """Book the negation of the order's transaction, due at once (it cancels a held credit). After
    a fraud review's reject (cloud/services/fraud_review.py) it negates what is left: the net of both."""
    txn = s.scalar(select(LedgerTxn).where(LedgerTxn.order_id == order.id, LedgerTxn.kind == "order"))
    if txn is None:
        raise not_found("unknown_order", "the order has no ledger transaction", "该订单没有账目")
    rows = [(acc, int(net)) for acc, net in s.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_minor))
        .join(LedgerTxn, LedgerEntry.txn_id == LedgerTxn.id)
        .where(LedgerTxn.order_id == order.id, LedgerTxn.kind.in_(("order", "reject")))
        .group_by(LedgerEntry.account_id).order_by(LedgerEntry.account_id)) if net]
    if sum(a for _, a in rows) != 0:
        raise Unbalanced(f"order {order.id}'s transaction does not balance")
    rtxn = LedgerTxn(merchant_id=txn.merchant_id, campaign_id=txn.campaign_id, order_id=order.id,
                     kind="refund", created_at_ms=now)
    s.add(rtxn)
    s.flush()
    s.add_all([LedgerEntry(txn_id=rtxn.id, account_id=acc, amount_minor=-amount, due_at_ms=now)
               for acc, amount in rows])
    refs = dict(s.execute(select(LedgerAccount.id, LedgerAccount.ref)
                          .where(LedgerAccount.id.in_([a for a, _ in rows]))).all())
    tlog.add_posting(s, rtxn.id, "refund", txn.merchant_id, txn.campaign_id, order.id,
                     [(refs.get(acc, ""), -amount, now) for acc, amount in rows], now)
    return rtxn.id


def _entries(s: Session, where: Any, now: int) -> list[dict[str, Any]]:
    q = (select(LedgerEntry.amount_minor, LedgerEntry.due_at_ms, LedgerTxn.kind, LedgerTxn.order_id,
                LedgerTxn.created_at_ms, LedgerAccount.ref)
         .join(LedgerTxn, LedgerEntry.txn_id == LedgerTxn.id)
         .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id)
         .where(where).order_by(LedgerEntry.id))
    entries = [{"account": ref, "txn": kind, "order_id": oid, "booked_at_ms": at, "amount_minor": amount,
                "due_at_ms": due, "held": due > now} for amount, due, kind, oid, at, ref in s.execute(q)]
    return _with_proofs(s, entries)


def proof_path(payout_id: int) -> str:
    return f"/ledger/payouts/{payout_id}/proof"


def _with_proofs(s: Session, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sharer credit of an order names its payout and the payout's proof bundle (trust log)."""
    pairs = {(e["order_id"], int(e["account"].split(":")[1])) for e in entries
             if e["txn"] == "order" and e["account"].startswith(f"{SHARER}:")}
    found: dict[tuple[int, int], int] = {}
    oids = sorted({o for o, _ in pairs})
    for i in range(0, len(oids), 500):  # bound the IN list
        q = (select(Payout.order_id, Payout.participant_id, func.min(Payout.id))
             .where(Payout.order_id.in_(oids[i:i + 500]), Payout.participant_id.is_not(None))
             .group_by(Payout.order_id, Payout.participant_id))
        found.update({(oid, int(pid or 0)): payout_id for oid, pid, payout_id in s.execute(q)})
    for e in entries:
        sharer = e["account"].startswith(f"{SHARER}:") and e["txn"] == "order"
        pid = found.get((e["order_id"], int(e["account"].split(":")[1]))) if sharer else None
        e["payout_id"], e["proof"] = pid, (proof_path(pid) if pid is not None else None)
    return entries



def _totals(entries: list[dict[str, Any]]) -> dict[str, int]:
    held = sum(e["amount_minor"] for e in entries if e["held"])
    bal = sum(e["amount_minor"] for e in entries)
    return {"balance_minor": bal, "held_minor": held, "due_minor": bal - held}


def sharer_statement(sf: SessionFactory, p: Principal | None, participant_id: int, now: int,
                     visitor: str | None = None) -> dict[str, Any]:
    """A sharer's entries and totals. `p` (merchant side) must see the participant's tenant; the
    sharer themself passes their visitor token instead."""
    with sf() as s:
        row = s.execute(select(Participant, Campaign).join(Campaign, Participant.campaign_id == Campaign.id)
                        .where(Participant.id == participant_id)).first()
        if row is None or not ((p is not None and sees(p, row[1].merchant_id))
                               or (p is None and visitor is not None and row[0].visitor == visitor)):
            raise not_found("unknown_sharer", "no such sharer", "分享者不存在")
        part, c = row
        entries = _entries(s, LedgerAccount.ref == f"{SHARER}:{part.id}", now)
        return {"participant_id": part.id, "campaign_id": c.id,
                "share_code": f"{c.base_code}-{part.share_code}", "entries": entries, **_totals(entries)}


def campaign_statement(sf: SessionFactory, p: Principal, campaign_id: int, now: int) -> dict[str, Any]:
    """Every entry booked for a campaign's orders and each account's totals."""
    with sf() as s:
        c = s.get(Campaign, campaign_id)
        if c is None or not sees(p, c.merchant_id):
            raise not_found("unknown_campaign", "no such campaign", "活动不存在")
        entries = _entries(s, LedgerTxn.campaign_id == c.id, now)
    accounts: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        accounts.setdefault(e["account"], []).append(e)
    return {"campaign_id": campaign_id, "entries": entries,
            "accounts": {ref: _totals(es) for ref, es in sorted(accounts.items())}, **_totals(entries)}


def trial_balance(s: Session, merchant_id: int | None = None) -> dict[str, int]:
    """Balance per account (all tenants if merchant_id is None). They sum to zero."""
    q = (select(LedgerAccount.ref, func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
         .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id).group_by(LedgerAccount.ref))
    if merchant_id is not None:
        q = q.where(LedgerAccount.merchant_id == merchant_id)
    return {ref: int(total) for ref, total in s.execute(q)}


def balances(sf: SessionFactory, merchant_id: int) -> dict[str, Any]:
    """The tenant's trial balance: every account's balance, and their sum (zero)."""
    with sf() as s:
        b = trial_balance(s, merchant_id)
    return {"accounts": b, "sum_minor": sum(b.values())}


def unbalanced_txns(s: Session) -> list[int]:
    """Ids of transactions whose entries do not sum to zero (there must be none)."""
    q = (select(LedgerEntry.txn_id).group_by(LedgerEntry.txn_id)
         .having(func.sum(LedgerEntry.amount_minor) != 0))
    return [int(t) for t in s.scalars(q)]


CSV_FIELDS = ("account", "txn", "order_id", "booked_at_ms", "amount_minor", "due_at_ms", "held")


def to_csv(entries: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(entries)
    return out.getvalue()
