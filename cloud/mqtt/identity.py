"""Who the cloud is on the broker. Mosquitto's dynamic-security plugin binds at most one client id
to each broker user, and a user whose client id is not bound may connect with any id, which makes
the broker disconnect that id's holder and, for a persistent session, hand the session over. So
every broker user gets exactly one client id, and the cloud, which runs several clients at once,
is several users, one per role:

    <broker_user>-ingest-<worker id>   one per ingest worker (its persistent session)
    <broker_user>-reports              the report listener
    <broker_user>-status               the status listener (the gateways' retained status)
    <broker_user>-config               the config publisher

all with the cloud's broker password and role. Each client id is `<user>-<16 hex>`, the hex an
HMAC of the user name under the broker password: bound on the broker, and unguessable to anyone
without that password (defense in depth for a broker that binds nothing). Gateways connect as
`gw-<gateway id>` (gateway/uplink.py) and are bound to it.
"""

from __future__ import annotations

import hashlib
import hmac
import re

REPORTS = "reports"
STATUS = "status"
CONFIG = "config"
_WORKER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def gateway_client_id(gateway_hex: str) -> str:
    return f"gw-{gateway_hex}"


def ingest_role(worker_id: str) -> str:
    """The role name of ingest worker `worker_id` (letters, digits, `_.-`, up to 40)."""
    if not _WORKER_ID.match(worker_id):
        raise ValueError(f"worker id {worker_id!r}: use 1-40 letters, digits, '_', '.' or '-'")
    return f"ingest-{worker_id}"


def role_user(base_user: str, role: str) -> str:
    return f"{base_user}-{role}"


def client_id(password: str, user: str) -> str:
    tag = hmac.new(password.encode(), b"mcode/v0/client-id\0" + user.encode(), hashlib.sha256).hexdigest()
    return f"{user}-{tag[:16]}"


def cloud_users(base_user: str, worker_ids: tuple[str, ...]) -> list[str]:
    """Every broker user the cloud needs, for a broker's administrator (sim/broker.py makes them)."""
    return [role_user(base_user, r) for r in (*(ingest_role(w) for w in worker_ids), REPORTS, STATUS, CONFIG)]
