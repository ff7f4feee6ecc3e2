"""What the campaign console shows before anything is published (issue 14 part 3): which base codes
are free to rent, the shopper's landing page as a draft would make it, and how a draft's rule and
pool would split the campaign's real recent chains. Everything is computed by the code that does
it for real: the rented-code index (campaigns.create's rule), landing.status, pools.pool_for,
rules.split and chain.merged_chain."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import bad_request
from cloud.services import campaigns, landing, pools, rules
from cloud.services.auth import Principal
from cloud.services.chain import merged_chain
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Entry, Order
from protocol.rotation import base_prefixes

WILDCARDS = "?xX*"  # a digit the merchant does not mind
SEARCH_LIMIT = 12  # free codes shown per search
SEARCH_SCAN = 5000  # candidates looked at, at most, per search
SEARCH_BATCH = 500  # candidates per indexed lookup
RECENT_CHAINS = 10
SAMPLE_AMOUNT_MINOR = 10_000  # a chain without an order is priced at the orders' mean, else this


def _pattern(query: str, length: int | None) -> str:
    q = "".join(query.split())
    if not q and length is not None:
        q = "?" * length
    q = "".join("?" if ch in WILDCARDS else ch for ch in q)
    if not (1 <= len(q) <= 12 and all(ch.isascii() and (ch.isdigit() or ch == "?") for ch in q)):
        raise bad_request("bad_pattern", "type 1 to 12 digits, with ? for any digit (e.g. 49??), or a length",
                          "请输入 1 至 12 位数字，? 代表任意数字（例如 49??），或只填位数")
    return q


def _candidates(pattern: str) -> list[str]:
    """The codes the pattern matches, in order, at most SEARCH_SCAN; a free first digit skips 0
    (a code that starts with 0 is easy to mistype)."""
    holes = [i for i, ch in enumerate(pattern) if ch == "?"]
    out: list[str] = []
    for n in range(10 ** len(holes)):
        digits = str(n).zfill(len(holes))
        code = list(pattern)
        for i, d in zip(holes, digits, strict=True):
            code[i] = d
        if holes and holes[0] == 0 and code[0] == "0":
            continue
        out.append("".join(code))
        if len(out) >= SEARCH_SCAN:
            break
    return out


def _rented(s: Session, codes: list[str]) -> set[str]:
    return set(s.scalars(select(Campaign.base_code).where(Campaign.base_code.in_(codes),
                                                          Campaign.released_at_ms.is_(None))))


def _overlaps(s: Session, code: str) -> list[str]:
    """Rented codes that prefix `code` or that it prefixes: typed without a dash, the longest
    rented prefix wins (codes.read_code), so a shopper should type the dash."""
    shorter = set(base_prefixes(code)[1:])
    longer = s.scalars(select(Campaign.base_code).where(Campaign.base_code.startswith(code, autoescape=True),
                                                        Campaign.base_code != code,
                                                        Campaign.released_at_ms.is_(None)).limit(5))
    return sorted(_rented(s, sorted(shorter)) | set(longer))


def search(sf: SessionFactory, query: str, length: int | None = None) -> dict[str, Any]:
    """Free base codes for `query`: one code (free or taken, with the rented codes it overlaps),
    or a pattern with ? (or a length): up to SEARCH_LIMIT free ones. 400 bad_pattern."""
    pattern = _pattern(query, length)
    with sf() as s:
        if "?" not in pattern:
            taken = bool(_rented(s, [pattern]))
            near = [] if taken else _overlaps(s, pattern)
            one = {"base_code": pattern, "free": not taken, "overlaps": near}
            return {"pattern": pattern, "exact": True, "codes": [one]}
        found: list[dict[str, Any]] = []
        todo = _candidates(pattern)
        for i in range(0, len(todo), SEARCH_BATCH):
            batch = todo[i:i + SEARCH_BATCH]
            taken_set = _rented(s, batch)
            found += [{"base_code": b, "free": True, "overlaps": []} for b in batch if b not in taken_set]
            if len(found) >= SEARCH_LIMIT:
                break
    return {"pattern": pattern, "exact": False, "codes": found[:SEARCH_LIMIT]}


def status(c: dict[str, Any], now_ms: int) -> str:
    """running, not_started, ended (landing.status) or released, for a campaign_dict."""
    if c["released_at_ms"] is not None:
        return "released"
    return landing.status(Campaign(starts_at_ms=c["starts_at_ms"], ends_at_ms=c["ends_at_ms"]), now_ms)


def landing_data(c: dict[str, Any], settings: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """landing.page's answer for a shopper who came from a display, with the draft's settings in
    place of the live ones (shopper_pages.landing_page renders it)."""
    timing = Campaign(starts_at_ms=settings.get("starts_at_ms"), ends_at_ms=settings.get("ends_at_ms"))
    base = c["base_code"]
    return {"campaign": {"id": c["campaign_id"], "base_code": base,
                         "label": {"zh": settings.get("label_zh", ""), "en": settings.get("label_en", "")},
                         "text": {"zh": settings.get("landing_zh", ""), "en": settings.get("landing_en", "")},
                         "image_url": settings.get("image_url"),
                         "has_target": bool(settings.get("target_url")),
                         "currency": settings.get("currency") or c["currency"],
                         "status": landing.status(timing, now_ms)},
            "entry": {"id": "preview", "via": "display", "code": f"{base}-{'0' * c['digits']}", "depth": 0},
            "share_code": None, "saved": False}


def _recent(s: Session, c: Campaign, limit: int) -> list[dict[str, Any]]:
    """The campaign's last orders (their chains as booked), then, to fill up, its last entries with
    a share chain (merged as an order would merge it now)."""
    out: list[dict[str, Any]] = []
    for o in s.scalars(select(Order).where(Order.campaign_id == c.id).order_by(Order.id.desc()).limit(limit)):
        out.append({"source": "order", "ref": str(o.id), "amount_minor": o.amount_minor,
                    "depth": len(json.loads(o.chain_json or "[]")), "at_ms": o.created_at_ms,
                    "was_paid_minor": int(json.loads(o.response_json or "{}").get("paid_minor", 0))})
    if len(out) < limit:
        for e in s.scalars(select(Entry).where(Entry.campaign_id == c.id, Entry.depth > 0)
                           .order_by(Entry.created_at_ms.desc(), Entry.id).limit(limit - len(out))):
            out.append({"source": "entry", "ref": e.code, "amount_minor": None, "at_ms": e.created_at_ms,
                        "depth": len(merged_chain(s, e, c.merchant_id)), "was_paid_minor": None})
    return out


def rule_preview(sf: SessionFactory, p: Principal, campaign_id: int, settings: dict[str, Any],
                 limit: int = RECENT_CHAINS) -> dict[str, Any]:
    """How `settings` (a draft's rule, params, pool and budget) would split each recent chain, as
    if it were the campaign's next order: pool, each level's payout, the remainder and its
    destination, beside what the order really paid. Amounts in minor units."""
    with sf() as s:
        c = campaigns.own(s, p, campaign_id)
        chains = _recent(s, c, limit)
        spent = c.spent_minor
    amounts = [x["amount_minor"] for x in chains if x["amount_minor"] is not None]
    sample = sum(amounts) // len(amounts) if amounts else SAMPLE_AMOUNT_MINOR
    budget = settings.get("budget_minor")
    cap = None if budget is None else max(0, budget - spent)
    rows = []
    for x in chains:
        amount = sample if x["amount_minor"] is None else x["amount_minor"]
        pool = pools.pool_for(amount, settings["pool_minor"], settings.get("pool_bp"),
                              settings.get("pool_cap_minor"))
        sp = rules.split(settings["rule"], pool, x["depth"], settings.get("rule_params") or {},
                         budget_cap_minor=cap)
        rows.append({**x, "priced_at_minor": amount, "pool_minor": pool, "payouts": list(sp.payouts),
                     "paid_minor": sum(sp.payouts), "remainder_minor": sp.remainder,
                     "remainder_to": sp.remainder_to})
    return {"rule": rules.canonical(settings["rule"]), "budget_left_minor": cap,
            "sample_amount_minor": sample, "chains": rows}
