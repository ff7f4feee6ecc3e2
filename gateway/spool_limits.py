"""The spool's size limits: how full it is, how much more fits, and the alarm when it fills.

A full spool means the cloud has not confirmed batches for a long time. The gateway then stops
taking records from devices (they keep them in their own bounded logs, which count drops)
rather than deleting anything spooled. Crossing `warn_fraction` logs a warning so an operator
can act before that; `mcode gateway status` shows the same level.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

log = logging.getLogger(__name__)

OK, WARN, FULL = "ok", "warn", "full"
_LEVELS = (OK, WARN, FULL)
UNLIMITED = 1 << 62
GUESS_BYTES_PER_RECORD = 256  # until enough records are spooled to measure it


@dataclass(frozen=True)
class Limits:
    max_records: int | None = None  # unconfirmed records; None = no limit
    max_bytes: int | None = None  # database pages in use; None = no limit
    warn_fraction: float = 0.8


@dataclass(frozen=True)
class Fill:
    """How full the spool is against its limits."""

    records: int  # unconfirmed records
    bytes: int  # database pages in use (the WAL, reset at checkpoints, is not counted)
    limits: Limits

    @property
    def fraction(self) -> float:
        lim = self.limits
        return max(self.records / lim.max_records if lim.max_records else 0.0,
                   self.bytes / lim.max_bytes if lim.max_bytes else 0.0)

    @property
    def level(self) -> str:
        # Full when not one more record fits: the same test add_records applies.
        if self.room == 0:
            return FULL
        return WARN if self.fraction >= self.limits.warn_fraction else OK

    @property
    def room(self) -> int:
        """How many more records fit (UNLIMITED without limits)."""
        lim = self.limits
        room = UNLIMITED
        if lim.max_records:
            room = max(0, lim.max_records - self.records)
        if lim.max_bytes:
            # Bytes per record as spooled so far: row, index and its copy in a sealed batch.
            per = self.bytes // self.records if self.records >= 100 else GUESS_BYTES_PER_RECORD
            room = min(room, max(0, (lim.max_bytes - self.bytes) // max(1, per)))
        return room

    def as_dict(self) -> dict[str, object]:
        return {"records": self.records, "bytes": self.bytes, "max_records": self.limits.max_records,
                "max_bytes": self.limits.max_bytes, "warn_fraction": self.limits.warn_fraction,
                "fraction": round(self.fraction, 4), "level": self.level}


def measure(conn: sqlite3.Connection, limits: Limits, records: int) -> Fill:
    """The fill at `records` unconfirmed records (the spool keeps that count; counting the rows
    here would cost a table scan per call). The page counts are read from the file's header."""
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return Fill(records, (pages - free) * size, limits)


class FillAlarm:
    """Logs when the fill level changes: loud going up, quiet coming back down."""

    def __init__(self, limits: Limits) -> None:
        if not 0.0 < limits.warn_fraction <= 1.0:
            raise ValueError("warn_fraction must be in (0, 1]")
        self.limits = limits
        self.level = OK

    def note(self, f: Fill) -> None:
        level = f.level
        if level == self.level:
            return
        old, self.level = self.level, level
        extra = {"spool_fill": round(f.fraction, 4), "spool_records": f.records,
                 "spool_bytes": f.bytes, "alarm": level}
        pct = f"{100 * f.fraction:.0f}%"
        if level == FULL:
            log.error("SPOOL FULL (%s of its limit: %d records, %d bytes): not taking new records "
                      "from devices until the cloud confirms batches; the devices keep them", pct,
                      f.records, f.bytes, extra=extra)
        elif _LEVELS.index(level) > _LEVELS.index(old):
            log.warning("SPOOL %s FULL (%d records, %d bytes; warning from %d%%): the cloud is not "
                        "confirming batches as fast as devices log", pct, f.records, f.bytes,
                        round(100 * self.limits.warn_fraction), extra=extra)
        else:
            log.info("spool back to %s of its limit (%s)", pct, level, extra=extra)
