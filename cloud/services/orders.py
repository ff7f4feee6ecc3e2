"""Orders: a sale attributed to an entry, its pool split along the merged share chain by the
campaign's rule, booked in the ledger. Idempotent per (merchant, Idempotency-Key): a repeat returns
the first answer. A refund books the exact negation; refunding twice answers like the first time.

Concurrency: an order or refund first writes its campaign's row (spent_minor), which takes that
row's lock on PostgreSQL and the database's write lock on SQLite before anything is read. Orders of
one campaign are thus serialized, so the budget left that each one sees is exact and the campaign's
budget cap holds under concurrent orders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.services import campaign_versions, fraud, ledger, pools, tlog
from cloud.services.auth import MERCHANT, Principal, sees
from cloud.services.chain import entry_for, merged_chain
from cloud.services.rules import split
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Campaign, Entry, LedgerTxn, Order, Payout


def _request_hash(entry_id: str, amount_minor: int) -> str:
    return hashlib.sha256(f"{entry_id}\n{amount_minor}".encode()).hexdigest()


def _replay(s: Session, merchant_id: int, key: str, req_hash: str) -> dict[str, Any] | None:
    o = s.scalar(select(Order).where(Order.merchant_id == merchant_id, Order.idempotency_key == key))
    if o is None:
        return None
    if o.request_hash != req_hash:
        raise conflict("idempotency_conflict", "this Idempotency-Key was used for a different order",
                       "该 Idempotency-Key 已用于另一笔订单")
    answer: dict[str, Any] = json.loads(o.response_json)
    answer.setdefault("channel", o.channel)  # orders booked before channels were recorded
    return answer


# Called inside an order's transaction, under its campaign's lock, with the new order's id:
# raising refuses the order (nothing is stored). The till marks its checkout code used here.
AfterBook = Callable[[Session, int, int], None]  # (session, order id, booking time ms)


def _lock_campaign(s: Session, campaign_id: int) -> None:
    """The first statement of the transaction: a no-op write that serializes per campaign."""
    s.execute(update(Campaign).where(Campaign.id == campaign_id)
              .values(spent_minor=Campaign.spent_minor))


def place_order(sf: SessionFactory, merchant_id: int, idempotency_key: str, entry_id: str,
                amount_minor: int, at_ms: int | None = None, channel: str = "api",
                after_book: AfterBook | None = None) -> tuple[dict[str, Any], bool]:
    """(answer, replayed). The merchant must own the entry's campaign. `at_ms` is the booking time
    (the API's clock; now by default): payouts fall due at at_ms + the campaign's hold. `channel`
    says how the sale came (api, online, till); a replay answers before `after_book` is called."""
    if not 1 <= len(idempotency_key) <= 200:
        raise bad_request("bad_idempotency_key", "Idempotency-Key header of 1 to 200 characters is required",
                          "须提供 1 至 200 个字符的 Idempotency-Key 请求头")
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 1:
        raise bad_request("bad_amount", "amount_minor must be a positive integer (minor units)",
                          "amount_minor 须为正整数（最小货币单位）")
    req_hash = _request_hash(entry_id, amount_minor)
    with sf() as s:
        prior = _replay(s, merchant_id, idempotency_key, req_hash)
        if prior is not None:
            return prior, True
        campaign_id = entry_for(s, Principal(MERCHANT, merchant_id), entry_id)[1].id
    try:
        with sf.begin() as s:
            _lock_campaign(s, campaign_id)
            prior = _replay(s, merchant_id, idempotency_key, req_hash)
            if prior is not None:
                return prior, True
            t = now_ms() if at_ms is None else at_ms
            answer = _book(s, merchant_id, idempotency_key, req_hash, entry_id, amount_minor, t, channel)
            if after_book is not None:
                after_book(s, answer["order_id"], t)
            return answer, False
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        with sf() as s:
            prior = _replay(s, merchant_id, idempotency_key, req_hash)
        if prior is None:
            raise ApiError(500, "order_failed", "the order could not be stored", "订单未能保存") from None
        return prior, True


def check_open(c: Campaign, t: int) -> None:
    """An order books only while its campaign runs: 409 with the reason otherwise (a released
    code, or a time before starts_at_ms or after ends_at_ms). Checked under the campaign's lock,
    so a release that commits first is seen."""
    if c.released_at_ms is not None:
        raise conflict("campaign_released", "this campaign's base code was released: no more orders",
                       "该活动的基础码已释放，不再接受订单")
    if c.starts_at_ms is not None and t < c.starts_at_ms:
        raise conflict("campaign_not_started", "this campaign has not started yet", "该活动尚未开始")
    if c.ends_at_ms is not None and t > c.ends_at_ms:
        raise conflict("campaign_ended", "this campaign has ended", "该活动已结束")


def check_window(c: Campaign, e: Entry, t: int) -> None:
    """Last touch: a sale is attributed to the entry it names (the click token's or checkout
    code's entry) only within the campaign's attribution window after that entry was made."""
    if t - e.created_at_ms > c.attribution_window_s * 1000:
        days = c.attribution_window_s / 86400
        raise conflict("outside_window", f"this entry is older than the campaign's attribution window "
                       f"({days:g} days): the sale cannot be attributed to it",
                       f"该进店记录已超过活动的归因窗口（{days:g} 天），此笔销售不能归因于它")


def _book(s: Session, merchant_id: int, key: str, req_hash: str, entry_id: str,
          amount_minor: int, t: int, channel: str) -> dict[str, Any]:
    e = s.get(Entry, entry_id)
    assert e is not None
    c = s.get(Campaign, e.campaign_id)
    assert c is not None
    s.refresh(c)  # the locked row, not a copy read before the lock
    check_open(c, t)
    check_window(c, e, t)
    nodes = merged_chain(s, e, merchant_id)
    params = json.loads(c.rule_params_json or "{}")
    cap = None if c.budget_minor is None else max(0, c.budget_minor - c.spent_minor)
    pool = pools.pool_for(amount_minor, c.pool_minor, c.pool_bp, c.pool_cap_minor)
    parts = split(c.rule, pool, len(nodes), params, budget_cap_minor=cap)
    due = t + c.hold_s * 1000
    chain_json = [n.as_json(c.base_code) for n in nodes]
    o = Order(merchant_id=merchant_id, idempotency_key=key, request_hash=req_hash, campaign_id=c.id,
              entry_id=e.id, amount_minor=amount_minor, pool_minor=pool, rule=c.rule, channel=channel,
              rule_params_json=json.dumps(params, sort_keys=True),
              chain_json=json.dumps(chain_json, separators=(",", ":")), response_json="{}",
              status="placed", created_at_ms=t,
              campaign_version=campaign_versions.published_version(s, c.id))
    s.add(o)
    s.flush()
    payouts = []
    lines = [ledger.budget_line(c, -pool, t)]
    for level, (n, amount) in enumerate(zip(nodes, parts.payouts, strict=True), start=1):
        s.add(Payout(order_id=o.id, participant_id=n.participant_id, level=level, payee="participant",
                     amount_minor=amount))
        lines.append(ledger.sharer_line(c, n.participant_id, amount, due))
        payouts.append({"level": level, "participant_id": n.participant_id,
                        "share_code": f"{c.base_code}-{n.share_code}",
                        "merged_participants": n.merged, "amount_minor": amount})
    s.add(Payout(order_id=o.id, participant_id=None, level=0, payee=parts.remainder_to,
                 amount_minor=parts.remainder))
    lines.append(ledger.remainder_line(c, parts.remainder_to, parts.remainder, due))
    tlog.add_order(s, o, [(lv, n.participant_id, "participant", a) for lv, (n, a) in enumerate(
        zip(nodes, parts.payouts, strict=True), start=1)] + [(0, None, parts.remainder_to, parts.remainder)],
        params)
    ledger.post(s, merchant_id, c.id, o.id, "order", lines)
    fraud.flag_order(s, o, t)  # review flags hold its sharer credits (cloud/services/fraud.py)
    paid = sum(parts.payouts)
    c.spent_minor += paid
    answer = {"order_id": o.id, "entry_id": e.id, "campaign": c.id, "base_code": c.base_code,
              "amount_minor": amount_minor, "pool_minor": pool, "rule": c.rule, "rule_params": params,
              "budget_cap_minor": cap, "payouts": payouts, "paid_minor": paid,
              "remainder_minor": parts.remainder, "remainder_to": parts.remainder_to,
              # the remainder under its first name, for clients written against red-balloon only
              "charity_minor": parts.remainder if parts.remainder_to == "charity" else 0,
              "due_at_ms": due, "status": "placed", "channel": channel}
    o.response_json = json.dumps(answer, separators=(",", ":"))
    return answer


def refund(sf: SessionFactory, p: Principal, order_id: int,
           at_ms: int | None = None) -> tuple[dict[str, Any], bool]:
    """(answer, replayed): reverse every payout of the order in the ledger and give its share of
    the budget back. The order stays, marked refunded."""
    with sf() as s:
        o = s.get(Order, order_id)
        if o is None or not sees(p, o.merchant_id):
            raise not_found("unknown_order", "no such order", "订单不存在")
        campaign_id = o.campaign_id
    with sf.begin() as s:
        _lock_campaign(s, campaign_id)
        o = s.get(Order, order_id)
        assert o is not None
        s.refresh(o)
        if o.status == "refunded":
            answer: dict[str, Any] = json.loads(o.refund_json)
            return answer, True
        c = s.get(Campaign, campaign_id)
        assert c is not None
        s.refresh(c)
        t = now_ms() if at_ms is None else at_ms
        ledger.reverse(s, o, t)
        paid = sum(s.scalars(select(Payout.amount_minor).where(Payout.order_id == o.id,
                                                               Payout.payee == "participant")))
        if s.scalar(select(LedgerTxn.id).where(LedgerTxn.order_id == o.id, LedgerTxn.kind == "reject")):
            paid = 0  # a fraud review's reject gave the sharers' part back already
        c.spent_minor -= paid
        o.status, o.refunded_at_ms = "refunded", t
        answer = {"order_id": o.id, "status": "refunded", "refunded_at_ms": t, "reversed_paid_minor": paid,
                  "reversed_pool_minor": o.pool_minor}
        o.refund_json = json.dumps(answer, separators=(",", ":"))
        return answer, False


def get_order(sf: SessionFactory, p: Principal, order_id: int) -> dict[str, Any]:
    with sf() as s:
        o = s.get(Order, order_id)
        if o is None or not sees(p, o.merchant_id):
            raise not_found("unknown_order", "no such order", "订单不存在")
        answer: dict[str, Any] = json.loads(o.response_json)
        answer["status"] = o.status
        answer["channel"] = o.channel
        answer["refunded_at_ms"] = o.refunded_at_ms
        answer["chain"] = json.loads(o.chain_json)
        return answer
