"""Failed-login budgets (商户登录限速): password and key guessing at POST /login is bounded per
client address and per login name, in the same database buckets as the other limits, so every API
process shares them. A login that succeeds costs nothing; a wrong one costs one token from each
bucket it names. With the defaults an address or a login name gets 10 wrong tries at once, then
one per 6 minutes (docs/security.md)."""

from __future__ import annotations

import unicodedata

from cloud.services.ratelimits import Buckets, Limit, RateLimited, client_key
from cloud.settings import Settings

_EPS = 1e-6  # as in ratelimits: a refilled token may read 0.9999999


def login_key(login: str) -> str:
    """The bucket key of a login name: case-folded and NFKC-normalised (so "Ａｌｉ" and "ali" share
    one budget), cut to 100 characters like the column."""
    return unicodedata.normalize("NFKC", login).casefold().strip()[:100]


class LoginLimits:
    """Before the password hash is computed, each named bucket must hold a token; a failure then
    takes one from each. Checking before hashing also bounds the CPU a guesser can make argon2id
    spend."""

    def __init__(self, buckets: Buckets, st: Settings) -> None:
        self.buckets = buckets
        self.address = Limit("login-addr", st.rate_login_per_s, st.rate_login_burst)
        self.name = Limit("login-name", st.rate_login_per_s, st.rate_login_burst)

    def _charges(self, address: str, login: str | None) -> list[tuple[Limit, str]]:
        charges = [(self.address, client_key(address))]
        if login is not None:
            charges.append((self.name, login_key(login)))
        return [(lim, key) for lim, key in charges if lim.enabled]

    def check(self, address: str, login: str | None) -> None:
        """RateLimited when the address, or the login name (None for a merchant key), has no
        failure left to spend."""
        for lim, key in self._charges(address, login):
            level = self.buckets.level(lim, key)
            if level < 1 - _EPS:
                what = ("for this login", "此登录名") if lim is self.name else ("from this address", "此地址")
                raise RateLimited((1 - level) / lim.rate, what[0], what[1])

    def failed(self, address: str, login: str | None) -> None:
        self.buckets.debit(self._charges(address, login))
