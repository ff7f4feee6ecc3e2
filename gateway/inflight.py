"""The uplink's in-flight window: how many batches may be published and not yet acked by the cloud.

Delay-based AIMD. The round trip of a batch (publish to the cloud's ack) is flat while the path
(broker, cloud, database) keeps up, and climbs once batches queue somewhere. So, once per round
(as many acks as the window held when the round began):

- round trip within `GROW_BELOW` of the base (the least round trip of recent rounds): grow, by
  doubling until it first climbs (slow start), then by `STEP` per round (additive increase);
- round trip past `SHRINK_ABOVE` times the base: shrink to `SHRINK_TO` of the window
  (multiplicative decrease); in between, hold;
- a batch resent after `republish_after_s` (lost, or the cloud is stuck): halve at once.

Only batches sent once give samples (Karn): an ack of a resent batch may answer either send.
The window stays within [lo, hi]; `hi` is the operator's cap (`[mqtt] max_inflight`), and the
uplink also stops at `[mqtt] max_inflight_bytes` of payload (paho holds in-flight batches in RAM).
No clock here: callers pass `now`, so tests drive it with numbers.
"""

from __future__ import annotations

from collections import deque

START = 20  # the fixed window this replaces
GROW_BELOW = 1.25
SHRINK_ABOVE = 2.0
SHRINK_TO = 0.75
STEP = 2
BASE_ROUNDS = 16  # the base is the least round trip of this many recent rounds


class InflightWindow:
    def __init__(self, lo: int = 4, hi: int = 128, start: int = START) -> None:
        if not 1 <= lo <= hi:
            raise ValueError(f"window bounds must satisfy 1 <= lo <= hi (got {lo}, {hi})")
        self.lo, self.hi = lo, hi
        self.size = min(max(start, lo), hi)
        self.slow_start = True
        self.grows = self.shrinks = 0
        self._sent: dict[int, float] = {}  # bseq -> send time, batches sent exactly once
        self._resent: set[int] = set()
        self._samples: list[float] = []
        self._round_len = self.size
        self._recent: deque[float] = deque(maxlen=BASE_ROUNDS)  # each round's mean round trip
        self.last_rtt: float | None = None  # the last round's mean, seconds

    @property
    def base(self) -> float | None:
        return min(self._recent) if self._recent else None

    def sent(self, bseq: int, now: float) -> None:
        """Batch bseq was published at `now` (a second publish of it makes it unsampled)."""
        if bseq in self._sent or bseq in self._resent:
            self._sent.pop(bseq, None)
            self._resent.add(bseq)
        else:
            self._sent[bseq] = now

    def timed_out(self) -> None:
        """Batches went unacked for `republish_after_s`: halve (the caller resends them)."""
        self._resize(max(self.lo, self.size // 2))
        self.slow_start = False

    def acked(self, bseq: int, now: float) -> None:
        """The cloud acked batch bseq at `now`."""
        self._resent.discard(bseq)
        t = self._sent.pop(bseq, None)
        if t is None:
            return
        self._samples.append(max(0.0, now - t))
        if len(self._samples) >= self._round_len:
            self._end_round()

    def forget(self) -> None:
        """The connection dropped: nothing in flight any more (the window keeps its size)."""
        self._sent.clear()
        self._resent.clear()
        self._samples.clear()

    def _end_round(self) -> None:
        rtt = sum(self._samples) / len(self._samples)
        self._samples.clear()
        self.last_rtt = rtt
        self._recent.append(rtt)
        base = min(self._recent)
        if rtt > SHRINK_ABOVE * base:
            self.slow_start = False
            self._resize(max(self.lo, int(self.size * SHRINK_TO)))
        elif rtt <= GROW_BELOW * base:
            self._resize(min(self.hi, self.size * 2 if self.slow_start else self.size + STEP))
        else:
            self.slow_start = False  # it has begun to climb: from here on, step by step
        self._round_len = self.size

    def _resize(self, size: int) -> None:
        if size > self.size:
            self.grows += 1
        elif size < self.size:
            self.shrinks += 1
        self.size = size
        self._round_len = size
