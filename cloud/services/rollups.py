"""The dashboard's rollups (issue 14 part 7): its figures summed per hour and per day, so that a
period costs the same at ten million events as at ten thousand (docs/performance.md).

Nothing on the write paths changes. `roll` reads each source by row id: the rows stored since its
last call (id above the source's watermark, rollup_state), adds what they contribute to the rollup
tables (cloud/store/models.py, Rollup*) and moves the watermark, in one transaction. The dashboard
calls it before it reads, so what it shows is what the live queries would show.

What each row contributes (the live queries in cloud/services/dashboard.py count placed orders only):
- an event: a tap to its display's day and its campaign's hour; its device and epoch's totals;
- an entry: to the day and hour of its chain's root display, its depth, the sharer who brought it;
- a participant: a share, likewise by its entry's root display;
- an order: one order and its amount, by the root display of its entry, at the order's time;
- a payout to a sharer: paid, and the sharer's earnings, at its order's time;
- a refund (a ledger transaction of kind refund: append-only, one per refunded order): minus all of
  the above for its order. Orders change in place only when refunded, so nothing else is missed.

Safe horizons: the ids up to which no row can still appear. SQLite has one writer at a time, so the
largest id read inside the roll's write transaction is one. On PostgreSQL ids are drawn before
commit, so a lower id can still commit after a higher one is visible: for each source with new rows
the roll takes `LOCK TABLE .. IN SHARE MODE` for a moment, which waits for the transactions writing
that table to end and reads max(id) before new ones start (no lock when nothing is new). Two rollers
serialize on the watermark rows; the second finds the rows counted and adds nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, case, func, literal_column, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.store.engine import SessionFactory, insert_ignore
from cloud.store.models import (
    Device,
    Entry,
    Event,
    LedgerTxn,
    Order,
    Participant,
    Payout,
    RollupCampaignHour,
    RollupDepthDay,
    RollupDeviceDay,
    RollupDeviceEpoch,
    RollupSharerDay,
    RollupState,
)
from protocol.record import KIND_TAP

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
FIGURES = ("taps", "entries", "shares", "orders", "revenue_minor", "paid_minor")
# the order horizons are taken in on PostgreSQL: rows before the rows they refer to (a refund before
# its order, a participant before its entry), so a counted row's references are counted too
SOURCES = ("refunds", "payouts", "orders", "participants", "entries", "events")
TABLES: dict[str, Any] = {"refunds": LedgerTxn, "payouts": Payout, "orders": Order,
                          "participants": Participant, "entries": Entry, "events": Event}


def _id(source: str, dialect: str) -> Any:
    if source == "entries":  # random text ids: the order of storing is roll_seq, or SQLite's rowid
        return literal_column("entries.rowid") if dialect == "sqlite" else Entry.roll_seq
    return TABLES[source].id


def _hour(col: Any) -> Any:
    return col // literal_column(str(HOUR_MS)) * literal_column(str(HOUR_MS))


def _day(col: Any) -> Any:
    return col // literal_column(str(DAY_MS)) * literal_column(str(DAY_MS))


class _Adds:
    """What one roll adds to each rollup table, summed per key before it is written."""

    def __init__(self) -> None:
        self.days: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0] * len(FIGURES))
        self.hours: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0] * len(FIGURES))
        self.depths: dict[tuple[int, int, int], int] = defaultdict(int)
        self.sharers: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.epochs: list[dict[str, Any]] = []

    def figure(self, campaign: int, device: str | None, hour: int, name: str, n: int) -> None:
        i = FIGURES.index(name)
        self.days[(campaign, hour - hour % DAY_MS, device or "")][i] += n
        self.hours[(campaign, hour)][i] += n

    def sharer(self, campaign: int, day: int, pid: int, entries: int = 0, orders: int = 0,
               payouts: int = 0, earned: int = 0) -> None:
        v = self.sharers[(campaign, day, pid)]
        for i, n in enumerate((entries, orders, payouts, earned)):
            v[i] += n


def _events(s: Session, lo: int, hi: int, a: _Adds) -> None:
    rng = (Event.id > lo) & (Event.id <= hi)
    for c, dev, hour, n in s.execute(
            select(Device.campaign_id, Event.device_id, _hour(Event.received_at_ms), func.count())
            .join(Device, Event.device_id == Device.id).where(rng, Event.kind == KIND_TAP)
            .group_by(Device.campaign_id, Event.device_id, _hour(Event.received_at_ms))):
        a.figure(c, dev, int(hour), "taps", int(n))
    for dev, epoch, n, taps, lo_seq, hi_seq, last in s.execute(
            select(Event.device_id, Event.epoch, func.count(),
                   func.sum(case((Event.kind == KIND_TAP, 1), else_=0)), func.min(Event.seq),
                   func.max(Event.seq), func.max(Event.received_at_ms))
            .where(rng).group_by(Event.device_id, Event.epoch)):
        a.epochs.append({"device_id": dev, "epoch": int(epoch), "events": int(n), "taps": int(taps),
                         "min_seq": int(lo_seq), "max_seq": int(hi_seq), "last_received_ms": int(last)})


def _entries(s: Session, lo: int, hi: int, a: _Adds, dialect: str) -> None:
    seq = _id("entries", dialect)
    rng = (seq > lo) & (seq <= hi)
    hour = _hour(Entry.created_at_ms)
    for c, root, h, depth, n in s.execute(
            select(Entry.campaign_id, Entry.root_device_id, hour, Entry.depth, func.count())
            .where(rng).group_by(Entry.campaign_id, Entry.root_device_id, hour, Entry.depth)):
        a.figure(c, root, int(h), "entries", int(n))
        a.depths[(c, int(h) - int(h) % DAY_MS, int(depth))] += int(n)
    day = _day(Entry.created_at_ms)
    for c, pid, d, n in s.execute(
            select(Entry.campaign_id, Entry.parent_participant_id, day, func.count())
            .where(rng, Entry.parent_participant_id.is_not(None))
            .group_by(Entry.campaign_id, Entry.parent_participant_id, day)):
        a.sharer(c, int(d), pid, entries=int(n))


def _participants(s: Session, lo: int, hi: int, a: _Adds) -> None:
    hour = _hour(Participant.created_at_ms)
    for c, root, h, n in s.execute(
            select(Entry.campaign_id, Entry.root_device_id, hour, func.count())
            .join(Entry, Participant.entry_id == Entry.id)
            .where(Participant.id > lo, Participant.id <= hi)
            .group_by(Entry.campaign_id, Entry.root_device_id, hour)):
        a.figure(c, root, int(h), "shares", int(n))


def _orders(s: Session, where: Any, a: _Adds, sign: int) -> None:
    """Orders (sign 1) or the orders refunded (sign -1) matching `where`, with their payouts."""
    hour, day = _hour(Order.created_at_ms), _day(Order.created_at_ms)
    for c, root, h, n, amount in s.execute(
            select(Entry.campaign_id, Entry.root_device_id, hour, func.count(), func.sum(Order.amount_minor))
            .join(Entry, Order.entry_id == Entry.id).where(where)
            .group_by(Entry.campaign_id, Entry.root_device_id, hour)):
        a.figure(c, root, int(h), "orders", sign * int(n))
        a.figure(c, root, int(h), "revenue_minor", sign * int(amount))
    for c, pid, d, n in s.execute(
            select(Entry.campaign_id, Entry.parent_participant_id, day, func.count())
            .join(Entry, Order.entry_id == Entry.id).where(where, Entry.parent_participant_id.is_not(None))
            .group_by(Entry.campaign_id, Entry.parent_participant_id, day)):
        a.sharer(c, int(d), pid, orders=sign * int(n))


def _payouts(s: Session, where: Any, a: _Adds, sign: int) -> None:
    hour, day = _hour(Order.created_at_ms), _day(Order.created_at_ms)
    base = select().select_from(Payout).join(Order, Payout.order_id == Order.id).join(
        Entry, Order.entry_id == Entry.id).where(where)
    for c, root, h, amount in s.execute(
            base.add_columns(Entry.campaign_id, Entry.root_device_id, hour, func.sum(Payout.amount_minor))
            .where(Payout.payee == "participant").group_by(Entry.campaign_id, Entry.root_device_id, hour)):
        a.figure(c, root, int(h), "paid_minor", sign * int(amount))
    for c, pid, d, n, amount in s.execute(
            base.add_columns(Entry.campaign_id, Payout.participant_id, day, func.count(),
                             func.sum(Payout.amount_minor))
            .where(Payout.participant_id.is_not(None))
            .group_by(Entry.campaign_id, Payout.participant_id, day)):
        a.sharer(c, int(d), pid, payouts=sign * int(n), earned=sign * int(amount))


def _collect(s: Session, source: str, lo: int, hi: int, a: _Adds, dialect: str) -> None:
    if source == "events":
        _events(s, lo, hi, a)
    elif source == "entries":
        _entries(s, lo, hi, a, dialect)
    elif source == "participants":
        _participants(s, lo, hi, a)
    elif source == "orders":
        _orders(s, (Order.id > lo) & (Order.id <= hi), a, 1)
    elif source == "payouts":
        _payouts(s, (Payout.id > lo) & (Payout.id <= hi), a, 1)
    else:  # refunds: take back the order and its payouts
        refunded = select(LedgerTxn.order_id).where(LedgerTxn.id > lo, LedgerTxn.id <= hi,
                                                    LedgerTxn.kind == "refund")
        _orders(s, Order.id.in_(refunded), a, -1)
        _payouts(s, Payout.order_id.in_(refunded), a, -1)


def _upsert(s: Session, table: Table, keys: Iterable[str], rows: list[dict[str, Any]],
            merge: dict[str, Any] | None = None) -> None:
    """Add `rows` into `table`: a new key is inserted, an existing one gets its figures added (or
    `merge`'s expressions of the stored and the excluded row)."""
    if not rows:
        return
    name = s.get_bind().dialect.name
    ins = (sqlite.insert(table) if name == "sqlite" else postgresql.insert(table))
    keys = list(keys)
    sets = {c: table.c[c] + ins.excluded[c] for c in rows[0] if c not in keys}
    if merge:
        sets.update({c: f(table.c[c], ins.excluded[c], name) for c, f in merge.items()})
    s.execute(ins.on_conflict_do_update(index_elements=keys, set_=sets), rows)


def _table(model: Any) -> Table:
    t: Table = model.__table__
    return t


def _lowest(a: Any, b: Any, dialect: str) -> Any:
    return func.min(a, b) if dialect == "sqlite" else func.least(a, b)


def _highest(a: Any, b: Any, dialect: str) -> Any:
    return func.max(a, b) if dialect == "sqlite" else func.greatest(a, b)


def _write(s: Session, a: _Adds) -> None:
    _upsert(s, _table(RollupDeviceDay), ("campaign_id", "day_ms", "device_id"),
            [{"campaign_id": c, "day_ms": d, "device_id": dev, **dict(zip(FIGURES, v, strict=True))}
             for (c, d, dev), v in a.days.items()])
    _upsert(s, _table(RollupCampaignHour), ("campaign_id", "hour_ms"),
            [{"campaign_id": c, "hour_ms": h, **dict(zip(FIGURES, v, strict=True))}
             for (c, h), v in a.hours.items()])
    _upsert(s, _table(RollupDepthDay), ("campaign_id", "day_ms", "depth"),
            [{"campaign_id": c, "day_ms": d, "depth": k, "entries": n} for (c, d, k), n in a.depths.items()])
    _upsert(s, _table(RollupSharerDay), ("campaign_id", "day_ms", "participant_id"),
            [{"campaign_id": c, "day_ms": d, "participant_id": p,
              **dict(zip(("entries", "orders", "payouts", "earned_minor"), v, strict=True))}
             for (c, d, p), v in a.sharers.items()])
    _upsert(s, _table(RollupDeviceEpoch), ("device_id", "epoch"), a.epochs,
            {"min_seq": _lowest, "max_seq": _highest, "last_received_ms": _highest})


def _max_id(s: Session, source: str, dialect: str) -> int:
    return int(s.scalar(select(func.max(_id(source, dialect))).select_from(TABLES[source])) or 0)


def _locked_max_id(sf: SessionFactory, source: str) -> int:
    """PostgreSQL: max(id) once no transaction writing the table is open (see the module's doc)."""
    with sf.begin() as s:
        s.execute(text(f"LOCK TABLE {TABLES[source].__tablename__} IN SHARE MODE"))  # a constant name
        return _max_id(s, source, "postgresql")


def roll(sf: SessionFactory) -> dict[str, int]:
    """Bring the rollups up to every row stored so far; returns how far each source's watermark
    moved (ids, 0 for none). Idempotent, and safe with several processes rolling at once."""
    with sf() as s:  # unlocked: ids at or below a watermark never change, so this can only be early
        dialect = s.get_bind().dialect.name
        seen = {k: v for k, v in s.execute(select(RollupState.source, RollupState.rolled_id))}
        visible = {src: _max_id(s, src, dialect) for src in SOURCES}
    if len(seen) < len(SOURCES):
        with sf.begin() as s:
            insert_ignore(s, _table(RollupState), [{"source": src, "rolled_id": 0} for src in SOURCES],
                          ("source",))
        seen = dict.fromkeys(SOURCES, 0) | seen
    todo = [src for src in SOURCES if visible[src] > seen[src]]
    if not todo:
        return dict.fromkeys(SOURCES, 0)
    horizon = {src: _locked_max_id(sf, src) for src in todo} if dialect == "postgresql" else {}
    moved = dict.fromkeys(SOURCES, 0)
    with sf.begin() as s:
        # the watermark rows: the write lock on SQLite, row locks on PostgreSQL (a second roller waits)
        s.execute(update(RollupState).where(RollupState.source.in_(todo))
                  .values(rolled_id=RollupState.rolled_id))
        rolled = {k: v for k, v in s.execute(select(RollupState.source, RollupState.rolled_id)
                                             .where(RollupState.source.in_(todo)))}
        adds = _Adds()
        for src in todo:
            hi = horizon[src] if dialect == "postgresql" else _max_id(s, src, dialect)
            if hi > rolled[src]:
                _collect(s, src, rolled[src], hi, adds, dialect)
                s.execute(update(RollupState).where(RollupState.source == src).values(rolled_id=hi))
                moved[src] = hi - rolled[src]
        _write(s, adds)
    return moved


# ---- reading: what the dashboard asks of a period of whole days (hours for the series) ----------

def device_days(s: Session, mine: Any, start_ms: int, end_ms: int) -> dict[tuple[str | None, int], list[int]]:
    """FIGURES summed per (display or None, campaign) over the days in [start, end) of the campaigns
    `mine` (a select of campaign ids)."""
    t = RollupDeviceDay
    rows = s.execute(select(t.device_id, t.campaign_id, *[func.sum(getattr(t, f)) for f in FIGURES])
                     .where(t.campaign_id.in_(mine), t.day_ms >= start_ms, t.day_ms < end_ms)
                     .group_by(t.device_id, t.campaign_id))
    return {(r[0] or None, r[1]): [int(x or 0) for x in r[2:]] for r in rows}


def hour_totals(s: Session, mine: Any, start_ms: int, end_ms: int) -> dict[str, int]:
    t = RollupCampaignHour
    row = s.execute(select(*[func.coalesce(func.sum(getattr(t, f)), 0) for f in FIGURES])
                    .where(t.campaign_id.in_(mine), t.hour_ms >= start_ms, t.hour_ms < end_ms)).one()
    return {f: int(x) for f, x in zip(FIGURES, row, strict=True)}


def series_counts(s: Session, mine: Any, start_ms: int, end_ms: int,
                  bucket_ms: int) -> tuple[dict[int, int], dict[int, int]]:
    """Entries and orders per bucket index ((hour - start) // bucket) of [start, end)."""
    t = RollupCampaignHour
    i = (t.hour_ms - literal_column(str(int(start_ms)))) // literal_column(str(int(bucket_ms)))
    rows = s.execute(select(i, func.sum(t.entries), func.sum(t.orders))
                     .where(t.campaign_id.in_(mine), t.hour_ms >= start_ms, t.hour_ms < end_ms).group_by(i))
    entries, orders = {}, {}
    for k, e, o in rows:
        if e:
            entries[int(k)] = int(e)
        if o:
            orders[int(k)] = int(o)
    return entries, orders


def sharer_counts(s: Session, mine: Any, start_ms: int,
                  end_ms: int) -> tuple[dict[int, int], dict[int, int], dict[int, int], dict[int, int]]:
    """(entries brought, orders on them, earned, entries per depth) over the days in [start, end), as
    the live queries give them: a sharer is in `brought` with an entry, in `earned` with a payout."""
    t = RollupSharerDay
    brought, ordered, earned = {}, {}, {}
    for pid, e, o, n, x in s.execute(
            select(t.participant_id, func.sum(t.entries), func.sum(t.orders), func.sum(t.payouts),
                   func.sum(t.earned_minor))
            .where(t.campaign_id.in_(mine), t.day_ms >= start_ms, t.day_ms < end_ms)
            .group_by(t.participant_id)):
        if e:
            brought[pid] = int(e)
        if o:
            ordered[pid] = int(o)
        if n:
            earned[pid] = int(x)
    d = RollupDepthDay
    depth = {int(k): int(n) for k, n in s.execute(
        select(d.depth, func.sum(d.entries))
        .where(d.campaign_id.in_(mine), d.day_ms >= start_ms, d.day_ms < end_ms).group_by(d.depth)) if n}
    return brought, ordered, earned, depth


def event_totals(devices: Any) -> Any:
    """A subquery: per device among `devices` (a select of ids), its events and last receipt."""
    t = RollupDeviceEpoch
    return (select(t.device_id.label("device_id"), func.sum(t.events).label("events"),
                   func.max(t.last_received_ms).label("last"))
            .where(t.device_id.in_(devices)).group_by(t.device_id).subquery())
