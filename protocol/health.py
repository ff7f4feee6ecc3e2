# The gateway's status message, retained on mcode/v0/gw/{gw}/status (docs/protocol.md, "MQTT").
#   online : a JSON object {"v": 1, "state": "online", <the figures in FIGURES>}, sent on
#            every connect and refreshed every status interval (30 s by default)
#   offline: the seven ASCII bytes b"offline": the last will, and what a clean stop sends
# The will stays plain bytes so any MQTT tool shows it; JSON keeps the online message readable
# there too and needs nothing beyond MicroPython's json. Unknown keys are ignored by decode, so
# adding a figure is compatible; changing one's meaning bumps "v".
import json

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

VERSION = 1
ONLINE = "online"
OFFLINE = "offline"
OFFLINE_PAYLOAD = b"offline"
MAX_PAYLOAD = 4096

# name -> what it holds. Counts are ints >= 0; "n?" may be null (nothing yet); "f" a number >= 0.
FIGURES = {
    "ts": "n",  # unix seconds when the message was made
    "up_s": "n",  # seconds since the uplink started
    "spool_records": "n",  # records not yet confirmed by the cloud
    "spool_unbatched": "n",  # of which not yet sealed into a batch
    "spool_batches": "n",  # sealed batches waiting for the cloud's ack
    "spool_fill": "f",  # fraction of the spool's size limit in use (0 without limits)
    "spool_alarm": "s",  # "ok", "warn" or "full"
    "oldest_unbatched_s": "n?",  # age of the oldest unsealed record
    "inflight": "n",  # batches published and not yet acked by the cloud
    "confirmed_bseq": "n?",  # highest bseq the cloud has confirmed
    "confirmed_batches": "n",  # batches confirmed since the uplink started
    "confirmed_records": "n",  # records in them
    "records_per_s": "f",  # records confirmed per second since the previous status message
    "connects": "n",  # broker connections since the uplink started
    "disconnects": "n",
}


class HealthError(ValueError):
    pass


def _check(name, kind, v):
    if kind == "s":
        ok = isinstance(v, str)
    elif v is None:
        ok = kind == "n?"
    elif isinstance(v, bool):
        ok = False
    elif kind == "f":
        ok = isinstance(v, (int, float)) and v >= 0
    else:
        ok = isinstance(v, int) and v >= 0
    if not ok:
        raise HealthError(f"status figure {name} has a bad value: {repr(v)}")


def encode_online(figures):
    """The online status: every name in FIGURES must be present (a missing one is a bug)."""
    out = {"v": VERSION, "state": ONLINE}
    for name in FIGURES:
        if name not in figures:
            raise HealthError(f"status figure {name} missing")
        _check(name, FIGURES[name], figures[name])
        out[name] = figures[name]
    return json.dumps(out).encode()


def decode(payload):
    """A status payload -> dict with "state" and, when online, every figure. Raises HealthError."""
    payload = bytes(payload)
    if payload == OFFLINE_PAYLOAD:
        return {"state": OFFLINE}
    if len(payload) > MAX_PAYLOAD:
        raise HealthError(f"status of {len(payload)} bytes is too large")
    try:
        m = json.loads(payload.decode())
    except (ValueError, UnicodeError) as e:  # MicroPython raises ValueError for both
        raise HealthError(f"status is neither b'offline' nor JSON: {e}") from None
    if not isinstance(m, dict):
        raise HealthError("status is not a JSON object")
    if m.get("v") != VERSION:
        raise HealthError(f"status version {repr(m.get('v'))} is not {VERSION}")
    if m.get("state") != ONLINE:
        raise HealthError(f"status state {repr(m.get('state'))} is not {ONLINE}")
    out = {"state": ONLINE}
    for name in FIGURES:
        if name not in m:
            raise HealthError(f"status figure {name} missing")
        _check(name, FIGURES[name], m[name])
        out[name] = m[name]
    return out
