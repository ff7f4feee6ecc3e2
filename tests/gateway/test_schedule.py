"""The fleet policy (gateway.schedule) on its own: order, priority, fairness, back-off, gaps."""

from __future__ import annotations

import random

import pytest

from gateway.schedule import Due, LogWatch, Policy, backoff, is_urgent, order

P = Policy(capacity=4096, near_full=0.5, backoff_base_s=5.0, backoff_max_s=300.0)


def watch(*looks: tuple[float, int, int, int]) -> LogWatch:
    """A LogWatch after INFO looks (time, head, acked, dropped)."""
    w = LogWatch()
    for t, head, acked, dropped in looks:
        w.look(t, head, acked, dropped)
    return w


def keys(ds: list[Due]) -> list[object]:
    return [d.key for d in ds]


def test_never_pulled_first_then_oldest_successful_pull_first() -> None:
    due = [Due("b", 30.0, watch()), Due("a", 10.0, watch()), Due("n2", None, watch()),
           Due("c", 20.0, watch()), Due("n1", None, watch())]
    assert keys(order(due, 100.0, P)) == ["n1", "n2", "a", "c", "b"]


def test_a_device_found_near_full_goes_first_the_fullest_first() -> None:
    # One look each: what INFO said (backlog before the pull) stands in for the fill rate.
    near = watch((50.0, 3000, 0, 0))
    nearer = watch((50.0, 3900, 100, 0))
    quiet = watch((50.0, 40, 0, 0))
    for w in (near, nearer, quiet):
        w.acked_through(w.head)  # pulled to the end
    due = [Due("old", 1.0, watch()), Due("quiet", 50.0, quiet), Due("near", 50.0, near),
           Due("never", None, watch()), Due("nearer", 50.0, nearer)]
    assert keys(order(due, 60.0, P)) == ["nearer", "near", "never", "old", "quiet"]
    assert is_urgent(near, 60.0, P) and not is_urgent(quiet, 60.0, P)


def test_new_drops_make_a_device_urgent_until_a_look_without_new_ones() -> None:
    w = watch((0.0, 4353, 0, 256))  # first look: it already dropped a segment
    w.acked_through(4353)
    assert w.new_drops == 256 and is_urgent(w, 1.0, P)
    w.look(10.0, 4360, 4353, 256)  # no new drops, slow since
    w.acked_through(4360)
    assert w.new_drops == 0 and not is_urgent(w, 11.0, P)
    w.look(20.0, 4370, 4360, 512)  # dropped again: it outruns the sweeps
    assert w.new_drops == 256 and is_urgent(w, 21.0, P)
    due = [Due("never", None, watch()), Due("dropper", 20.0, w)]
    assert keys(order(due, 21.0, P)) == ["dropper", "never"]


def test_fill_rate_from_two_looks_predicts_when_a_device_gets_near_full() -> None:
    w = watch((0.0, 100, 0, 0), (10.0, 200, 100, 0))  # 10 records/s
    w.acked_through(200)
    assert w.rate == pytest.approx(10.0)
    assert w.predicted(110.0) == pytest.approx(1000.0)
    assert not is_urgent(w, 110.0, P)  # 1000 of 4096
    assert w.predicted(220.0) == pytest.approx(2100.0)
    assert is_urgent(w, 220.0, P)  # past half of the log
    # A pull that failed after INFO left the backlog on the device: it counts.
    f = watch((0.0, 100, 0, 0), (10.0, 2150, 100, 0))
    assert f.predicted(10.0) == pytest.approx(2050.0) and is_urgent(f, 10.0, P)


def test_a_log_that_went_back_forgets_its_rate() -> None:
    w = watch((0.0, 100, 0, 0), (10.0, 3000, 100, 0))
    assert w.rate is not None
    w.look(20.0, 5, 0, 0)  # reflashed: head below what it was
    assert w.rate is None and w.predicted(30.0) == 5.0


def test_no_device_starves_when_sweeps_cannot_pull_everyone() -> None:
    """Sweeps that reach only 3 of 10 devices, one of them urgent every time: every device is
    still pulled within ceil(9 / 2) sweeps of its last pull."""
    last_ok: dict[str, float | None] = {f"d{i}": None for i in range(10)}
    hot = watch((0.0, 4000, 0, 0))  # always found near full again
    waited = {k: 0 for k in last_ok}
    worst = 0
    for sweep in range(1, 40):
        due = [Due(k, v, hot if k == "d0" else watch()) for k, v in last_ok.items()]
        pulled = keys(order(due, float(sweep), P))[:3]
        assert pulled[0] == "d0"
        for k in last_ok:
            waited[k] = 0 if k in pulled else waited[k] + 1
            worst = max(worst, waited[k])
        for k in pulled:
            last_ok[str(k)] = float(sweep)
    assert worst <= 4  # 9 others, 2 places a sweep: each waits at most 4 sweeps


def test_backoff_grows_is_capped_and_jittered() -> None:
    lo, hi = (lambda: 0.0), (lambda: 0.999999)
    assert [backoff(n, P, lo) for n in (1, 2, 3, 4)] == [2.5, 5.0, 10.0, 20.0]
    assert backoff(1, P, hi) == pytest.approx(7.5, rel=1e-5)
    assert backoff(50, P, lo) == 150.0 and backoff(50, P, hi) == pytest.approx(450.0, rel=1e-5)
    assert backoff(10_000, P, lo) == 150.0  # no overflow on a long outage
    # Devices that failed together retry apart.
    rng = random.Random(4)
    waits = [backoff(1, P, rng.random) for _ in range(30)]
    assert all(2.5 <= w < 7.5 for w in waits)
    assert len(set(waits)) == 30
    assert max(waits) - min(waits) > 2.5  # spread over more than half the window


def test_gaps_at_the_start_of_a_read_are_explained_by_new_drops_only() -> None:
    w = watch((0.0, 600, 0, 256))  # dropped 256 since we last looked (first look: all of them)
    # Read from 1: the first record was 257 (the dropped segment), then one seq missing mid-stream.
    gaps = [(2, 0, 257), (2, 300, 302)]
    assert w.unexplained_gaps(gaps, read_from=1) == {2: 1}
    # More missing at the start than the device says it dropped: the rest is a real gap.
    assert w.unexplained_gaps([(2, 0, 260)], read_from=1) == {2: 3}
    # No drops: every missing seq counts, by the epoch of the record after it.
    q = watch((0.0, 50, 0, 0))
    assert q.unexplained_gaps([(1, 9, 11), (2, 20, 23)], read_from=5) == {1: 1, 2: 2}
