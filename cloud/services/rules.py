"""Reward rules (酬众规则): pure functions from (pool, chain depth, params) to payouts.

Every rule returns a `Split`: integer payouts in minor units, closest participant to the shopper
first, and a remainder with a named destination. Each payout is floored, everything left over goes
to the remainder, so sum(payouts) + remainder == pool exactly. An optional `budget_cap_minor` (the
campaign's remaining budget) caps the total paid out; the cap is filled from the shopper outwards
and the excess joins the remainder. The formulas and their guarantees are in docs/rules.md.
"""

from __future__ import annotations

import fractions
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

RED_BALLOON = "red_balloon"  # the name stored in campaigns made before the rules had dashes

RED_BALLOON_RULE = "red-balloon"
FIXED_LEVELS = "fixed-levels"
GEOMETRIC = "geometric"
RULE_NAMES = (RED_BALLOON_RULE, FIXED_LEVELS, GEOMETRIC)
ALIASES = {RED_BALLOON: RED_BALLOON_RULE}

CHARITY = "charity"
MERCHANT = "merchant"

BP = 10_000  # basis points in a whole
MAX_DEPTH = 10_000  # far beyond any real chain (orders bound chains at 1000); bounds a preview's work
MAX_LEVELS = 100
MAX_DENOMINATOR = 10**6  # a and b are exact fractions; this keeps their arithmetic small
# Parameters are matched against these before any arithmetic: Fraction("1e-15000000") builds a
# 15-million-digit integer (seconds of CPU, issue 12), so text never reaches Fraction unless short
# and plain. A decimal or a ratio of at most 7 digits each side covers every denominator allowed.
_NUMBER_TEXT = re.compile(r"\s*(?:[0-9]{1,7}(?:\.[0-9]{1,7})?|[0-9]{1,7}/[0-9]{1,7})\s*")
_NUMBER_TEXT_MAX = 32
_LEVEL_TEXT = re.compile(r"\s*[0-9]{1,5}\s*")
_LEVELS_TEXT_MAX = MAX_LEVELS * 8
DEFAULT_LEVELS_BP = (1000, 200, 100)  # 10 % / 2 % / 1 %
DEFAULT_A = Fraction(3, 10)
DEFAULT_B = Fraction(1, 2)

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Split:
    payouts: tuple[int, ...]  # closest-to-shopper first
    remainder: int
    remainder_to: str = CHARITY  # CHARITY or MERCHANT

    @property
    def charity(self) -> int:
        """The remainder under its first name (orders.py books it as the level-0 payout)."""
        return self.remainder


def canonical(rule: str) -> str:
    name = ALIASES.get(rule, rule)
    if name not in RULE_NAMES:
        raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULE_NAMES)}")
    return name


def _check_int(name: str, v: object, lo: int = 0, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be {lo} to {hi}, got {v}" if hi is not None
                         else f"{name} must be >= {lo}, got {v}")
    return v


def parse_levels_bp(v: object) -> tuple[int, ...]:
    """Levels in basis points, from a sequence of ints or a string like "1000,200,100"."""
    if isinstance(v, str):
        parts = v.split(",", MAX_LEVELS + 1) if len(v) <= _LEVELS_TEXT_MAX else None
        if parts is None or not all(_LEVEL_TEXT.fullmatch(x) or not x.strip() for x in parts):
            raise ValueError(f"levels_bp must be comma-separated integers, got {v[:40]!r}")
        items: Sequence[object] = [int(x) for x in parts if x.strip()]
    elif isinstance(v, Sequence):
        items = v
    else:
        raise ValueError(f"levels_bp must be a list of integers, got {str(v)[:40]!r}")
    if not 1 <= len(items) <= MAX_LEVELS:
        raise ValueError(f"levels_bp needs 1 to {MAX_LEVELS} levels, got {len(items)}")
    levels = tuple(_check_int("each level", x, 0, BP) for x in items)
    if sum(levels) > BP:
        raise ValueError(f"levels_bp sum to {sum(levels)} bp, more than the whole pool ({BP} bp)")
    return levels


def parse_fraction(name: str, v: object) -> Fraction:
    """An exact fraction from "0.3", "3/10", an int or a Fraction (floats go through their repr).
    Text must be a plain decimal or ratio (no exponent, at most 7 digits a side) and numbers must be
    small before any arithmetic, so a hostile value costs nothing (docs/security.md)."""
    fine = f"{name} must be a number like 0.3 or 3/10"
    # fractions.Fraction for the type test, Fraction (a name tests may watch) for construction
    if isinstance(v, bool) or not isinstance(v, str | int | float | fractions.Fraction):
        raise ValueError(f"{fine}, got {str(v)[:40]!r}")
    if isinstance(v, fractions.Fraction):
        f = v
    elif isinstance(v, int):
        if not -MAX_DENOMINATOR <= v <= MAX_DENOMINATOR:
            raise ValueError(f"{name} is out of range")
        f = Fraction(v)
    elif isinstance(v, float):
        if not math.isfinite(v):  # repr of a finite float is at most ~24 characters
            raise ValueError(f"{fine}, got {v!r}")
        f = Fraction(repr(v))
    else:
        if len(v) > _NUMBER_TEXT_MAX or not _NUMBER_TEXT.fullmatch(v):
            raise ValueError(f"{fine}, got {v[:40]!r}")
        try:
            f = Fraction(v)
        except ZeroDivisionError:
            raise ValueError(f"{fine}, got {v!r}") from None
    if f.denominator > MAX_DENOMINATOR:
        raise ValueError(f"{name} is too fine: denominator above {MAX_DENOMINATOR}")
    return f


def geometric_params(a: object, b: object) -> tuple[Fraction, Fraction]:
    fa, fb = parse_fraction("a", a), parse_fraction("b", b)
    if not 0 < fa <= 1:
        raise ValueError(f"a must be in (0, 1], got {fa}")
    if not 0 < fb < 1:
        raise ValueError(f"b must be in (0, 1), got {fb}")
    if fa / (1 - fb) > 1:
        raise ValueError(f"budget bound a/(1-b) <= 1 broken: a/(1-b) = {fa / (1 - fb)}")
    return fa, fb


def _check_pool_depth(pool_minor: object, depth: object) -> tuple[int, int]:
    return _check_int("pool", pool_minor), _check_int("depth", depth, 0, MAX_DEPTH)


def _finish(pool: int, raw: list[int], to: str, cap: int | None) -> Split:
    """Cap the total paid (closest first), pad to depth, the rest to `to`."""
    if cap is not None:
        left = _check_int("budget_cap_minor", cap)
        capped = []
        for p in raw:
            take = min(p, left)
            capped.append(take)
            left -= take
        raw = capped
    return Split(tuple(raw), pool - sum(raw), to)


def red_balloon(pool_minor: int, depth: int, budget_cap_minor: int | None = None) -> Split:
    """DARPA Red Balloon halving: level i (1 = closest to the shopper) gets floor(pool / 2^i);
    whatever is left goes to charity. Each level gets at most half the previous one."""
    pool, depth = _check_pool_depth(pool_minor, depth)
    # pool >> i is 0 from i > bit_length: stop shifting there so a deep chain costs nothing
    raw = [pool >> (level + 1) if level < pool.bit_length() else 0 for level in range(depth)]
    return _finish(pool, raw, CHARITY, budget_cap_minor)


def fixed_levels(pool_minor: int, depth: int, levels_bp: object = DEFAULT_LEVELS_BP,
                 budget_cap_minor: int | None = None) -> Split:
    """Fixed percentages: level i gets floor(pool * levels_bp[i-1] / 10000), levels past the list
    get 0; whatever is left goes back to the merchant."""
    pool, depth = _check_pool_depth(pool_minor, depth)
    levels = parse_levels_bp(levels_bp)
    raw = [pool * levels[i] // BP if i < len(levels) else 0 for i in range(depth)]
    return _finish(pool, raw, MERCHANT, budget_cap_minor)


def geometric(pool_minor: int, depth: int, a: object = DEFAULT_A, b: object = DEFAULT_B,
              budget_cap_minor: int | None = None) -> Split:
    """Geometric split: level i (1 = closest) gets floor(pool * a * b^(i-1)), with 0 < a <= 1,
    0 < b < 1 and the budget bound a / (1 - b) <= 1, so the total never exceeds the pool whatever
    the depth. The remainder goes to charity (as in red-balloon, which is a = b = 1/2)."""
    pool, depth = _check_pool_depth(pool_minor, depth)
    fa, fb = geometric_params(a, b)
    raw: list[int] = []
    num, den = pool * fa.numerator, fa.denominator  # pool * a * b^(i-1) == num / den, exactly
    for _ in range(depth):
        share = num // den
        raw.append(share)
        if share == 0:  # shares only shrink: the rest are 0 too
            break
        num, den = num * fb.numerator, den * fb.denominator
    raw += [0] * (depth - len(raw))
    return _finish(pool, raw, CHARITY, budget_cap_minor)


def normalized_params(rule: str, params: Params | None = None) -> dict[str, Any]:
    """The rule's parameters, validated, with defaults filled in, as JSON-ready values."""
    name = canonical(rule)
    p = dict(params or {})
    known = {RED_BALLOON_RULE: set(), FIXED_LEVELS: {"levels_bp"}, GEOMETRIC: {"a", "b"}}[name]
    extra = sorted(set(p) - known)
    if extra:
        raise ValueError(f"rule {name} takes no parameter {', '.join(extra)}"
                         + (f"; it takes {', '.join(sorted(known))}" if known else ""))
    if name == FIXED_LEVELS:
        return {"levels_bp": list(parse_levels_bp(p.get("levels_bp", DEFAULT_LEVELS_BP)))}
    if name == GEOMETRIC:
        fa, fb = geometric_params(p.get("a", DEFAULT_A), p.get("b", DEFAULT_B))
        return {"a": str(fa), "b": str(fb)}
    return {}


def split(rule: str, pool_minor: int, depth: int, params: Params | None = None,
          budget_cap_minor: int | None = None) -> Split:
    """Apply `rule` (a name in RULE_NAMES or an alias) with `params` to a pool and chain depth."""
    name = canonical(rule)
    p = normalized_params(name, params)
    rules: dict[str, Callable[[], Split]] = {
        RED_BALLOON_RULE: lambda: red_balloon(pool_minor, depth, budget_cap_minor),
        FIXED_LEVELS: lambda: fixed_levels(pool_minor, depth, p.get("levels_bp"), budget_cap_minor),
        GEOMETRIC: lambda: geometric(pool_minor, depth, p.get("a"), p.get("b"), budget_cap_minor),
    }
    return rules[name]()


def preview(rule: str, pool_minor: int, depth: int, params: Params | None = None,
            budget_cap_minor: int | None = None) -> dict[str, Any]:
    """What `mcode rules preview` and GET /rules/preview print: one JSON-ready object."""
    s = split(rule, pool_minor, depth, params, budget_cap_minor)
    return {"rule": canonical(rule), "params": normalized_params(rule, params), "pool": pool_minor,
            "depth": depth, "budget_cap_minor": budget_cap_minor, "payouts": list(s.payouts),
            "remainder": s.remainder, "remainder_to": s.remainder_to}


def sybil_take(rule: str, pool_minor: int, depth: int, k: int,
               params: Params | None = None) -> dict[str, int]:
    """The participant closest to the shopper in an honest chain of `depth` inserts `k` fake
    identities between themselves and the shopper: what they collect (own + fakes' payouts), what
    the honest participants above them get, and the remainder."""
    s = split(rule, pool_minor, depth + _check_int("k", k), params)
    return {"attacker": sum(s.payouts[:k + 1]), "others": sum(s.payouts[k + 1:]), "remainder": s.remainder}


def sybil_table(pool_minor: int, depth: int, ks: Sequence[int],
                rules: Sequence[tuple[str, Params]]) -> str:
    """The markdown table docs/rules.md shows (a test keeps the doc equal to this)."""
    lines = ["| rule | params | k fakes | attacker gets | gain vs k=0 | honest upline gets | remainder |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for rule, params in rules:
        p = normalized_params(rule, params)
        shown = ", ".join(f"{key}={','.join(map(str, v)) if isinstance(v, list) else v}"
                          for key, v in p.items()) or "-"
        base = sybil_take(rule, pool_minor, depth, 0, params)["attacker"]
        for k in ks:
            t = sybil_take(rule, pool_minor, depth, k, params)
            lines.append(f"| {canonical(rule)} | {shown} | {k} | {t['attacker']:,} | "
                         f"{t['attacker'] - base:+,} | {t['others']:,} | {t['remainder']:,} |")
    return "\n".join(lines) + "\n"


# docs/rules.md's sybil table: pool 400,000, honest chain depth 3, k = 0..3 fakes, default params
SYBIL_DOC_ARGS: tuple[int, int, tuple[int, ...], tuple[tuple[str, Params], ...]] = (
    400_000, 3, (0, 1, 2, 3),
    ((RED_BALLOON_RULE, {}), (FIXED_LEVELS, {"levels_bp": DEFAULT_LEVELS_BP}),
     (GEOMETRIC, {"a": DEFAULT_A, "b": DEFAULT_B})))


def params_from_options(levels_bp: str | None = None, a: str | None = None,
                        b: str | None = None) -> dict[str, Any]:
    """Rule params from the preview's CLI options or query parameters: only those given."""
    given = {"levels_bp": levels_bp, "a": a, "b": b}
    return {k: v for k, v in given.items() if v is not None}
