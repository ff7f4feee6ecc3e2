"""Fraud flags (issue 14 part 6): rules that mark an order for review when its chain or its
clients look like an attack on the reward rule. docs/fraud.md has each rule, its numbers and what
it costs honest sharers (measured by sim/fraud_traffic.py).

A flag is one row per (order, rule) in fraud_flags, raised when the order is booked (flag_order,
inside the order's transaction) or by scan() over orders already booked; both insert with ON
CONFLICT DO NOTHING, so raising twice is a no-op. Every rule reads only what was stored up to the
order's time, so a scan long after gives the flags the order got when it was placed.

What the rules see. A client is a phone's visitor id (the signed cookie's) or, when phones were
linked with a recovery code, the person (person_phones): every visitor of that person. Client IP
addresses are NOT stored with entries or shares (only the rate limiter's buckets see them, keyed
by address and forgotten), so no rule uses addresses. Times are the entries' (the API clock): a
share's own created_at_ms is the wall clock, so a share is timed by the arrival it was made from,
and a link "acted" when the next link arrived through its code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloud.services import rules
from cloud.services.chain import raw_chain
from cloud.store.engine import SessionFactory, insert_ignore
from cloud.store.models import Campaign, Entry, FraudFlag, Order, Participant, PersonPhone

VELOCITY, SELF_REFERRAL, FRESH_CHAIN, SYBIL = "velocity", "self_referral", "fresh_chain", "sybil"
RULES = (VELOCITY, SELF_REFERRAL, FRESH_CHAIN, SYBIL)

# velocity: within VELOCITY_SPAN_MS before the order, a client (the buyer or a sharer of its chain)
# made more than VELOCITY_MAX_ENTRIES entries or more than VELOCITY_MAX_SHARES share codes in this
# merchant's campaigns, or one sharer's code brought more than VELOCITY_MAX_CODE_ENTRIES entries.
# A shopper types one code per visit; the share limit is 5 codes per phone and campaign
# (settings.share_max_per_visitor), so 6 in an hour takes several phones of one person or campaigns.
VELOCITY_SPAN_MS = 3600 * 1000
VELOCITY_MAX_ENTRIES = 10
VELOCITY_MAX_SHARES = 5
VELOCITY_MAX_CODE_ENTRIES = 30
# fresh_chain: the order's last FRESH_MIN_LINKS links (the buyer and the sharers above) each had no
# entry with this merchant before their link, and each acted within FRESH_GAP_MS of arriving (the
# buyer bought, a sharer's code brought the next link). Cookies made for the chain, fast.
FRESH_GAP_MS = 120 * 1000
FRESH_MIN_LINKS = 3
# sybil: at least SYBIL_MIN_FAKES sharers nearest the buyer are pass-through identities (no earlier
# entry, no verified account, no linked person, a code that brought exactly one entry: the next
# link) under a real sharer, and had that sharer inserted them, the campaign's rule would pay
# them together at least SYBIL_MIN_GAIN_BP of the pool more than at level 1 (docs/rules.md).
SYBIL_MIN_FAKES = 2
SYBIL_MIN_GAIN_BP = 1000  # 10 % of the pool
# The rules read the buyer and at most this many sharers nearest them (a few queries per link,
# inside the order's transaction): a chain deeper than this is judged on its lower part.
MAX_LINKS = 50


@dataclass
class Link:
    """One step of an order's chain: level 0 is the buyer, level i the i-th sharer above."""
    level: int
    entry: Entry
    participant: Participant | None
    visitors: set[str]  # the client: this phone, or every phone of its person
    person_id: int | None
    fresh: bool = False  # no entry of the client with this merchant before this link's entry
    acted_ms: int = 0  # how long after arriving it acted (bought, or its code was used)
    code_entries: int = 0  # entries through its code up to the order (sharers only)
    # within VELOCITY_SPAN_MS before the order: the client's entries and share codes, and the
    # entries through this sharer's code
    recent_entries: int = 0
    recent_shares: int = 0
    recent_code_entries: int = 0


def _campaigns_of(merchant_id: int) -> Any:
    return select(Campaign.id).where(Campaign.merchant_id == merchant_id).scalar_subquery()


def _people(s: Session, visitors: set[str]) -> tuple[dict[str, int], dict[int, set[str]]]:
    """visitor -> person, and person -> all of its visitors, for these visitors."""
    of = dict(s.execute(select(PersonPhone.visitor, PersonPhone.person_id)
                        .where(PersonPhone.visitor.in_(sorted(visitors)))).all()) if visitors else {}
    phones: dict[int, set[str]] = {}
    if of:
        for v, pid in s.execute(select(PersonPhone.visitor, PersonPhone.person_id)
                                .where(PersonPhone.person_id.in_(sorted(set(of.values()))))):
            phones.setdefault(pid, set()).add(v)
    return of, phones


def links_of(s: Session, o: Order) -> list[Link]:
    """The order's chain, buyer first, each link with its client and its numbers: a fixed number
    of grouped queries whatever the depth (the entries themselves are in the session already when
    the order was just booked)."""
    buyer = s.get(Entry, o.entry_id)
    assert buyer is not None
    chain = raw_chain(s, buyer)[:MAX_LINKS]
    entries = [buyer] + [s.get(Entry, p.entry_id) for p in chain]
    of, phones = _people(s, {e.visitor for e in entries if e is not None})
    links: list[Link] = []
    for i, e in enumerate(entries):
        assert e is not None  # participants.entry_id is a foreign key
        person = of.get(e.visitor)
        links.append(Link(i, e, chain[i - 1] if i else None,
                          phones.get(person, {e.visitor}) if person is not None else {e.visitor}, person))
    t, since, mine = o.created_at_ms, o.created_at_ms - VELOCITY_SPAN_MS, _campaigns_of(o.merchant_id)
    visitors = sorted(set().union(*(ln.visitors for ln in links)))
    recent = case((Entry.created_at_ms > since, 1), else_=0)
    seen = {v: (int(first), int(n or 0)) for v, first, n in s.execute(
        select(Entry.visitor, func.min(Entry.created_at_ms), func.sum(recent))
        .where(Entry.visitor.in_(visitors), Entry.campaign_id.in_(mine), Entry.created_at_ms <= t)
        .group_by(Entry.visitor))}
    shared = dict(s.execute(
        select(Participant.visitor, func.count()).join(Entry, Participant.entry_id == Entry.id)
        .where(Participant.visitor.in_(visitors), Entry.campaign_id.in_(mine), Entry.created_at_ms > since,
               Entry.created_at_ms <= t).group_by(Participant.visitor)).all())
    codes = {pid: (int(n), int(r or 0)) for pid, n, r in s.execute(
        select(Entry.parent_participant_id, func.count(), func.sum(recent))
        .where(Entry.parent_participant_id.in_([p.id for p in chain]), Entry.created_at_ms <= t)
        .group_by(Entry.parent_participant_id))}
    for i, ln in enumerate(links):
        ln.fresh = all(seen.get(v, (t + 1, 0))[0] >= ln.entry.created_at_ms for v in ln.visitors)
        ln.acted_ms = (t if i == 0 else links[i - 1].entry.created_at_ms) - ln.entry.created_at_ms
        ln.recent_entries = sum(seen.get(v, (0, 0))[1] for v in ln.visitors)
        ln.recent_shares = sum(int(shared.get(v, 0)) for v in ln.visitors)
        if ln.participant is not None:
            ln.code_entries, ln.recent_code_entries = codes.get(ln.participant.id, (0, 0))
    return links


def velocity(s: Session, o: Order, links: Sequence[Link]) -> dict[str, Any] | None:
    fired, seen = [], set()
    for ln in links:
        key = min(ln.visitors)
        if key in seen:
            continue
        seen.add(key)
        if (ln.recent_entries > VELOCITY_MAX_ENTRIES or ln.recent_shares > VELOCITY_MAX_SHARES
                or ln.recent_code_entries > VELOCITY_MAX_CODE_ENTRIES):
            fired.append({"level": ln.level, "entries": ln.recent_entries, "shares": ln.recent_shares,
                          "code_entries": ln.recent_code_entries})
    if not fired:
        return None
    return {"clients": fired, "span_ms": VELOCITY_SPAN_MS, "max_entries": VELOCITY_MAX_ENTRIES,
            "max_shares": VELOCITY_MAX_SHARES, "max_code_entries": VELOCITY_MAX_CODE_ENTRIES}


def self_referral(s: Session, o: Order, links: Sequence[Link]) -> dict[str, Any] | None:
    """Two links of one chain are one client: the same phone, the same person, or the same
    verified account. The chain's merge (cloud/services/chain.py) already pays a phone or an
    account once; a person's other phones are not merged, so those are paid twice."""
    keys: dict[str, int] = {}
    pairs: list[dict[str, Any]] = []
    for ln in links:
        mine = {f"visitor:{v}" for v in ln.visitors} if ln.person_id is None else {f"person:{ln.person_id}"}
        mine.add(f"visitor:{ln.entry.visitor}")
        if ln.participant is not None and ln.participant.account_id is not None:
            mine.add(f"account:{ln.participant.account_id}")
        hits = {keys[k]: k.split(":")[0] for k in mine if k in keys}
        pairs += [{"levels": [lower, ln.level], "same": how, "paid": how == "person"}
                  for lower, how in sorted(hits.items())]
        for k in mine:
            keys.setdefault(k, ln.level)
    return {"pairs": pairs, "buyer_is_sharer": any(p["levels"][0] == 0 for p in pairs)} if pairs else None


def fresh_chain(s: Session, o: Order, links: Sequence[Link]) -> dict[str, Any] | None:
    run = 0
    for ln in links:
        if not (ln.fresh and 0 <= ln.acted_ms <= FRESH_GAP_MS):
            break
        run += 1
    if run < FRESH_MIN_LINKS:
        return None
    return {"fresh_links": run, "chain_links": len(links), "gap_ms": FRESH_GAP_MS,
            "min_links": FRESH_MIN_LINKS, "acted_ms": [ln.acted_ms for ln in links[:run]]}


def _pass_through(ln: Link) -> bool:
    return (ln.participant is not None and ln.fresh and ln.code_entries == 1 and ln.person_id is None
            and ln.participant.account_id is None)


def sybil(s: Session, o: Order, links: Sequence[Link]) -> dict[str, Any] | None:
    sharers = links[1:]
    k = 0
    while k < len(sharers) and _pass_through(sharers[k]):
        k += 1
    depth = len(json.loads(o.chain_json or "[]"))  # the chain as the rule paid it (merged)
    k = min(k, depth - 1)
    if k < SYBIL_MIN_FAKES or k >= len(sharers):  # no real sharer above the run
        return None
    params = json.loads(o.rule_params_json or "{}")
    with_fakes = rules.split(o.rule, o.pool_minor, depth, params).payouts
    without = rules.split(o.rule, o.pool_minor, depth - k, params).payouts
    gain = sum(with_fakes[:k + 1]) - (without[0] if without else 0)
    if o.pool_minor <= 0 or gain * rules.BP < SYBIL_MIN_GAIN_BP * o.pool_minor:
        return None
    return {"fakes": k, "real_sharer_level": k + 1, "gain_minor": gain, "pool_minor": o.pool_minor,
            "min_fakes": SYBIL_MIN_FAKES, "min_gain_bp": SYBIL_MIN_GAIN_BP}


CHECKS = {VELOCITY: velocity, SELF_REFERRAL: self_referral, FRESH_CHAIN: fresh_chain, SYBIL: sybil}


def evaluate(s: Session, o: Order) -> dict[str, dict[str, Any]]:
    """rule -> the numbers that fired it, for every rule that fires on this order."""
    links = links_of(s, o)
    found: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        detail = check(s, o, links)
        if detail is not None:
            found[name] = detail
    return found


def flag_order(s: Session, o: Order, now: int) -> list[str]:
    """Raise the order's flags (inside its transaction); returns the rules that fired."""
    found = evaluate(s, o)
    insert_ignore(s, FraudFlag.__table__, [  # type: ignore[arg-type]
        {"merchant_id": o.merchant_id, "order_id": o.id, "rule": rule, "status": "open", "created_at_ms": now,
         "detail_json": json.dumps(detail, sort_keys=True, separators=(",", ":"))}
        for rule, detail in found.items()], ["order_id", "rule"])
    return sorted(found)


def scan(sf: SessionFactory, merchant_id: int, now: int, since_ms: int = 0,
         limit: int = 5000) -> dict[str, int]:
    """Evaluate the merchant's placed orders booked since `since_ms` (newest first, at most
    `limit`) and raise the flags they lack. Returns how many orders were read and flags raised."""
    with sf.begin() as s:
        before = int(s.scalar(select(func.count()).select_from(FraudFlag)
                              .where(FraudFlag.merchant_id == merchant_id)) or 0)
        ids = list(s.scalars(select(Order.id).where(
            Order.merchant_id == merchant_id, Order.status == "placed", Order.created_at_ms >= since_ms)
            .order_by(Order.id.desc()).limit(limit)))
        for oid in ids:
            o = s.get(Order, oid)
            assert o is not None
            flag_order(s, o, now)
        after = int(s.scalar(select(func.count()).select_from(FraudFlag)
                             .where(FraudFlag.merchant_id == merchant_id)) or 0)
    return {"orders": len(ids), "raised": after - before}
