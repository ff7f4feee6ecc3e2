"""Rate limits for the public (keyless) endpoints: token buckets per client address and per
campaign (base code). In-process: one API process holds its own counts (see docs/cloud.md,
"Rate limits"). Built by `create_app` and kept on `app.state.rate_limits`."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from cloud.errors import ApiError
from cloud.settings import Settings


class RateLimited(ApiError):
    """HTTP 429 with the seconds to wait, which the API sends as Retry-After."""

    def __init__(self, retry_after_s: float, what: str) -> None:
        self.retry_after = max(1, math.ceil(retry_after_s))
        super().__init__(429, "rate_limited",
                         f"too many requests {what}; try again in {self.retry_after} s",
                         f"请求过于频繁，请 {self.retry_after} 秒后再试")


@dataclass
class _Bucket:
    tokens: float
    at: float  # clock reading when `tokens` was last brought up to date


class TokenBuckets:
    """One token bucket per key: `burst` tokens at most, refilled at `rate` tokens/s.

    Memory is bounded: a bucket left alone long enough to refill completely is the same as no
    bucket, so such buckets are dropped; past `max_keys` the least recently used goes too (this
    forgets its count, so a flood of new keys can reset an old one: keep max_keys well above the
    number of active clients). `burst <= 0` turns the limit off. Thread-safe (sync endpoints run
    in a thread pool)."""

    def __init__(self, rate: float, burst: float, max_keys: int, clock: Callable[[], float]) -> None:
        if burst > 0 and rate <= 0:
            raise ValueError("rate must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill_s(self) -> float:
        return self.burst / self.rate

    def _current(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, now)
        else:
            # max(0, ...): a wall clock stepped back must not drain anyone's bucket
            b.tokens = min(self.burst, b.tokens + max(0.0, now - b.at) * self.rate)
            b.at = max(b.at, now)
        self._buckets.move_to_end(key)
        return b

    def _evict(self, now: float) -> None:
        # Oldest first: once the oldest is not yet refilled, no younger one is either.
        while self._buckets:
            key, b = next(iter(self._buckets.items()))
            if now - b.at < self._refill_s() and len(self._buckets) <= self.max_keys:
                break
            del self._buckets[key]

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens if there are enough: 0.0. Else take nothing and return the seconds
        until there will be."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            b = self._current(key, now)
            self._evict(now)
            if b.tokens >= cost:
                b.tokens -= cost
                return 0.0
            return (cost - b.tokens) / self.rate

    def give_back(self, key: str, cost: float = 1.0) -> None:
        """Return tokens taken for something that turned out not to count."""
        if not self.enabled:
            return
        with self._lock:
            b = self._buckets.get(key)
            if b is not None:
                b.tokens = min(self.burst, b.tokens + cost)


class RateLimits:
    """Per client address: every request to a keyless endpoint. Per campaign (base code): failed
    guesses at `GET /r/{code}` (unknown or expired suffix), which is what brute force produces;
    right codes are given back, so a busy shop's shoppers do not use the campaign's allowance."""

    def __init__(self, st: Settings, clock: Callable[[], float]) -> None:
        self.client = TokenBuckets(st.rate_client_per_s, st.rate_client_burst, st.rate_max_keys, clock)
        self.campaign = TokenBuckets(st.rate_campaign_fail_per_s, st.rate_campaign_fail_burst,
                                     st.rate_max_keys, clock)

    def check_client(self, address: str) -> None:
        wait = self.client.take(address)
        if wait:
            raise RateLimited(wait, "from this address")

    def check_campaign(self, base_code: str) -> None:
        wait = self.campaign.take(base_code)
        if wait:
            raise RateLimited(wait, f"for campaign {base_code[:12]}")


def client_address(request: Request) -> str:
    """The peer address. Behind a reverse proxy this is the proxy unless uvicorn is told to trust
    its X-Forwarded-For (FORWARDED_ALLOW_IPS / --forwarded-allow-ips)."""
    return request.client.host if request.client is not None else "unknown"


def limit_client(request: Request) -> None:
    """FastAPI dependency: the per-client limit for a keyless endpoint."""
    limits: RateLimits = request.app.state.rate_limits
    limits.check_client(client_address(request))
