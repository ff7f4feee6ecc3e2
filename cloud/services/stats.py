"""A merchant's numbers: per device scans (tap events), events, gaps in the log, entries; every
query is scoped to the merchant's own campaigns."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select

from cloud.services.gaps import gap_counts
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Device, Entry, Event, Order, Payout
from protocol.record import KIND_TAP

# how entries come (entries.via): a display's rotating code, a printed code, a sharer's code, or a
# bare base code typed with no proof of presence, counted apart
ENTRY_KINDS = ("display", "printed", "share", "base")


def merchant_stats(sf: SessionFactory, merchant_id: int) -> dict[str, Any]:
    """Gaps: records missing from each device's log sequence (cloud.gaps)."""
    mine = Campaign.merchant_id == merchant_id
    with sf() as s:
        devices = s.execute(select(Device.id, Device.label, Device.location, Device.slot, Campaign.base_code)
                            .join(Campaign, Device.campaign_id == Campaign.id).where(mine)
                            .order_by(Campaign.base_code, Device.slot)).all()
        counts = {r[0]: r[1:] for r in s.execute(
            select(Event.device_id, func.count(Event.id),
                   func.coalesce(func.sum(case((Event.kind == KIND_TAP, 1), else_=0)), 0),
                   func.max(Event.received_at_ms))
            .join(Device, Event.device_id == Device.id).join(Campaign, Device.campaign_id == Campaign.id)
            .where(mine).group_by(Event.device_id))}
        entries = {r[0]: int(r[1]) for r in s.execute(
            select(Entry.device_id, func.count(Entry.id)).join(Campaign, Entry.campaign_id == Campaign.id)
            .where(mine).group_by(Entry.device_id))}
        by_via = {v: int(n) for v, n in s.execute(
            select(Entry.via, func.count(Entry.id)).join(Campaign, Entry.campaign_id == Campaign.id)
            .where(mine).group_by(Entry.via))}
        # refunded orders are neither counted nor paid; the pool's remainder is not "paid out"
        live = (Order.merchant_id == merchant_id) & (Order.status == "placed")
        orders = s.scalar(select(func.count(Order.id)).where(live)) or 0
        paid = s.scalar(select(func.coalesce(func.sum(Payout.amount_minor), 0))
                        .join(Order, Payout.order_id == Order.id)
                        .where(live, Payout.payee == "participant"))
    gaps = gap_counts(sf, Event.device_id.in_(
        select(Device.id).join(Campaign, Device.campaign_id == Campaign.id).where(mine)))
    rows = []
    for dev_id, label, location, slot, base in devices:
        n, taps, last = counts.get(dev_id, (0, 0, None))
        rows.append({"device_id": dev_id, "label": label, "location": location, "base_code": base,
                     "slot": slot, "scans": int(taps), "events": int(n), "gaps": gaps.get(dev_id, 0),
                     "entries": entries.get(dev_id, 0), "last_received_ms": last})
    return {"merchant_id": merchant_id, "devices": rows,
            "totals": {"scans": sum(r["scans"] for r in rows), "events": sum(r["events"] for r in rows),
                       "gaps": sum(r["gaps"] for r in rows),
                       "entries": sum(entries.values()), "orders": int(orders),
                       "entries_by_via": {v: int(by_via.get(v, 0)) for v in ENTRY_KINDS},
                       "pool_paid_minor": int(paid or 0)}}
