"""Reward rules (酬众规则): pure functions from a pool and a share chain to payouts."""

from __future__ import annotations

from dataclasses import dataclass

RED_BALLOON = "red_balloon"
RULES = (RED_BALLOON,)


@dataclass(frozen=True)
class Split:
    payouts: tuple[int, ...]  # closest-to-shopper first
    charity: int  # the remainder, to the charity account


def red_balloon(pool_minor: int, depth: int) -> Split:
    """DARPA Red Balloon halving: the participant closest to the shopper gets floor(pool/2), the
    next floor(pool/4), then floor(pool/8), ...; whatever is left goes to charity. Integer minor
    units, so sum(payouts) + charity == pool exactly."""
    if pool_minor < 0 or depth < 0:
        raise ValueError("pool and depth must be non-negative")
    payouts = tuple(pool_minor >> (level + 1) for level in range(depth))
    return Split(payouts, pool_minor - sum(payouts))


def split(rule: str, pool_minor: int, depth: int) -> Split:
    if rule == RED_BALLOON:
        return red_balloon(pool_minor, depth)
    raise ValueError(f"unknown rule {rule!r}")
