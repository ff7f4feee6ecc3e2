"""Orders: a sale attributed to an entry, its pool split along the share chain by the campaign's
rule. Idempotent per (merchant, Idempotency-Key): a repeat returns the first answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db import SessionFactory, now_ms
from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.models import Campaign, Entry, Order, Participant, Payout
from cloud.rules import split

MAX_CHAIN = 1000  # chains are acyclic by construction; this only bounds a corrupted one


def share_chain(s: Session, entry: Entry) -> list[Participant]:
    """The sharers who brought this entry, closest to the shopper first, up to the display
    (the display itself is not a participant)."""
    chain: list[Participant] = []
    seen: set[int] = set()
    pid = entry.parent_participant_id
    while pid is not None and pid not in seen and len(chain) < MAX_CHAIN:
        seen.add(pid)
        p = s.get(Participant, pid)
        if p is None:
            break
        chain.append(p)
        parent_entry = s.get(Entry, p.entry_id)
        pid = parent_entry.parent_participant_id if parent_entry is not None else None
    return chain


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
    return answer


def place_order(sf: SessionFactory, merchant_id: int, idempotency_key: str, entry_id: str,
                amount_minor: int) -> tuple[dict[str, Any], bool]:
    """(answer, replayed). The merchant must own the entry's campaign."""
    if not 1 <= len(idempotency_key) <= 200:
        raise bad_request("bad_idempotency_key", "Idempotency-Key header of 1 to 200 characters is required",
                          "须提供 1 至 200 个字符的 Idempotency-Key 请求头")
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 1:
        raise bad_request("bad_amount", "amount_minor must be a positive integer (minor units)",
                          "amount_minor 须为正整数（最小货币单位）")
    req_hash = _request_hash(entry_id, amount_minor)
    try:
        with sf.begin() as s:
            prior = _replay(s, merchant_id, idempotency_key, req_hash)
            if prior is not None:
                return prior, True
            e = s.get(Entry, entry_id)
            c = s.get(Campaign, e.campaign_id) if e is not None else None
            if e is None or c is None or c.merchant_id != merchant_id:
                raise not_found("unknown_entry", "no such entry in your campaigns",
                                "您的活动中没有该进店记录")
            chain = share_chain(s, e)
            parts = split(c.rule, c.pool_minor, len(chain))
            o = Order(merchant_id=merchant_id, idempotency_key=idempotency_key, request_hash=req_hash,
                      campaign_id=c.id, entry_id=e.id, amount_minor=amount_minor, pool_minor=c.pool_minor,
                      rule=c.rule, response_json="{}", created_at_ms=now_ms())
            s.add(o)
            s.flush()
            payouts = []
            for level, (p, amount) in enumerate(zip(chain, parts.payouts, strict=True), start=1):
                s.add(Payout(order_id=o.id, participant_id=p.id, level=level, amount_minor=amount))
                payouts.append({"level": level, "participant_id": p.id,
                                "share_code": f"{c.base_code}-{p.share_code}", "amount_minor": amount})
            s.add(Payout(order_id=o.id, participant_id=None, level=0, amount_minor=parts.charity))
            answer = {"order_id": o.id, "entry_id": e.id, "campaign": c.id, "base_code": c.base_code,
                      "amount_minor": amount_minor, "pool_minor": c.pool_minor, "rule": c.rule,
                      "payouts": payouts, "charity_minor": parts.charity}
            o.response_json = json.dumps(answer, separators=(",", ":"))
            return answer, False
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        with sf() as s:
            prior = _replay(s, merchant_id, idempotency_key, req_hash)
        if prior is None:
            raise ApiError(500, "order_failed", "the order could not be stored", "订单未能保存") from None
        return prior, True
