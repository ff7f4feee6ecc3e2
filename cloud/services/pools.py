"""The reward pool (酬金) of one order: fixed, or a share of the sale. Exact integer money, one
function; docs/rules.md ("Pools") states the rule and tests/cloud/test_pools.py checks it.

- A fixed pool (pool_bp is None): the campaign's pool_minor, whatever the sale.
- A share of the sale (pool_bp set, 0..10000 basis points): floor(amount_minor * pool_bp / 10000),
  then at most pool_cap_minor when the campaign sets one, and never above MAX_POOL_MINOR.

Rounding is down (floor), so the pool never exceeds the stated share. The campaign's budget is
applied after this, as for a fixed pool: the rule's split pays sharers at most the budget left and
the rest of the pool goes to the remainder (cloud/services/rules.py).
"""

from __future__ import annotations

from cloud.services.rules import BP

# 10^12 fen is 10 billion yuan per order: far above any shop, and far enough below 2^63 that the
# running sums (spent_minor, ledger balances) cannot overflow a BIGINT in millions of orders
MAX_POOL_MINOR = 10**12
MAX_POOL_BP = BP  # 100 % of the sale


def pool_for(amount_minor: int, pool_minor: int, pool_bp: int | None = None,
             pool_cap_minor: int | None = None) -> int:
    """The pool of a sale of `amount_minor` under a campaign's pool settings (validated on the
    campaign: 0 <= pool_minor, pool_cap_minor <= MAX_POOL_MINOR, 0 <= pool_bp <= MAX_POOL_BP)."""
    if pool_bp is None:
        return pool_minor
    share = amount_minor * pool_bp // BP  # Python integers: no overflow at any amount
    cap = MAX_POOL_MINOR if pool_cap_minor is None else min(pool_cap_minor, MAX_POOL_MINOR)
    return max(0, min(share, cap))
