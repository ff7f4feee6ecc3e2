"""Rate limits kept in the database: token buckets that every API process shares, so N processes
allow the rate of one and a restart forgets nothing (docs/cloud.md, "Rate limits").

Invariants:
- A bucket's key names a rented campaign by its id, or a client by its address (an IPv6 client by
  its /64): never text a client typed. Rows are bounded by campaigns plus the addresses seen within
  a bucket's refill time; a bucket that has refilled is the same as no row and is swept.
- Each take is one conditional upsert (no row: a full bucket; else refill, then subtract if
  enough) on one row: atomic on SQLite and PostgreSQL alike, whatever the number of processes.
- The decision to look a code up is made before it is looked up, from who asks and never from what
  they typed, so a refusal says nothing about whether the code was right.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Engine, delete, func, select

from cloud.errors import ApiError
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
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


class _Sql:
    """The buckets' statements for one dialect, written out once and run by exec_driver_sql on a
    plain connection (issue 17: building them with SQLAlchemy on every call, and the ORM session
    around them, cost more than running them). Parameters are named: k (bucket key), now (ms),
    burst, per_ms (tokens per ms), ms_per (ms per token), cost (tokens), cost_ms (whole ms)."""

    def __init__(self, dialect: Dialect) -> None:
        sqlite = dialect.name == "sqlite"

        def p(name: str) -> str:  # sqlite3 and psycopg both take a dict for named parameters
            return f":{name}" if sqlite else f"%({name})s"

        least, greatest = ("min", "max") if sqlite else ("least", "greatest")
        q = dialect.identifier_preparer
        t = q.format_table(RateBucket.__table__)  # type: ignore[arg-type]
        key, tokens, updated, full = (f"{t}.{q.quote(c)}"
                                      for c in ("key", "tokens", "updated_ms", "full_at_ms"))
        self._read = f"SELECT {key}, {tokens}, {updated} FROM {t} WHERE {key} IN "
        self._ph = p
        # max(0, ...): a clock stepped back must not drain anyone's bucket
        level = f"{least}({p('burst')}, {tokens} + {greatest}(0, {p('now')} - {updated}) * {p('per_ms')})"
        left = f"{level} - {p('cost')}"
        since = f"{greatest}({updated}, {p('now')})"
        # No row is a full bucket: the first charge inserts the row with `cost` already taken.
        self.debit = (
            f"INSERT INTO {t} ({q.quote('key')}, tokens, updated_ms, full_at_ms) VALUES ({p('k')}, "
            f"{p('burst')} - {p('cost')}, {p('now')}, CAST({p('now')} AS BIGINT) + {p('cost_ms')}) "
            f"ON CONFLICT ({q.quote('key')}) DO UPDATE SET tokens = {left}, updated_ms = {since}, "
            f"full_at_ms = CAST({since} + ({p('burst')} - ({left})) * {p('ms_per')} AS BIGINT)")
        self.take = f"{self.debit} WHERE {level} >= {p('cost')} - {_EPS!r} RETURNING {tokens}"
        self.give_back = (f"UPDATE {t} SET tokens = {least}({p('burst')}, {tokens} + {p('cost')}), "
                          f"full_at_ms = {full} - {p('cost_ms')} WHERE {key} = {p('k')}")

    def read(self, n: int) -> str:
        """SELECT the rows of n keys, given as k0 .. k(n-1)."""
        return self._read + "(" + ", ".join(self._ph(f"k{i}") for i in range(n)) + ")"


class Buckets:
    """Token buckets in the rate_buckets table, read and written through `sf`'s engine, timed by
    `clock` (unix seconds; tests pass a fake one). Each take, debit or give-back is one statement;
    reading any number of levels is one query."""

    def __init__(self, sf: SessionFactory, clock: Callable[[], float]) -> None:
        self._sf = sf
        self._engine: Engine = sf.kw["bind"]
        self._clock = clock
        self._takes = 0
        self._sql = _Sql(self._engine.dialect)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @staticmethod
    def _params(limit: Limit, key: str, now: int, cost: float) -> dict[str, Any]:
        return {"k": f"{limit.name}:{key}", "now": now, "burst": float(limit.burst),
                "per_ms": limit.rate / 1000.0, "ms_per": 1000.0 / limit.rate, "cost": float(cost),
                "cost_ms": int(cost * 1000 / limit.rate)}

    def take(self, limit: Limit, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens from `limit`'s bucket for `key` if it has them: 0.0. Else take nothing
        and return the seconds until it will have them."""
        if not limit.enabled:
            return 0.0
        if cost > limit.burst + _EPS:  # more than a full bucket holds: never
            return (cost - limit.burst) / limit.rate
        now = self._now_ms()
        with self._engine.begin() as c:
            got = c.exec_driver_sql(self._sql.take, self._params(limit, key, now, cost)).first()
        wait = 0.0
        if got is None:  # refused: nothing was written; how long until it would not be
            wait = (cost - self.levels([(limit, key)], now)[0]) / limit.rate
        self._takes += 1
        if self._takes % SWEEP_EVERY == 0:
            self.sweep()
        return max(0.0, wait)

    def levels(self, buckets: Sequence[tuple[Limit, str]], now: int | None = None) -> list[float]:
        """The tokens each (limit, key) bucket holds now (a full bucket if it has no row; 0.0 for a
        limit that is off), read in one query. The refill is worked out here, as take's SQL does."""
        now = self._now_ms() if now is None else now
        keys = [f"{lim.name}:{key}" for lim, key in buckets if lim.enabled]
        rows: dict[str, tuple[float, int]] = {}
        if keys:
            with self._engine.connect() as c:
                rows = {k: (float(tok), int(ms)) for k, tok, ms in c.exec_driver_sql(
                    self._sql.read(len(keys)), {f"k{i}": k for i, k in enumerate(keys)})}
        out = []
        for lim, key in buckets:
            if not lim.enabled:
                out.append(0.0)
                continue
            row = rows.get(f"{lim.name}:{key}")
            burst = float(lim.burst)
            out.append(burst if row is None else
                       min(burst, row[0] + max(0, now - row[1]) * (lim.rate / 1000.0)))
        return out

    def level(self, limit: Limit, key: str) -> float:
        """The tokens `key`'s bucket holds now (a full bucket if it has no row)."""
        return self.levels([(limit, key)])[0]

    def debit(self, charges: list[tuple[Limit, str]], cost: float = 1.0) -> None:
        """Take `cost` from each (limit, key) in one statement, even below zero: for something
        already allowed by a look at the level (a wrong guess). Concurrent requests that looked at
        once may each take their token, so a bucket can go below zero by at most their number, and
        then stays shut that much longer: the rate over time is kept exactly."""
        now = self._now_ms()
        params = [self._params(lim, key, now, cost) for lim, key in charges if lim.enabled]
        if not params:
            return
        with self._engine.begin() as c:
            c.exec_driver_sql(self._sql.debit, sorted(params, key=lambda p: p["k"]))  # type: ignore[arg-type]

    def give_back(self, limit: Limit, key: str, cost: float = 1.0) -> None:
        """Return tokens taken for something that turned out not to count."""
        if not limit.enabled:
            return
        with self._engine.begin() as c:
            c.exec_driver_sql(self._sql.give_back, self._params(limit, key, self._now_ms(), cost))

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

    def _clean(self, fail_level: float) -> bool:
        """A client with at most one wrong guess not yet refilled (`fail_level`: its address_fail)."""
        return not self.address_fail.enabled or fail_level >= self.address_fail.burst - 1 - _EPS

    def is_clean(self, address: str) -> bool:
        return self._clean(self.buckets.level(self.address_fail, client_key(address)))

    def start_guess(self, campaign_id: int, address: str) -> Guess:
        """Before looking a code of `campaign_id` up: the budget this client draws on must hold a
        token, or RateLimited (whatever the code). Only a look, one query for the client's bucket and
        both budgets: a right code, the common case, writes nothing more; `wrong` takes the token."""
        client, cid = client_key(address), str(campaign_id)
        fail, clean, failing = self.buckets.levels(
            [(self.address_fail, client), (self.campaign_clean, cid), (self.campaign_fail, cid)])
        budget, level = ((self.campaign_clean, clean) if self._clean(fail) else (self.campaign_fail, failing))
        if budget.enabled and level < 1 - _EPS:
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
