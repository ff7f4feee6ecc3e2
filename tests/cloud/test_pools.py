"""The pool of one order (cloud/services/pools.py): fixed, or a share of the sale in basis points
with a cap; exact integer money, with the guarantees docs/rules.md ("Pools") states checked by
hypothesis, up to the 10^12 caps and sales of any size."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cloud.services.pools import MAX_POOL_BP, MAX_POOL_MINOR, pool_for
from cloud.services.rules import RED_BALLOON_RULE, split
from cloud.web.sales_pages import money

amounts = st.integers(min_value=1, max_value=2**63 - 1)  # what an order's amount column holds
bps = st.integers(min_value=0, max_value=MAX_POOL_BP)
caps = st.none() | st.integers(min_value=0, max_value=MAX_POOL_MINOR)
fixed = st.integers(min_value=0, max_value=MAX_POOL_MINOR)


@given(amounts, fixed)
def test_a_fixed_pool_ignores_the_sale(amount: int, pool: int) -> None:
    assert pool_for(amount, pool) == pool == pool_for(1, pool)


@given(amounts, fixed, bps, caps)
def test_share_is_the_floor_of_the_exact_share_then_capped(amount: int, pool: int, bp: int,
                                                           cap: int | None) -> None:
    got = pool_for(amount, pool, bp, cap)
    exact = Fraction(amount * bp, 10_000)
    limit = MAX_POOL_MINOR if cap is None else cap
    assert got == min(int(exact), limit)  # int() of a non-negative Fraction is its floor
    assert 0 <= got <= limit <= MAX_POOL_MINOR
    assert got <= exact < got + 1 or got == limit  # never above the stated share, less than 1 below


@given(amounts, amounts, bps, caps)
def test_monotonic_in_the_sale(a: int, b: int, bp: int, cap: int | None) -> None:
    lo, hi = sorted((a, b))
    assert pool_for(lo, 0, bp, cap) <= pool_for(hi, 0, bp, cap)


@given(amounts, bps, bps, caps)
def test_monotonic_in_the_rate_and_cap(amount: int, bp1: int, bp2: int, cap: int | None) -> None:
    lo, hi = sorted((bp1, bp2))
    assert pool_for(amount, 0, lo, cap) <= pool_for(amount, 0, hi, cap)
    if cap is not None:
        assert pool_for(amount, 0, hi, cap) <= pool_for(amount, 0, hi, cap + 1)


@given(amounts, bps, caps, st.integers(min_value=0, max_value=80),
       st.none() | st.integers(min_value=0, max_value=MAX_POOL_MINOR))
def test_split_of_a_share_pool_sums_to_it(amount: int, bp: int, cap: int | None, depth: int,
                                          budget: int | None) -> None:
    """The pool then goes through the rule as a fixed pool does: parts sum to it exactly."""
    pool = pool_for(amount, 0, bp, cap)
    s = split(RED_BALLOON_RULE, pool, depth, budget_cap_minor=budget)
    assert sum(s.payouts) + s.remainder == pool and all(p >= 0 for p in s.payouts)
    assert budget is None or sum(s.payouts) <= budget


def test_edges() -> None:
    top = 2**63 - 1
    assert pool_for(top, 0, MAX_POOL_BP) == MAX_POOL_MINOR  # 100 % of the largest sale: the hard cap
    assert pool_for(top, 0, MAX_POOL_BP, 10**12) == 10**12
    assert pool_for(19_999, 0, 1) == 1 and pool_for(9_999, 0, 1) == 0  # floor, basis point by basis point
    assert pool_for(2_000, 7, 500) == 100  # with pool_bp set, pool_minor is not used
    assert pool_for(2_000, 7, 0) == 0


def test_docs_state_the_rule() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    assert "## Pools" in doc and "floor(amount_minor × pool_bp / 10000)" in doc


def test_money_is_formatted_exactly() -> None:
    assert money(2000) == "¥20.00" and money(5) == "¥0.05" and money(-123456) == "-¥1,234.56"
    assert money(2000, "JPY") == "¥2,000" and money(199, "USD") == "$1.99" and money(100, "CHF") == "CHF 1.00"
    assert money(10**12) == "¥10,000,000,000.00"
