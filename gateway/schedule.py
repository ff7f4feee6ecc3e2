"""Which devices a sweep pulls first, and how long a failing device waits: the fleet policy.

No radio here, so it is unit-testable on its own (tests/gateway/test_schedule.py); the
collector feeds it what INFO said at each look and asks it for an order.

- **Priority**: a device whose log is likely near full goes first. The firmware's log holds
  `capacity` records (4096, firmware/scanlog.py) and drops its oldest segment when full, so a
  device that dropped records since the last look, or whose predicted backlog reaches
  `near_full` of capacity, is urgent; the fuller first.
- **Fairness**: the rest go oldest last successful pull first (never pulled before all), so a
  device never waits behind others pulled more recently. A sweep pulls every due device, so
  priority only changes who goes first, never who goes at all.
- **Back-off**: a failing device waits `base * 2**(failures - 1)` (at most `max`) times a jitter
  factor in [0.5, 1.5), so devices that failed together do not retry together.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

LOG_CAPACITY = 4096  # records a display's scan log holds (firmware/scanlog.py CAPACITY)


@dataclass(frozen=True)
class Policy:
    capacity: int = LOG_CAPACITY
    near_full: float = 0.5  # fraction of capacity from which a device is served first
    backoff_base_s: float = 5.0
    backoff_max_s: float = 300.0


@dataclass
class LogWatch:
    """How full one device's log is likely to be now, from what INFO said at the gateway's looks.

    Times are the collector's monotonic clock. `rate` needs two looks; with one, the backlog seen
    then stands in for what the device logs between sweeps (a device found near full is assumed
    to fill that fast again until a second look says otherwise)."""

    seen_at: float | None = None  # when INFO was last read
    head: int = 0  # head seq then
    acked: int = 0  # acked seq then, raised by our ACK
    seen_backlog: int = 0  # head - acked as INFO said, before we pulled
    dropped: int = 0  # the device's drop counter then
    new_drops: int = 0  # how much it rose at the last look (the whole count at the first)
    rate: float | None = None  # records logged per second between the last two looks

    def look(self, now: float, head: int, acked: int, dropped: int) -> None:
        """INFO was read at `now`."""
        if self.seen_at is not None and head >= self.head and now > self.seen_at:
            self.rate = (head - self.head) / (now - self.seen_at)
        elif self.seen_at is not None:
            self.rate = None  # head went back (reflashed) or no time passed: start over
        self.new_drops = max(0, dropped - self.dropped) if self.seen_at is not None else dropped
        self.seen_at, self.head, self.acked, self.dropped = now, head, acked, dropped
        self.seen_backlog = max(0, head - acked)

    def acked_through(self, seq: int) -> None:
        """Our ACK (or the READ's head) moved the device's acked seq."""
        self.acked = max(self.acked, min(seq, self.head))

    def predicted(self, now: float) -> float:
        """Records likely unacked on the device at `now` (0 if never seen)."""
        if self.seen_at is None:
            return 0.0
        left = max(0, self.head - self.acked)
        if self.rate is None:
            return float(max(left, self.seen_backlog))
        return left + self.rate * max(0.0, now - self.seen_at)

    def unexplained_gaps(self, gaps: Iterable[tuple[int, int, int]], read_from: int) -> dict[int, int]:
        """Missing seqs per epoch from a pull's gaps [(epoch, seq before, seq after)], less what
        the device's own drops at this look explain: a dropped segment shows as a gap right at
        the start of the read and nowhere else."""
        out: dict[int, int] = {}
        budget = self.new_drops
        for epoch, before, after in gaps:
            missing = after - before - 1
            if before == read_from - 1:
                explained = min(missing, budget)
                budget -= explained
                missing -= explained
            if missing > 0:
                out[epoch] = out.get(epoch, 0) + missing
        return out


def urgency(w: LogWatch, now: float, p: Policy) -> float:
    """Predicted fill as a fraction of capacity; 1.0 or more for a device that dropped records
    at the last look (it fills faster than it is pulled)."""
    fill = w.predicted(now) / max(1, p.capacity)
    return max(fill, 1.0) if w.new_drops else fill


def is_urgent(w: LogWatch, now: float, p: Policy) -> bool:
    return urgency(w, now, p) >= p.near_full


@dataclass(frozen=True)
class Due:
    key: Hashable
    last_ok: float | None  # when last pulled successfully (any clock; only compared)
    watch: LogWatch


def order(due: Iterable[Due], now: float, p: Policy) -> list[Due]:
    """Urgent devices first, the fullest first; then the rest, oldest successful pull first
    (never pulled first of all); ties by key, so the order is deterministic."""
    def sort_key(d: Due) -> tuple[int, float, float, str]:
        u = urgency(d.watch, now, p)
        if u >= p.near_full:
            return (0, -u, 0.0, str(d.key))
        return (1, 0.0, float("-inf") if d.last_ok is None else d.last_ok, str(d.key))

    return sorted(due, key=sort_key)


def backoff(failures: int, p: Policy, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `failures` consecutive failures (>= 1), jittered by [0.5, 1.5)."""
    n = max(1, failures)
    base = min(p.backoff_max_s, p.backoff_base_s * 2.0 ** min(n - 1, 60))
    return base * (0.5 + rand())
