"""Rate limits kept in the database: token buckets that every API process shares, so N processes
allow the rate of one and a restart forgets nothing (docs/cloud.md, "Rate limits").

Invariants:
- A bucket's key names a rented campaign by its id, or a client by its address (an IPv6 client by
  its /64): never text a client typed. Rows are bounded by campaigns plus the addresses seen within
  a bucket's refill time; a bucket that has refilled is the same as no row and is swept.
- Each take is one conditional UPDATE (refill, then subtract if enough) on one row: atomic on
  SQLite and PostgreSQL alike, whatever the number of processes.
- The decision to look a code up is made before it is looked up, from who asks and never from what
  they typed, so a refusal says nothing about whether the code was right.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, ColumnElement, Select, cast, delete, func, literal, select, update
from sqlalchemy.orm import Session

from cloud.errors import ApiError
from cloud.settings import Settings
from cloud.store.engine import SessionFactory, insert_ignore
from cloud.store.models import RateBucket

SWEEP_EVERY = 500  # takes between two sweeps of refilled rows, per process
_EPS = 1e-6  # tokens: rate/1000 per ms in floating point may leave a refilled token at 0.9999999


class RateLimited(ApiError):
    """HTTP 429 with the seconds to wait, which the API sends as Retry-After."""

    def __init__(self, retry_after_s: float, what: str, what_zh: str) -> None:
        self.retry_after = max(1, math.ceil(retry_after_s))
        super().__init__(429, "rate_limited",
                         f"too many requests {what}; try again in {self.retry_after} s",
                         f"{what_zh}请求过于频繁，请 {self.retry_after} 秒后再试")


@dataclass(frozen=True)
class Limit:
    """A kind of bucket: `burst` tokens at most, refilled at `rate` tokens/s. burst <= 0: off."""
    name: str
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.burst > 0 and self.rate <= 0:
            raise ValueError(f"rate limit {self.name}: rate must be positive")

    @property
    def enabled(self) -> bool:
        return self.burst > 0


def client_key(address: str) -> str:
    """A client as the limits see it: an IPv4 address, or an IPv6 address's /64 (one subscriber
    gets a whole /64, so its single addresses cost nothing). Anything else is cut to 45 characters."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:45]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Buckets:
    """Token buckets in the rate_buckets table, read and written through `sf`, timed by `clock`
    (unix seconds; tests pass a fake one)."""

    def __init__(self, sf: SessionFactory, clock: Callable[[], float]) -> None:
        self._sf = sf
        self._clock = clock
        self._takes = 0

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @staticmethod
    def _fns(s: Session) -> tuple[Callable[..., ColumnElement[float]], Callable[..., ColumnElement[float]]]:
        """(least, greatest) for two values: SQLite spells them min and max."""
        if s.get_bind().dialect.name == "sqlite":
            return func.min, func.max
        return func.least, func.greatest

    def _level_expr(self, s: Session, limit: Limit, now: int) -> ColumnElement[float]:
        least, greatest = self._fns(s)
        t = RateBucket.__table__.c
        # max(0, ...): a clock stepped back must not drain anyone's bucket
        refill = greatest(literal(0), literal(now) - t.updated_ms) * (limit.rate / 1000.0)
        return least(literal(float(limit.burst)), t.tokens + refill)

    def take(self, limit: Limit, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens from `limit`'s bucket for `key` if it has them: 0.0. Else take nothing
        and return the seconds until it will have them."""
        if not limit.enabled:
            return 0.0
        k, now = f"{limit.name}:{key}", self._now_ms()
        t = RateBucket.__table__.c
        with self._sf.begin() as s:
            insert_ignore(s, RateBucket.__table__,  # type: ignore[arg-type]
                          [{"key": k, "tokens": float(limit.burst), "updated_ms": now, "full_at_ms": now}],
                          ["key"])
            _, greatest = self._fns(s)
            level = self._level_expr(s, limit, now)
            left = level - cost
            full_in_ms = (literal(float(limit.burst)) - left) * (1000.0 / limit.rate)
            got = s.execute(
                update(RateBucket).where(t.key == k, level >= cost - _EPS)
                .values(tokens=left, updated_ms=greatest(t.updated_ms, literal(now)),
                        full_at_ms=cast(greatest(t.updated_ms, literal(now)) + full_in_ms, BigInteger))
                .returning(t.tokens)).first()
            wait = 0.0 if got is not None else (cost - float(s.scalar(self._select_level(s, limit, k, now))
                                                             or 0.0)) / limit.rate
        self._takes += 1
        if self._takes % SWEEP_EVERY == 0:
            self.sweep()
        return max(0.0, wait)

    def _select_level(self, s: Session, limit: Limit, k: str, now: int) -> Select[float]:
        return select(self._level_expr(s, limit, now)).where(RateBucket.__table__.c.key == k)

    def level(self, limit: Limit, key: str) -> float:
        """The tokens `key`'s bucket holds now (a full bucket if it has no row)."""
        if not limit.enabled:
            return 0.0
        k, now = f"{limit.name}:{key}", self._now_ms()
        with self._sf() as s:
            v = s.scalar(self._select_level(s, limit, k, now))
        return float(limit.burst) if v is None else float(v)

    def debit(self, charges: list[tuple[Limit, str]], cost: float = 1.0) -> None:
        """Take `cost` from each (limit, key) in one transaction, even below zero: for something
        already allowed by a look at the level (a wrong guess). Concurrent requests that looked at
        once may each take their token, so a bucket can go below zero by at most their number, and
        then stays shut that much longer: the rate over time is kept exactly."""
        charges = [(lim, key) for lim, key in charges if lim.enabled]
        if not charges:
            return
        now = self._now_ms()
        t = RateBucket.__table__.c
        with self._sf.begin() as s:
            _, greatest = self._fns(s)
            for lim, key in charges:
                k = f"{lim.name}:{key}"
                insert_ignore(s, RateBucket.__table__,  # type: ignore[arg-type]
                              [{"key": k, "tokens": float(lim.burst), "updated_ms": now, "full_at_ms": now}],
                              ["key"])
                left = self._level_expr(s, lim, now) - cost
                full_in_ms = (literal(float(lim.burst)) - left) * (1000.0 / lim.rate)
                s.execute(update(RateBucket).where(t.key == k).values(
                    tokens=left, updated_ms=greatest(t.updated_ms, literal(now)),
                    full_at_ms=cast(greatest(t.updated_ms, literal(now)) + full_in_ms, BigInteger)))

    def give_back(self, limit: Limit, key: str, cost: float = 1.0) -> None:
        """Return tokens taken for something that turned out not to count."""
        if not limit.enabled:
            return
        t = RateBucket.__table__.c
        with self._sf.begin() as s:
            least, _ = self._fns(s)
            s.execute(update(RateBucket).where(t.key == f"{limit.name}:{key}")
                      .values(tokens=least(literal(float(limit.burst)), t.tokens + cost),
                              full_at_ms=t.full_at_ms - int(cost * 1000 / limit.rate)))

    def sweep(self) -> int:
        """Delete the rows of buckets that have refilled (the same as no row); returns how many."""
        with self._sf.begin() as s:
            n = s.execute(delete(RateBucket).where(RateBucket.__table__.c.full_at_ms <= self._now_ms()))
        return int(n.rowcount)  # type: ignore[attr-defined]

    def rows(self) -> int:
        with self._sf() as s:
            return int(s.scalar(select(func.count()).select_from(RateBucket)) or 0)


@dataclass(frozen=True)
class Guess:
    """A code lookup the limits allowed: which campaign budget paid for it, and who asked."""
    campaign_id: int
    client: str
    budget: Limit


class Limits:
    """The policy (docs/cloud.md, "Rate limits"):
    - every keyless request takes one token from its client's bucket (load, not guessing);
    - a client is clean while it has at most one wrong guess not yet refilled (one typo is
      forgiven); a clean client's lookups draw on the campaign's clean budget, others' on its fail
      budget, so an attacker who has spent its addresses' clean guesses cannot lock out shoppers
      who have not; right codes give their token back, wrong ones keep it and also cost the client;
    - share codes made per client address have their own bucket."""

    def __init__(self, sf: SessionFactory, st: Settings, clock: Callable[[], float]) -> None:
        self.buckets = Buckets(sf, clock)
        self.client = Limit("client", st.rate_client_per_s, st.rate_client_burst)
        self.address_fail = Limit("addr-fail", st.rate_address_fail_per_s, st.rate_address_fail_burst)
        self.campaign_fail = Limit("camp-fail", st.rate_campaign_fail_per_s, st.rate_campaign_fail_burst)
        self.campaign_clean = Limit("camp-clean", st.rate_campaign_clean_per_s, st.rate_campaign_clean_burst)
        self.share = Limit("share", st.rate_share_address_per_s, st.rate_share_address_burst)

    def check_client(self, address: str) -> None:
        wait = self.buckets.take(self.client, client_key(address))
        if wait:
            raise RateLimited(wait, "from this address", "此地址")

    def is_clean(self, address: str) -> bool:
        if not self.address_fail.enabled:
            return True
        level = self.buckets.level(self.address_fail, client_key(address))
        return level >= self.address_fail.burst - 1 - _EPS

    def start_guess(self, campaign_id: int, address: str) -> Guess:
        """Before looking a code of `campaign_id` up: the budget this client draws on must hold a
        token, or RateLimited (whatever the code). Only a look: a right code, the common case,
        writes nothing more; `wrong` takes the token."""
        client = client_key(address)
        budget = self.campaign_clean if self.is_clean(address) else self.campaign_fail
        if budget.enabled:
            level = self.buckets.level(budget, str(campaign_id))
            if level < 1 - _EPS:
                raise RateLimited((1 - level) / budget.rate, "for this campaign", "此活动")
        return Guess(campaign_id, client, budget)

    def right(self, g: Guess) -> None:
        """The code was right (or not a guess at all): nothing was taken, nothing to give back."""

    def wrong(self, g: Guess) -> None:
        """The code was wrong: the budget loses a token and the client is charged one, at once."""
        self.buckets.debit([(g.budget, str(g.campaign_id)), (self.address_fail, g.client)])

    def check_share(self, address: str) -> None:
        wait = self.buckets.take(self.share, client_key(address))
        if wait:
            raise RateLimited(wait, "for new share codes from this address", "此地址新建分享码")
