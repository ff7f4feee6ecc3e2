"""The rate limits at the HTTP edge: who the client is (its address, X-Forwarded-For only from
trusted proxies), and the FastAPI dependency that charges a keyless request to it. The buckets and
the policy are in cloud/services/ratelimits.py, kept in the database; `create_app` puts a `Limits`
on `app.state.rate_limits`."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Request

from cloud.services.ratelimits import Limits, RateLimited

__all__ = ["Limits", "RateLimited", "client_address", "limit_client", "limits"]


@lru_cache(maxsize=16)
def _networks(trusted: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in trusted.split(",") if p.strip())


def _trusted(host: str, nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in n for n in nets)


def forwarded_client(peer: str, xff: str, trusted: str) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy (settings
    trusted_proxies: addresses or networks, comma-separated); then the nearest X-Forwarded-For entry
    that is not itself a trusted proxy (entries further left were written by the client and prove
    nothing). Empty `trusted`: the peer, whatever the header says."""
    nets = _networks(trusted)
    if not nets or not _trusted(peer, nets):
        return peer
    hops = [h.strip() for h in xff.split(",")[-32:] if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, nets):
            return hop[:45]
    return peer


def client_address(request: Request) -> str:
    """The address the limits charge for this request."""
    peer = request.client.host if request.client is not None else "unknown"
    trusted: str = request.app.state.settings.trusted_proxies
    return forwarded_client(peer, request.headers.get("x-forwarded-for", ""), trusted)


def limits(request: Request) -> Limits:
    lim: Limits = request.app.state.rate_limits
    return lim


def limit_client(request: Request) -> None:
    """FastAPI dependency: the per-client limit for a keyless endpoint."""
    limits(request).check_client(client_address(request))
