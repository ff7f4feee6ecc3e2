"""Reward rules: red-balloon halving, fixed levels, geometric; exact in minor units, capped, with
the guarantees docs/rules.md states checked by hypothesis."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.services.rules import (
    BP,
    CHARITY,
    FIXED_LEVELS,
    GEOMETRIC,
    MAX_DEPTH,
    MERCHANT,
    RED_BALLOON,
    RED_BALLOON_RULE,
    SYBIL_DOC_ARGS,
    Split,
    red_balloon,
    split,
    sybil_table,
    sybil_take,
)

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


# --- every rule: the guarantees docs/rules.md states -------------------------------------------

caps = st.none() | st.integers(min_value=0, max_value=10**15)
levels_bp = st.lists(st.integers(min_value=0, max_value=BP), min_size=1, max_size=12).filter(
    lambda ls: sum(ls) <= BP)
fractions = st.fractions(min_value=0, max_value=1, max_denominator=1000)
geo_params = st.tuples(fractions, fractions).filter(
    lambda ab: 0 < ab[0] and 0 < ab[1] < 1 and ab[0] / (1 - ab[1]) <= 1)
rule_params = st.one_of(
    st.tuples(st.sampled_from([RED_BALLOON_RULE, RED_BALLOON]), st.just({})),
    st.tuples(st.just(FIXED_LEVELS), levels_bp.map(lambda ls: {"levels_bp": ls})),
    st.tuples(st.just(GEOMETRIC), geo_params.map(lambda ab: {"a": ab[0], "b": ab[1]})),
)


@settings(max_examples=300)
@given(rule_params, pools, depths, caps)
def test_every_rule_exact_non_negative_capped_deterministic(
        rp: tuple[str, dict[str, Any]], pool: int, depth: int, cap: int | None) -> None:
    rule, params = rp
    s = split(rule, pool, depth, params, cap)
    assert len(s.payouts) == depth
    assert all(isinstance(p, int) and p >= 0 for p in s.payouts)
    assert isinstance(s.remainder, int) and s.remainder >= 0
    assert sum(s.payouts) + s.remainder == pool
    assert cap is None or sum(s.payouts) <= cap
    assert s.remainder_to == (MERCHANT if rule == FIXED_LEVELS else CHARITY)
    assert split(rule, pool, depth, params, cap) == s


@given(rule_params, pools, depths, caps)
def test_cap_fills_closest_first_and_only_trims(
        rp: tuple[str, dict[str, Any]], pool: int, depth: int, cap: int | None) -> None:
    rule, params = rp
    free = split(rule, pool, depth, params).payouts
    capped = split(rule, pool, depth, params, cap).payouts
    assert all(c <= f for c, f in zip(capped, free, strict=True))
    if cap is None or sum(free) <= cap:
        assert capped == free
    else:
        assert sum(capped) == cap  # the cap is used up, not left partly idle
        cut = next(i for i, (c, f) in enumerate(zip(capped, free, strict=True)) if c < f)
        assert capped[:cut] == free[:cut] and all(c == 0 for c in capped[cut + 1:])


@given(pools, depths, caps)
def test_red_balloon_each_level_at_most_half_the_previous(pool: int, depth: int, cap: int | None) -> None:
    s = split(RED_BALLOON_RULE, pool, depth, budget_cap_minor=cap)
    assert all(2 * b <= a for a, b in zip(s.payouts, s.payouts[1:], strict=False))
    assert s.payouts[:1] == () or 2 * s.payouts[0] <= pool


@given(levels_bp, pools, depths)
def test_fixed_levels_exact_percentages(levels: list[int], pool: int, depth: int) -> None:
    s = split(FIXED_LEVELS, pool, depth, {"levels_bp": levels})
    for i, amount in enumerate(s.payouts):
        assert amount == (pool * levels[i] // BP if i < len(levels) else 0)
    assert s.remainder >= pool * (BP - sum(levels)) // BP  # the merchant keeps at least its part


@given(geo_params, pools, depths)
def test_geometric_formula_and_budget_bound(ab: tuple[Fraction, Fraction], pool: int, depth: int) -> None:
    a, b = ab
    s = split(GEOMETRIC, pool, depth, {"a": a, "b": b})
    for i, amount in enumerate(s.payouts):
        assert amount == math.floor(pool * a * b**i)
    assert all(x >= y for x, y in zip(s.payouts, s.payouts[1:], strict=False))
    assert sum(s.payouts) <= pool * a / (1 - b) <= pool


def test_geometric_half_half_is_red_balloon() -> None:
    assert split(GEOMETRIC, 400_000, 5, {"a": "1/2", "b": "0.5"}).payouts == red_balloon(400_000, 5).payouts


def test_worked_examples() -> None:
    assert split(FIXED_LEVELS, 400_000, 4, {"levels_bp": "1000,200,100"}) == Split(
        (40_000, 8_000, 4_000, 0), 348_000, MERCHANT)
    assert split(GEOMETRIC, 400_000, 3, {"a": "0.3", "b": "0.5"}) == Split((120_000, 60_000, 30_000), 190_000)
    assert split(RED_BALLOON_RULE, 400_000, 3, budget_cap_minor=250_000) == Split(
        (200_000, 50_000, 0), 150_000)
    assert red_balloon(10**15, MAX_DEPTH).payouts[-1] == 0


@pytest.mark.parametrize("rule, params, message", [
    (FIXED_LEVELS, {"levels_bp": [6000, 5000]}, "more than the whole pool"),
    (FIXED_LEVELS, {"levels_bp": "10,x"}, "comma-separated integers"),
    (FIXED_LEVELS, {"levels_bp": []}, "1 to 100 levels"),
    (FIXED_LEVELS, {"levels_bp": [-1]}, "each level must be 0 to 10000"),
    (GEOMETRIC, {"a": "0.6", "b": "0.5"}, "budget bound"),
    (GEOMETRIC, {"a": "0", "b": "0.5"}, "a must be in"),
    (GEOMETRIC, {"a": "0.1", "b": "1"}, "b must be in"),
    (GEOMETRIC, {"a": "abc", "b": "0.5"}, "a must be a number"),
    (GEOMETRIC, {"a": "1/3000001", "b": "0.5"}, "too fine"),
    (RED_BALLOON_RULE, {"a": "0.5"}, "takes no parameter a"),
    (GEOMETRIC, {"levels_bp": [1]}, "takes no parameter levels_bp; it takes a, b"),
])
def test_bad_params_are_clear_value_errors(rule: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split(rule, 100, 3, params)


def test_bad_pool_depth_cap() -> None:
    for pool, depth, cap in ((True, 1, None), (1.5, 1, None), (1, MAX_DEPTH + 1, None), (1, 1, -1)):
        with pytest.raises(ValueError):
            split(RED_BALLOON_RULE, pool, depth, budget_cap_minor=cap)  # type: ignore[arg-type]


# --- docs/rules.md: its sybil table is what the rules compute ----------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
BEGIN, END = "<!-- sybil-table:begin -->\n", "<!-- sybil-table:end -->"


def test_doc_sybil_table_matches_the_rules() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert table == sybil_table(*SYBIL_DOC_ARGS)


def test_sybil_gains_under_each_rule() -> None:
    # what the doc's prose claims: red-balloon and geometric pay for fakes, fixed-levels only until
    # the levels run out
    takes = {r: [sybil_take(r, 400_000, 3, k, p)["attacker"] for k in range(4)]
             for r, p in SYBIL_DOC_ARGS[3]}
    assert takes[RED_BALLOON_RULE] == [200_000, 300_000, 350_000, 375_000]
    assert takes[FIXED_LEVELS] == [40_000, 48_000, 52_000, 52_000]
    assert takes[GEOMETRIC] == [120_000, 180_000, 210_000, 225_000]
