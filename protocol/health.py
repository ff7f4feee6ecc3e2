# The gateway's status message, retained on mcode/v0/gw/{gw}/status (docs/protocol.md, "MQTT").
#   online : a JSON object {"v": 1, "state": "online", <the figures in FIGURES>}, sent on
#            every connect and refreshed every status interval (30 s by default)
#   offline: the seven ASCII bytes b"offline": the last will, and what a clean stop sends
# The will stays plain bytes so any MQTT tool shows it; JSON keeps the online message readable
# there too and needs nothing beyond MicroPython's json. Unknown keys are ignored by decode, so
# adding a figure is compatible; changing one's meaning bumps "v".
# "devs" (optional, added compatibly): the gateway's view of each device it pulls, a list of
#   [device id: 16 lowercase hex, last pulled: unix s or null, battery low: 0/1 or null,
#    firmware version: u16 or null, RSSI: dBm int or null]
# compact arrays, so a gateway's MAX_DEVICES fit MAX_PAYLOAD.
import json

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

VERSION = 1
ONLINE = "online"
OFFLINE = "offline"
OFFLINE_PAYLOAD = b"offline"
MAX_PAYLOAD = 16 * 1024  # MAX_DEVICES devices at about 50 bytes each, plus the figures
MAX_DEVICES = 250  # a gateway with more sends the ones it pulled most recently
MAX_FW = 0xFFFF
_HEX = "0123456789abcdef"

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


def _int_or_none(v, lo, hi):
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi)


def _check_devs(devs):
    """A "devs" value -> list of (id hex, last_seen, battery_low, fw, rssi); raises HealthError."""
    if not isinstance(devs, list) or len(devs) > MAX_DEVICES:
        raise HealthError(f"status devs is not a list of at most {MAX_DEVICES}")
    out = []
    for d in devs:
        if not (isinstance(d, list) and len(d) == 5 and isinstance(d[0], str) and len(d[0]) == 16
                and all(c in _HEX for c in d[0])):
            raise HealthError(f"status devs entry {repr(d)[:80]} is not [id hex, seen, battery, fw, rssi]")
        if not (_int_or_none(d[1], 0, 2**63 - 1) and _int_or_none(d[2], 0, 1)
                and _int_or_none(d[3], 0, MAX_FW) and _int_or_none(d[4], -255, 255)):
            raise HealthError(f"status devs entry {repr(d)[:80]} has a bad value")
        out.append(tuple(d))
    return out


def encode_online(figures, devs=None):
    """The online status: every name in FIGURES must be present (a missing one is a bug); `devs`
    optional, entries [id hex, last seen s, battery low 0/1, fw, rssi] (None where unknown)."""
    out = {"v": VERSION, "state": ONLINE}
    for name in FIGURES:
        if name not in figures:
            raise HealthError(f"status figure {name} missing")
        _check(name, FIGURES[name], figures[name])
        out[name] = figures[name]
    if devs is not None:
        out["devs"] = [list(d) for d in _check_devs([list(d) for d in devs])]
    return json.dumps(out).encode()


def decode(payload):
    """A status payload -> dict with "state" and, when online, every figure and "devs" (a list of
    tuples, empty when the gateway sent none). Raises HealthError."""
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
    out["devs"] = _check_devs(m["devs"]) if "devs" in m else []
    return out
