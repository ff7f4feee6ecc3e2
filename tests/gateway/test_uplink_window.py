"""The uplink's adaptive in-flight window (gateway.inflight) on a fake clock: numbers in, sizes out."""

from __future__ import annotations

import pytest

from gateway.inflight import GROW_BELOW, SHRINK_ABOVE, STEP, InflightWindow


def _round(w: InflightWindow, now: float, rtt: float, first: int) -> tuple[float, int]:
    """Send a whole window at `now`, ack each `rtt` later; returns (the next now, the next bseq)."""
    n = w.size
    for b in range(first, first + n):
        w.sent(b, now)
    for b in range(first, first + n):
        w.acked(b, now + rtt)
    return now + rtt, first + n


def test_grows_by_doubling_while_the_round_trip_is_flat_then_stops_at_the_cap() -> None:
    w = InflightWindow(lo=4, hi=100, start=20)
    now, b = 0.0, 0
    sizes = []
    for _ in range(5):
        now, b = _round(w, now, 0.020, b)
        sizes.append(w.size)
    assert sizes == [40, 80, 100, 100, 100]
    assert w.slow_start and w.shrinks == 0


def test_holds_when_it_climbs_a_little_then_steps_additively() -> None:
    w = InflightWindow(lo=4, hi=1000, start=20)
    now, b = _round(w, 0.0, 0.020, 0)  # base 20 ms: 20 -> 40
    now, b = _round(w, now, 0.020 * (GROW_BELOW + 0.1), b)  # climbed, not doubled: hold, slow start ends
    assert (w.size, w.slow_start) == (40, False)
    now, b = _round(w, now, 0.020, b)  # flat again: one step, no more doubling
    assert w.size == 40 + STEP


def test_shrinks_multiplicatively_when_the_round_trip_climbs_and_never_below_lo() -> None:
    w = InflightWindow(lo=8, hi=200, start=64)
    now, b = _round(w, 0.0, 0.010, 0)
    grown = w.size
    sizes = []
    for _ in range(12):
        now, b = _round(w, now, 0.010 * (SHRINK_ABOVE + 1), b)
        sizes.append(w.size)
    assert sizes[0] == int(grown * 0.75) and sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 8 and w.shrinks >= 5 and not w.slow_start


def test_resent_batches_give_no_sample_and_a_timeout_halves() -> None:
    w = InflightWindow(lo=4, hi=200, start=20)
    for b in range(20):
        w.sent(b, 0.0)
    for b in range(20):
        w.sent(b, 30.0)  # all resent: their acks are ambiguous (Karn)
    w.timed_out()
    assert w.size == 10 and not w.slow_start
    for b in range(20):
        w.acked(b, 30.001)
    assert w.last_rtt is None and w.size == 10  # no round ended on ambiguous samples


def test_forget_drops_what_was_in_flight_but_keeps_the_size() -> None:
    w = InflightWindow(lo=4, hi=200, start=20)
    now, b = _round(w, 0.0, 0.02, 0)
    for x in range(b, b + w.size):
        w.sent(x, now)
    w.forget()
    for x in range(b, b + 40):
        w.acked(x, now + 5.0)  # acks of the lost connection's batches: no sample
    assert w.size == 40 and w.last_rtt == pytest.approx(0.02)


def test_bounds_are_checked_and_start_is_clamped() -> None:
    with pytest.raises(ValueError):
        InflightWindow(lo=0, hi=10)
    with pytest.raises(ValueError):
        InflightWindow(lo=10, hi=5)
    assert InflightWindow(lo=4, hi=8, start=20).size == 8
    assert InflightWindow(lo=4, hi=8, start=1).size == 4
