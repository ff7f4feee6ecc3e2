"""Fraud review (issue 14 part 6): the merchant's list of flagged orders, each chain drawn link by
link, and the decision on a flagged order's sharer payouts.

Decisions act on the order (every flag of it takes the new status), recorded with who and when:
- hold: open -> held. While any flag of an order is open or held, its sharer credits are not due
  (the payouts service leaves out orders with such flags, whatever their due_at_ms).
- release: open or held -> released. The credits fall due as if never flagged.
- reject: open or held -> rejected. Books a ledger transaction of kind "reject" that reverses the
  order's sharer lines: each sharer credit is debited back, the campaign budget credited with
  their sum, and the campaign's spent_minor goes down by it, the way a refund gives a budget back.
  The remainder (charity or merchant) stays; a later refund of the order reverses only what is
  left (cloud/services/ledger.reverse nets the order's postings). A refunded order has nothing
  left to reverse: rejecting it records the decision and books nothing.
Released and rejected are final; repeating the decision an order already has answers the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.errors import bad_request, conflict, not_found
from cloud.services import fraud, ledger
from cloud.services.auth import Principal, sees
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, FraudFlag, LedgerTxn, Order, Payout, User

OPEN, HELD, RELEASED, REJECTED = "open", "held", "released", "rejected"
STATUSES = (OPEN, HELD, RELEASED, REJECTED)
ACTIONS = {"hold": HELD, "release": RELEASED, "reject": REJECTED}
MOVES = {OPEN: {HELD, RELEASED, REJECTED}, HELD: {RELEASED, REJECTED}, RELEASED: set(), REJECTED: set()}
MAX_LIST = 200
MAX_WHO = 100


def client_tag(visitor: str) -> str:
    """A phone as the review shows it: 8 hex digits of its visitor id's SHA-256 (the id itself
    goes with the shopper's cookie and is not shown)."""
    return hashlib.sha256(visitor.encode()).hexdigest()[:8]


def _chain(s: Session, o: Order, base_code: str) -> list[dict[str, Any]]:
    """Who, when, fresh or not: the display first, then each sharer, then the buyer."""
    links = fraud.links_of(s, o)
    drawn = []
    for ln in reversed(links):
        e, p = ln.entry, ln.participant
        drawn.append({"level": ln.level, "role": "buyer" if p is None else "sharer", "via": e.via,
                      "code": f"{base_code}-{p.share_code}" if p is not None else e.code,
                      "client": client_tag(e.visitor), "person_id": ln.person_id,
                      "account_id": p.account_id if p is not None else None, "arrived_at_ms": e.created_at_ms,
                      "acted_after_ms": ln.acted_ms, "fresh": ln.fresh, "code_entries": ln.code_entries})
    return drawn


def _order_view(s: Session, o: Order, flags: list[FraudFlag]) -> dict[str, Any]:
    c = s.get(Campaign, o.campaign_id)
    assert c is not None
    paid = sum(s.scalars(select(Payout.amount_minor).where(Payout.order_id == o.id,
                                                           Payout.payee == "participant")))
    f0 = flags[0]
    return {"order_id": o.id, "campaign_id": c.id, "base_code": c.base_code, "currency": c.currency,
            "amount_minor": o.amount_minor, "pool_minor": o.pool_minor, "paid_minor": paid, "rule": o.rule,
            "order_status": o.status, "placed_at_ms": o.created_at_ms, "status": _status(flags),
            "decided_at_ms": f0.decided_at_ms, "decided_by": f0.decided_by,
            "flags": [{"flag_id": f.id, "rule": f.rule, "status": f.status, "created_at_ms": f.created_at_ms,
                       "detail": json.loads(f.detail_json or "{}")} for f in flags],
            "chain": _chain(s, o, c.base_code)}


def _status(flags: list[FraudFlag]) -> str:
    """An order's review status: the least settled of its flags' (open before held before ...)."""
    return min((f.status for f in flags), key=lambda st: STATUSES.index(st) if st in STATUSES else 0)


def list_flagged(sf: SessionFactory, merchant_id: int, status: str | None = None,
                 limit: int = MAX_LIST) -> dict[str, Any]:
    """The merchant's flagged orders, newest first, with each order's flags and chain; `status`
    keeps only orders in that review status. Counts per status cover every flagged order."""
    if status is not None and status not in STATUSES:
        raise bad_request("bad_status", f"status must be one of {', '.join(STATUSES)}",
                          f"status 须为 {', '.join(STATUSES)} 之一")
    limit = max(1, min(limit, MAX_LIST))
    with sf() as s:
        rows = list(s.scalars(select(FraudFlag).where(FraudFlag.merchant_id == merchant_id)
                              .order_by(FraudFlag.order_id.desc(), FraudFlag.rule)))
        by_order: dict[int, list[FraudFlag]] = {}
        for f in rows:
            by_order.setdefault(f.order_id, []).append(f)
        counts = dict.fromkeys(STATUSES, 0)
        for flags in by_order.values():
            counts[_status(flags)] += 1
        chosen = [oid for oid, flags in by_order.items()
                  if status is None or _status(flags) == status][:limit]
        orders = []
        for oid in chosen:
            o = s.get(Order, oid)
            assert o is not None
            orders.append(_order_view(s, o, by_order[oid]))
    return {"orders": orders, "counts": counts, "rules": list(fraud.RULES)}


def decider(sf: SessionFactory, user_id: int | None, key_id: int | None) -> str:
    """Who decided, as recorded: a person's login, else the merchant key's id."""
    if user_id is not None:
        with sf() as s:
            login = s.scalar(select(User.login).where(User.id == user_id))
        return f"{login}" if login else f"user {user_id}"
    return f"merchant key {key_id}" if key_id else "merchant key"


def _reject_lines(s: Session, o: Order, c: Campaign, now: int) -> tuple[list[ledger.Line], int]:
    """The reversal of the order's sharer credits: each back out of its sharer, all into the budget."""
    rows = s.execute(select(Payout.participant_id, Payout.amount_minor).where(
        Payout.order_id == o.id, Payout.payee == "participant")).all()
    lines = [ledger.sharer_line(c, int(pid), -int(amount), now) for pid, amount in rows
             if amount and pid is not None]
    paid = sum(int(a) for _, a in rows)
    return [*lines, ledger.budget_line(c, paid, now)], paid


def decide(sf: SessionFactory, p: Principal, order_id: int, action: str, who: str,
           now: int) -> dict[str, Any]:
    """hold, release or reject a flagged order's sharer payouts (see the module's docstring), as
    `p` (its tenant's merchant, or admin)."""
    with sf() as s:  # the tenant first: another's order is unknown, whatever the action
        o = s.get(Order, order_id)
        if o is None or not sees(p, o.merchant_id):
            raise not_found("unknown_order", "no such order", "订单不存在")
        campaign_id = o.campaign_id
    if action not in ACTIONS:
        raise bad_request("bad_action", "action must be hold, release or reject",
                          "action 须为 hold、release 或 reject")
    to, who = ACTIONS[action], (who or "?")[:MAX_WHO]
    with sf.begin() as s:
        # the campaign's row first, as orders and refunds do: one writer per campaign at a time
        s.execute(update(Campaign).where(Campaign.id == campaign_id).values(spent_minor=Campaign.spent_minor))
        flags = list(s.scalars(select(FraudFlag).where(FraudFlag.order_id == order_id)))
        if not flags:
            raise not_found("not_flagged", "this order has no fraud flag", "该订单没有风险标记")
        now_status = _status(flags)
        if now_status == to and all(f.status == to for f in flags):
            return _answer(s, order_id, flags, replayed=True)
        if to not in MOVES.get(now_status, set()):
            raise conflict("review_decided", f"this order's review is {now_status}: it cannot become {to}",
                           f"该订单的审核状态为 {now_status}，不能改为 {to}")
        if to == REJECTED:
            _reject(s, order_id, campaign_id, now)
        for f in flags:
            f.status, f.decided_at_ms, f.decided_by = to, now, who
        return _answer(s, order_id, flags, replayed=False)


def _reject(s: Session, order_id: int, campaign_id: int, now: int) -> None:
    o, c = s.get(Order, order_id), s.get(Campaign, campaign_id)
    assert o is not None and c is not None
    s.refresh(o)
    s.refresh(c)
    booked = s.scalar(select(LedgerTxn.id).where(LedgerTxn.order_id == o.id, LedgerTxn.kind == "reject"))
    if o.status == "refunded" or booked is not None:
        return
    lines, paid = _reject_lines(s, o, c, now)
    ledger.post(s, o.merchant_id, c.id, o.id, "reject", lines)
    c.spent_minor -= paid


def _answer(s: Session, order_id: int, flags: list[FraudFlag], replayed: bool) -> dict[str, Any]:
    txn = s.scalar(select(LedgerTxn.id).where(LedgerTxn.order_id == order_id, LedgerTxn.kind == "reject"))
    return {"order_id": order_id, "status": _status(flags), "decided_at_ms": flags[0].decided_at_ms,
            "decided_by": flags[0].decided_by, "reject_txn_id": txn, "replayed": replayed}
