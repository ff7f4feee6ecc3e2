"""The Red Balloon rule: halving up the share chain, the remainder to charity, exact in minor units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.rules import RED_BALLOON, red_balloon, split

pools = st.integers(min_value=0, max_value=10**15)
depths = st.integers(min_value=0, max_value=80)


@given(pools, depths)
def test_sum_is_pool_and_parts_non_negative(pool: int, depth: int) -> None:
    s = red_balloon(pool, depth)
    assert len(s.payouts) == depth
    assert all(p >= 0 for p in s.payouts) and s.charity >= 0
    assert sum(s.payouts) + s.charity == pool


@given(pools, depths)
def test_deterministic(pool: int, depth: int) -> None:
    assert red_balloon(pool, depth) == red_balloon(pool, depth) == split(RED_BALLOON, pool, depth)


@given(pools, depths)
def test_halving_closest_first(pool: int, depth: int) -> None:
    s = red_balloon(pool, depth)
    for level, amount in enumerate(s.payouts, start=1):
        assert amount == pool // 2**level
    assert all(a >= b for a, b in zip(s.payouts, s.payouts[1:], strict=False))


@given(pools)
def test_depth_zero_all_to_charity(pool: int) -> None:
    s = red_balloon(pool, 0)
    assert s.payouts == () and s.charity == pool


def test_darpa_example() -> None:
    # $4,000 a balloon: finder's inviter chain 2000, 1000, 500, rest to charity
    s = red_balloon(400_000, 3)
    assert s.payouts == (200_000, 100_000, 50_000) and s.charity == 50_000


def test_refuses_negative_and_unknown_rule() -> None:
    with pytest.raises(ValueError):
        red_balloon(-1, 1)
    with pytest.raises(ValueError):
        red_balloon(1, -1)
    with pytest.raises(ValueError):
        split("pyramid", 100, 1)
