"""Gaps in a device's log: sequence numbers missing between consecutive received events.

A device numbers its records with one log-wide seq that never goes back (docs/protocol.md), so in
(epoch, seq) order each stored event should follow the previous one by 1; a larger step means
records not (yet) received. A seq that goes backwards (a device that lost its counter) is no gap.
A gap filled later (a late batch) disappears, since this is computed from what is stored."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Subquery, case, func, select

from cloud.store.engine import SessionFactory
from cloud.store.models import Event


def _steps(where: ColumnElement[bool]) -> Subquery:
    prev = func.lag(Event.seq).over(partition_by=Event.device_id, order_by=(Event.epoch, Event.seq))
    return (select(Event.device_id.label("device_id"), Event.seq.label("seq"), prev.label("prev"))
            .where(where).subquery())


def gap_counts(sf: SessionFactory, where: ColumnElement[bool]) -> dict[str, int]:
    """Missing records per device among the events matching `where` (devices without a gap: 0 or
    absent)."""
    sub = _steps(where)
    gap = case((sub.c.seq > sub.c.prev + 1, sub.c.seq - sub.c.prev - 1), else_=0)
    with sf() as s:
        return {r[0]: int(r[1] or 0) for r in s.execute(
            select(sub.c.device_id, func.sum(gap)).group_by(sub.c.device_id))}


def gap_ranges(sf: SessionFactory, device_ids: list[str],
               limit: int = 100) -> dict[str, list[tuple[int, int]]]:
    """The missing seq ranges (first, last), inclusive, of each device, lowest first, at most
    `limit` per device; devices without a gap map to []."""
    sub = _steps(Event.device_id.in_(device_ids))
    out: dict[str, list[tuple[int, int]]] = {d: [] for d in device_ids}
    with sf() as s:
        for dev, prev, seq in s.execute(
                select(sub.c.device_id, sub.c.prev, sub.c.seq).where(sub.c.seq > sub.c.prev + 1)
                .order_by(sub.c.device_id, sub.c.prev)):
            if len(out[dev]) < limit:
                out[dev].append((int(prev) + 1, int(seq) - 1))
    return out
