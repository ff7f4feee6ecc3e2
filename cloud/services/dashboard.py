"""The merchant dashboard's numbers (issue 14): "is it working, and what does it cost me".

For a period and the one before it (of the same length): taps, entries, shares, orders, revenue,
paid to sharers and cost per order; a time series; funnels per display and per campaign (taps ->
entries -> shares -> orders -> paid); the top sharers and the chain depths; each device's health.
Every query is scoped to the merchant's own campaigns, and each total is the sum of its rows: the
funnels count what a display *started* (entries whose chain is rooted at it, shares and orders
down those chains), so a display's rows add up to the totals except for entries with no display at
their root (a bare base code), which are counted in a row of their own.

Times: taps count by when the cloud received them (a device's clock may be unset); entries,
shares and orders by when they happened. Money is integer minor units.

`dashboard` reads a period of whole UTC days from the rollups (cloud/services/rollups.py), brought
up to date first, so it costs the same at ten million events as at ten thousand; the functions
below it are the live queries over every row, which the rollups must match exactly (tests/cloud/
test_rollups.py) and which any other period uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.orm import Session

from cloud.services import rollups
from cloud.services.gateway_status import device_health
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Device, Entry, Event, Order, Participant, Payout
from protocol.record import KIND_TAP

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
PERIODS = {"today": 1, "7d": 7, "30d": 30}
MAX_CUSTOM_DAYS = 366
SILENT_WINDOWS = 6  # a display silent this many of its campaign's windows raises the alarm
HEADLINES = ("taps", "entries", "shares", "orders", "revenue_minor", "paid_minor", "cost_per_order_minor")


@dataclass(frozen=True)
class Period:
    start_ms: int
    end_ms: int  # exclusive
    bucket_ms: int  # the time series' step: hours for a day, days otherwise

    @property
    def previous(self) -> Period:
        n = self.end_ms - self.start_ms
        return Period(self.start_ms - n, self.start_ms, self.bucket_ms)


def period(name: str, now_ms: int, start_ms: int | None = None, end_ms: int | None = None) -> Period:
    """today (since UTC midnight), 7d, 30d (whole UTC days up to tomorrow), or custom [start, end)."""
    if name == "custom":
        if (
            start_ms is None
            or end_ms is None
            or not 0 <= start_ms < end_ms <= start_ms + MAX_CUSTOM_DAYS * DAY_MS
        ):
            raise ValueError(f"a custom period needs 0 <= start < end, at most {MAX_CUSTOM_DAYS} days")
        return Period(start_ms, end_ms, HOUR_MS if end_ms - start_ms <= DAY_MS else DAY_MS)
    days = PERIODS.get(name)
    if days is None:
        raise ValueError(f"period must be one of {', '.join([*PERIODS, 'custom'])}")
    end = (now_ms // DAY_MS + 1) * DAY_MS
    return Period(end - days * DAY_MS, end, HOUR_MS if days == 1 else DAY_MS)


def _pairs(rows: Any) -> dict[Any, Any]:
    """{first column: second} of a two-column result (dict() would take a Result for a mapping)."""
    return {r[0]: r[1] for r in rows}


def _bucket(col: Any, p: Period) -> Any:
    """The bucket index of a time, with the numbers written into the SQL: as bound parameters the
    SELECT's and the GROUP BY's expressions would differ for PostgreSQL."""
    return (col - literal_column(str(int(p.start_ms)))) // literal_column(str(int(p.bucket_ms)))


def _in(col: Any, p: Period) -> ColumnElement[bool]:
    return (col >= p.start_ms) & (col < p.end_ms)


def _campaigns(merchant_id: int) -> Select[Any]:
    return select(Campaign.id).where(Campaign.merchant_id == merchant_id)


def headlines(sf: SessionFactory, merchant_id: int, p: Period) -> dict[str, int | None]:
    mine = _campaigns(merchant_id)
    live = (Order.merchant_id == merchant_id) & (Order.status == "placed") & _in(Order.created_at_ms, p)
    with sf() as s:
        taps = s.scalar(
            select(func.count(Event.id))
            .join(Device, Event.device_id == Device.id)
            .where(Device.campaign_id.in_(mine), Event.kind == KIND_TAP, _in(Event.received_at_ms, p))
        )
        entries = s.scalar(
            select(func.count(Entry.id)).where(Entry.campaign_id.in_(mine), _in(Entry.created_at_ms, p))
        )
        shares = s.scalar(
            select(func.count(Participant.id)).where(
                Participant.campaign_id.in_(mine), _in(Participant.created_at_ms, p)
            )
        )
        orders, revenue = s.execute(
            select(func.count(Order.id), func.coalesce(func.sum(Order.amount_minor), 0)).where(live)
        ).one()
        paid = s.scalar(
            select(func.coalesce(func.sum(Payout.amount_minor), 0))
            .join(Order, Payout.order_id == Order.id)
            .where(live, Payout.payee == "participant")
        )
    return _headline(dict(zip(rollups.FIGURES, (taps, entries, shares, orders, revenue, paid), strict=True)))


def _headline(figures: dict[str, Any]) -> dict[str, int | None]:
    out: dict[str, int | None] = {k: int(figures.get(k) or 0) for k in rollups.FIGURES}
    orders, paid = int(figures.get("orders") or 0), int(figures.get("paid_minor") or 0)
    # what the merchant paid sharers per order; None without orders (not 0: nothing was bought)
    out["cost_per_order_minor"] = paid // orders if orders else None
    return out


def change(now: int | None, before: int | None) -> int | None:
    """Percent change, rounded toward zero; None when there is nothing to compare with."""
    if now is None or before is None or before == 0:
        return None
    return int((now - before) * 100 / before)


def series(sf: SessionFactory, merchant_id: int, p: Period) -> list[dict[str, int]]:
    """Entries and orders per bucket of the period, every bucket present (zeros included)."""
    mine = _campaigns(merchant_id)
    with sf() as s:
        e = _pairs(
            s.execute(
                select(_bucket(Entry.created_at_ms, p), func.count(Entry.id))
                .where(Entry.campaign_id.in_(mine), _in(Entry.created_at_ms, p))
                .group_by(_bucket(Entry.created_at_ms, p))
            ).all()
        )
        o = _pairs(
            s.execute(
                select(_bucket(Order.created_at_ms, p), func.count(Order.id))
                .where(
                    Order.merchant_id == merchant_id, Order.status == "placed", _in(Order.created_at_ms, p)
                )
                .group_by(_bucket(Order.created_at_ms, p))
            ).all()
        )
    return _series_rows(p, e, o)


def _series_rows(p: Period, e: dict[Any, Any], o: dict[Any, Any]) -> list[dict[str, int]]:
    n = (p.end_ms - p.start_ms) // p.bucket_ms
    return [
        {"start_ms": p.start_ms + i * p.bucket_ms, "entries": int(e.get(i, 0)), "orders": int(o.get(i, 0))}
        for i in range(n)
    ]


def funnels(sf: SessionFactory, merchant_id: int, p: Period) -> dict[str, list[dict[str, Any]]]:
    """taps -> entries -> shares -> orders -> paid, per display (by the display at each chain's
    root) and per campaign."""
    mine = _campaigns(merchant_id)
    live = (Order.merchant_id == merchant_id) & (Order.status == "placed") & _in(Order.created_at_ms, p)
    with sf() as s:
        devices, bases = _displays(s, merchant_id)
        taps = _pairs(
            s.execute(
                select(Event.device_id, func.count(Event.id))
                .where(
                    Event.device_id.in_([d[0] for d in devices]),
                    Event.kind == KIND_TAP,
                    _in(Event.received_at_ms, p),
                )
                .group_by(Event.device_id)
            ).all()
        )
        by = {
            "entries": select(Entry.root_device_id, Entry.campaign_id, func.count(Entry.id)).where(
                Entry.campaign_id.in_(mine), _in(Entry.created_at_ms, p)
            ),
            "shares": select(Entry.root_device_id, Entry.campaign_id, func.count(Participant.id))
            .join(Entry, Participant.entry_id == Entry.id)
            .where(Participant.campaign_id.in_(mine), _in(Participant.created_at_ms, p)),
            "orders": select(Entry.root_device_id, Entry.campaign_id, func.count(Order.id))
            .join(Entry, Order.entry_id == Entry.id)
            .where(live),
            "paid_minor": select(Entry.root_device_id, Entry.campaign_id, func.sum(Payout.amount_minor))
            .join(Order, Payout.order_id == Order.id)
            .join(Entry, Order.entry_id == Entry.id)
            .where(live, Payout.payee == "participant"),
        }
        counts = {
            k: {
                (r[0], r[1]): int(r[2] or 0)
                for r in s.execute(q.group_by(Entry.root_device_id, Entry.campaign_id))
            }
            for k, q in by.items()
        }
    return _funnel_rows(devices, bases, taps, counts)


def _displays(s: Session, merchant_id: int) -> tuple[list[Any], dict[Any, Any]]:
    """The merchant's displays (id, label, campaign) in order, and its campaigns' base codes."""
    devices = list(
        s.execute(
            select(Device.id, Device.label, Device.campaign_id)
            .where(Device.campaign_id.in_(_campaigns(merchant_id)))
            .order_by(Device.campaign_id, Device.slot)
        ).all()
    )
    bases = _pairs(
        s.execute(select(Campaign.id, Campaign.base_code).where(Campaign.merchant_id == merchant_id))
    )
    return devices, bases


def _funnel_rows(
    devices: list[Any],
    bases: dict[Any, Any],
    taps: dict[Any, Any],
    counts: dict[str, dict[tuple[Any, Any], int]],
) -> dict[str, list[dict[str, Any]]]:
    steps = ("entries", "shares", "orders", "paid_minor")
    per_display = [
        {
            "device_id": d,
            "label": label,
            "base_code": bases.get(c, ""),
            "taps": int(taps.get(d, 0)),
            **{k: counts[k].get((d, c), 0) for k in steps},
        }
        for d, label, c in devices
    ]
    no_display = {k: sum(v for (d, _c), v in counts[k].items() if d is None) for k in steps}
    if any(no_display.values()):
        per_display.append({"device_id": None, "label": "", "base_code": "", "taps": 0, **no_display})
    per_campaign = [
        {
            "campaign_id": c,
            "base_code": b,
            "taps": sum(int(taps.get(d, 0)) for d, _lab, dc in devices if dc == c),
            **{k: sum(v for (_d, cc), v in counts[k].items() if cc == c) for k in steps},
        }
        for c, b in sorted(bases.items())
    ]
    return {"per_display": per_display, "per_campaign": per_campaign}


def sharers(sf: SessionFactory, merchant_id: int, p: Period, top: int = 10) -> dict[str, Any]:
    """The top sharers (entries they brought, orders on those entries, what they earned) and how
    deep the period's entries stood in their chains."""
    mine = _campaigns(merchant_id)
    live = (Order.merchant_id == merchant_id) & (Order.status == "placed") & _in(Order.created_at_ms, p)
    with sf() as s:
        brought = _pairs(
            s.execute(
                select(Entry.parent_participant_id, func.count(Entry.id))
                .where(
                    Entry.campaign_id.in_(mine),
                    Entry.parent_participant_id.is_not(None),
                    _in(Entry.created_at_ms, p),
                )
                .group_by(Entry.parent_participant_id)
            )
        )
        ordered = _pairs(
            s.execute(
                select(Entry.parent_participant_id, func.count(Order.id))
                .join(Entry, Order.entry_id == Entry.id)
                .where(live, Entry.parent_participant_id.is_not(None))
                .group_by(Entry.parent_participant_id)
            )
        )
        earned = _pairs(
            s.execute(
                select(Payout.participant_id, func.sum(Payout.amount_minor))
                .join(Order, Payout.order_id == Order.id)
                .where(live, Payout.participant_id.is_not(None))
                .group_by(Payout.participant_id)
            )
        )
        depth = _pairs(
            s.execute(
                select(Entry.depth, func.count(Entry.id))
                .where(Entry.campaign_id.in_(mine), _in(Entry.created_at_ms, p))
                .group_by(Entry.depth)
            )
        )
        return _sharer_rows(s, brought, ordered, earned, depth, top)


def _sharer_rows(
    s: Session,
    brought: dict[Any, Any],
    ordered: dict[Any, Any],
    earned: dict[Any, Any],
    depth: dict[Any, Any],
    top: int,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {
            "participant_id": pid,
            "share_code": "",
            "entries": int(brought.get(pid, 0)),
            "orders": int(ordered.get(pid, 0)),
            "earned_minor": int(earned.get(pid, 0) or 0),
        }
        for pid in (set(brought) | set(earned)) - {None}
    ]
    rows.sort(key=lambda r: (-r["earned_minor"], -r["orders"], -r["entries"], r["participant_id"]))
    rows = rows[:top]
    # share codes for the rows shown only: a month of a busy merchant has tens of thousands of sharers
    codes = _pairs(s.execute(select(Participant.id, Participant.share_code).where(
        Participant.id.in_([r["participant_id"] for r in rows]))))
    for r in rows:
        r["share_code"] = codes.get(r["participant_id"], "")
    return {"top": rows, "depth": {int(k): int(v) for k, v in sorted(depth.items())}}


HEALTH_FROM_GATEWAY = ("battery_low", "firmware", "rssi", "pulled_at_ms", "gateway_id", "gateway_state",
                       "gateway_heard_ms", "spool_alarm")


def health(sf: SessionFactory, merchant_id: int, now_ms: int, rolled: bool = False) -> list[dict[str, Any]]:
    """Per display: last heard of, events, boots, and an alarm when it has been silent for
    SILENT_WINDOWS of its campaign's windows (a display heard of never is silent since it was
    registered); and from the gateways' status (cloud/services/gateway_status.py) its battery,
    firmware and the state of the gateway that pulls it (HEALTH_FROM_GATEWAY, None if unknown)."""
    mine = (
        select(Device.id)
        .join(Campaign, Device.campaign_id == Campaign.id)
        .where(Campaign.merchant_id == merchant_id)
    )
    totals = (
        rollups.event_totals(mine)
        if rolled
        else (
            select(
                Event.device_id.label("device_id"),
                func.count(Event.id).label("events"),
                func.max(Event.received_at_ms).label("last"),
            )
            .where(Event.device_id.in_(mine))
            .group_by(Event.device_id)
            .subquery()
        )
    )
    with sf() as s:
        rows = s.execute(
            select(
                Device.id,
                Device.label,
                Device.board,
                Device.created_at_ms,
                Campaign.period_s,
                totals.c.last,
                func.coalesce(totals.c.events, 0),
            )
            .join(Campaign, Device.campaign_id == Campaign.id)
            .outerjoin(totals, totals.c.device_id == Device.id)
            .where(Campaign.merchant_id == merchant_id)
            .order_by(Device.id)
        ).all()
    seen = device_health(sf, [r[0] for r in rows])  # battery, firmware, gateway: its status
    out = []
    for dev, label, board, created, period_s, last, n in rows:
        since = last if last is not None else created
        silent_ms = max(0, now_ms - since)
        out.append(
            {
                "device_id": dev,
                "label": label,
                "board": board,
                "last_received_ms": last,
                "events": int(n),
                "silent_ms": silent_ms,
                "alarm": silent_ms > SILENT_WINDOWS * period_s * 1000,
                **(seen.get(dev) or dict.fromkeys(HEALTH_FROM_GATEWAY)),
            }
        )
    return out


def dashboard(
    sf: SessionFactory, merchant_id: int, p: Period, now_ms: int, live: bool = False
) -> dict[str, Any]:
    """Everything the dashboard shows: from the rollups for a period of whole UTC days (the page's
    periods all are), else (or with `live`) from the live queries; the two give the same numbers."""
    if not live and p.start_ms % DAY_MS == 0 and p.end_ms % DAY_MS == 0:
        return _rolled(sf, merchant_id, p, now_ms)
    now, before = headlines(sf, merchant_id, p), headlines(sf, merchant_id, p.previous)
    return _assemble(
        p,
        now,
        before,
        series(sf, merchant_id, p),
        funnels(sf, merchant_id, p),
        sharers(sf, merchant_id, p),
        health(sf, merchant_id, now_ms),
    )


def _assemble(
    p: Period,
    now: dict[str, int | None],
    before: dict[str, int | None],
    rows: list[dict[str, int]],
    funnel: dict[str, Any],
    top: dict[str, Any],
    devices: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "period": {"start_ms": p.start_ms, "end_ms": p.end_ms, "bucket_ms": p.bucket_ms},
        "headlines": {
            k: {"now": now[k], "before": before[k], "change_pct": change(now[k], before[k])}
            for k in HEADLINES
        },
        "series": rows,
        **funnel,
        "sharers": top,
        "devices": devices,
    }


def _rolled(sf: SessionFactory, merchant_id: int, p: Period, now_ms: int) -> dict[str, Any]:
    """The dashboard from the rollups. The period's headlines are the sums of its funnel rows, read
    in one query, so a roll committing meanwhile cannot set the two apart."""
    rollups.roll(sf)
    mine = _campaigns(merchant_id)
    with sf() as s:
        devices, bases = _displays(s, merchant_id)
        cells = rollups.device_days(s, mine, p.start_ms, p.end_ms)
        before = _headline(rollups.hour_totals(s, mine, p.previous.start_ms, p.previous.end_ms))
        e, o = rollups.series_counts(s, mine, p.start_ms, p.end_ms, p.bucket_ms)
        brought, ordered, earned, depth = rollups.sharer_counts(s, mine, p.start_ms, p.end_ms)
        top = _sharer_rows(s, brought, ordered, earned, depth, 10)
    figures = {f: {k: v[i] for k, v in cells.items() if v[i]} for i, f in enumerate(rollups.FIGURES)}
    taps: dict[Any, int] = {}
    for (d, _c), n in figures["taps"].items():
        taps[d] = taps.get(d, 0) + n
    now = _headline({f: sum(figures[f].values()) for f in rollups.FIGURES})
    return _assemble(
        p,
        now,
        before,
        _series_rows(p, e, o),
        _funnel_rows(devices, bases, taps, figures),
        top,
        health(sf, merchant_id, now_ms, rolled=True),
    )


def currency(sf: SessionFactory, merchant_id: int) -> str:
    """The currency the merchant's money is shown in: its first campaign's (CNY without one)."""
    with sf() as s:
        c = s.scalar(
            select(Campaign.currency)
            .where(Campaign.merchant_id == merchant_id)
            .order_by(Campaign.id)
            .limit(1)
        )
    return c or "CNY"
