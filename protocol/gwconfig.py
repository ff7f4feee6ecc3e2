"""Gateway configuration from the cloud, and the gateway's delivery report (CPython only: the
cloud and the gateway share it, the device never sees either; docs/protocol.md, "Gateway config").

config envelope = CBOR [1, body: bstr, sig: bstr(64)]
body = CBOR {"gw": bstr(8), "ver": uint, "iat": uint (unix ms),
             "devs": [{"id": bstr(8), "key": bstr(32), ? "cfg": bstr (sealed devconfig blob)}, ...],
             "fw": {board: tstr => firmware version: uint}}
sig  = Ed25519(cloud config key, b"mcode/v0/gwconfig" || body)

report envelope = CBOR [1, body: bstr, sig: bstr(64)]
body = CBOR {"gw": bstr(8), "ver": uint (applied config, 0 for none), "ts": uint (unix ms),
             "err": tstr (why the last config offered after it was refused, "" if none),
             "devs": [[device_id bstr(8), write version uint, status tstr, reason tstr,
                       device config version uint or null], ...]}
sig  = Ed25519(gateway signing key, b"mcode/v0/gwreport" || body)

`key` is the gateway command key (protocol.keys.gateway_key), never a device key; `cfg` is a blob
the cloud sealed with the device's config key, which the gateway carries but cannot make or alter.
Signatures cover the body bytes as sent, so no canonical CBOR is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import devconfig
from protocol.batch import TOPIC_ROOT
from protocol.errors import ReasonError
from protocol.keys import ID_LEN

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

ENVELOPE_VERSION = 1
SIG_CONTEXT = b"mcode/v0/gwconfig"
REPORT_CONTEXT = b"mcode/v0/gwreport"
SIG_LEN = 64
KEY_LEN = 32
MAX_PAYLOAD = 256 * 1024  # the broker's payload limit for gateway topics
MAX_DEVICES = 1000  # about 130 B each with a config write: well inside MAX_PAYLOAD
MAX_BOARDS = 64
MAX_BOARD_NAME = 64
MAX_FW_VERSION = 0xFFFF  # INFO carries the firmware version as u16
MAX_UINT = 2**63 - 1  # versions and times fit SQLite's and PostgreSQL's BIGINT

# Per-device delivery status in a report.
OK = "ok"  # the device accepted the write (or already holds exactly its version)
REFUSED = "refused"  # the device refused it for good; `reason` names its status
PENDING = "pending"  # not delivered yet, or only transient failures so far
STATUSES = (OK, REFUSED, PENDING)


def config_topic(gateway_hex: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_hex}/config"


def report_topic(gateway_hex: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_hex}/report"


REPORT_SUBSCRIPTION = f"{TOPIC_ROOT}/+/report"


class GwConfigError(ReasonError):
    """A config or report that cannot be accepted; `reason` is a stable code for logs and reports."""


@dataclass(frozen=True)
class DeviceEntry:
    id: bytes  # 8 bytes
    key: bytes  # 32-byte gateway command key for this gateway
    config: bytes | None = None  # a sealed devconfig blob to deliver, if any

    @property
    def config_version(self) -> int | None:
        return None if self.config is None else devconfig.version_of(self.config)


@dataclass(frozen=True)
class GwConfig:
    gateway_id: bytes
    version: int
    issued_at_ms: int
    devices: tuple[DeviceEntry, ...] = ()
    firmware: dict[str, int] = field(default_factory=dict)  # board profile name -> target version


@dataclass(frozen=True)
class DeviceResult:
    device_id: bytes
    version: int  # the write's (blob's) config version
    status: str  # OK | REFUSED | PENDING
    reason: str = ""  # for REFUSED (and the last transient failure for PENDING)
    device_version: int | None = None  # the device's config version from its last reply


@dataclass(frozen=True)
class Report:
    gateway_id: bytes
    applied_version: int
    ts_ms: int
    results: tuple[DeviceResult, ...] = ()
    refused: str = ""  # reason the last config offered after the applied one was refused


# -- config ------------------------------------------------------------------------------------

def encode_body(c: GwConfig) -> bytes:
    devs: list[dict[str, bytes]] = []
    for d in c.devices:
        m = {"id": d.id, "key": d.key}
        if d.config is not None:
            m["cfg"] = d.config
        devs.append(m)
    return cbor2.dumps({"gw": c.gateway_id, "ver": c.version, "iat": c.issued_at_ms, "devs": devs,
                        "fw": dict(c.firmware)})


def _envelope(body: bytes, context: bytes, key: Ed25519PrivateKey) -> bytes:
    return cbor2.dumps([ENVELOPE_VERSION, body, key.sign(context + body)])


def sign(c: GwConfig, key: Ed25519PrivateKey) -> bytes:
    """The cloud's side: the signed envelope. Refuses a config the gateway would refuse."""
    payload = _envelope(encode_body(c), SIG_CONTEXT, key)
    _parse_body(cbor2.loads(payload)[1])  # same checks as the receiver: never publish a dud
    if len(payload) > MAX_PAYLOAD:
        raise GwConfigError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD}")
    return payload


def _loads(b: bytes) -> object:
    try:
        return cbor2.loads(b)
    except Exception as e:  # cbor2 raises several types on garbage
        raise GwConfigError("malformed_cbor", str(e)[:200]) from None


def _open(payload: bytes) -> tuple[bytes, bytes]:
    if len(payload) > MAX_PAYLOAD:
        raise GwConfigError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD}")
    env = _loads(payload)
    if not (isinstance(env, list) and len(env) == 3 and env[0] == ENVELOPE_VERSION
            and isinstance(env[1], bytes) and isinstance(env[2], bytes) and len(env[2]) == SIG_LEN):
        raise GwConfigError("malformed_envelope")
    return env[1], env[2]


def _uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_UINT


def _parse_device(i: int, d: object) -> DeviceEntry:
    if not isinstance(d, dict) or not set(d) <= {"id", "key", "cfg"}:
        raise GwConfigError("malformed_body", f"devs[{i}] must be a map of id, key, cfg")
    did, key, cfg = d.get("id"), d.get("key"), d.get("cfg")
    if not (isinstance(did, bytes) and len(did) == ID_LEN):
        raise GwConfigError("malformed_body", f"devs[{i}].id must be {ID_LEN} bytes")
    if not (isinstance(key, bytes) and len(key) == KEY_LEN):
        raise GwConfigError("malformed_body", f"devs[{i}].key must be {KEY_LEN} bytes")
    if cfg is not None and not (isinstance(cfg, bytes) and devconfig.MIN_LEN <= len(cfg) <= devconfig.MAX_LEN
                                and cfg[0] == devconfig.FMT):
        # The gateway cannot check the blob's tag (the device does), only that it is one.
        raise GwConfigError("malformed_body", f"devs[{i}].cfg is not a devconfig blob")
    return DeviceEntry(did, key, cfg)


def _parse_body(body: bytes) -> GwConfig:
    m = _loads(body)
    if not isinstance(m, dict):
        raise GwConfigError("malformed_body", "not a map")
    gw, ver, iat, devs, fw = m.get("gw"), m.get("ver"), m.get("iat"), m.get("devs"), m.get("fw")
    if not (isinstance(gw, bytes) and len(gw) == ID_LEN and _uint(ver) and _uint(iat)
            and isinstance(devs, list) and isinstance(fw, dict)):
        raise GwConfigError("malformed_body", "gw, ver, iat, devs and fw are required")
    if len(devs) > MAX_DEVICES:
        raise GwConfigError("oversized", f"{len(devs)} devices > {MAX_DEVICES}")
    if len(fw) > MAX_BOARDS:
        raise GwConfigError("oversized", f"{len(fw)} firmware targets > {MAX_BOARDS}")
    entries = tuple(_parse_device(i, d) for i, d in enumerate(devs))
    if len({e.id for e in entries}) != len(entries):
        raise GwConfigError("malformed_body", "a device is listed twice")
    for board, v in fw.items():
        if not (isinstance(board, str) and 0 < len(board) <= MAX_BOARD_NAME and _uint(v)
                and v <= MAX_FW_VERSION):
            raise GwConfigError("malformed_body", f"firmware target {board!r}: {v!r}")
    assert isinstance(gw, bytes) and isinstance(ver, int) and isinstance(iat, int)
    return GwConfig(gw, ver, iat, entries, dict(fw))


def verify(body: bytes, sig: bytes, public_key: Ed25519PublicKey, context: bytes = SIG_CONTEXT) -> bool:
    try:
        public_key.verify(sig, context + body)
    except InvalidSignature:
        return False
    return True


def accept(payload: bytes, public_key: Ed25519PublicKey, gateway_id: bytes,
           current_version: int = 0) -> GwConfig:
    """The gateway's side: the config if it is the cloud's, for this gateway, and newer than
    `current_version`; otherwise GwConfigError with reason oversized, malformed_cbor,
    malformed_envelope, bad_signature, malformed_body, wrong_gateway or stale_version.
    The signature is checked before the body is interpreted."""
    body, sig = _open(payload)
    if not verify(body, sig, public_key):
        raise GwConfigError("bad_signature")
    c = _parse_body(body)
    if c.gateway_id != gateway_id:
        raise GwConfigError("wrong_gateway", f"for {c.gateway_id.hex()}, not {gateway_id.hex()}")
    if c.version <= current_version:
        raise GwConfigError("stale_version", f"version {c.version} <= applied {current_version}")
    return c


# -- report ------------------------------------------------------------------------------------

def sign_report(r: Report, key: Ed25519PrivateKey) -> bytes:
    body = cbor2.dumps({"gw": r.gateway_id, "ver": r.applied_version, "ts": r.ts_ms, "err": r.refused,
                        "devs": [[x.device_id, x.version, x.status, x.reason, x.device_version]
                                 for x in r.results]})
    return _envelope(body, REPORT_CONTEXT, key)


def _parse_result(i: int, x: object) -> DeviceResult:
    if not (isinstance(x, list) and len(x) == 5 and isinstance(x[0], bytes) and len(x[0]) == ID_LEN
            and _uint(x[1]) and x[2] in STATUSES and isinstance(x[3], str)
            and (x[4] is None or _uint(x[4]))):
        raise GwConfigError("malformed_body", f"devs[{i}]")
    return DeviceResult(x[0], x[1], x[2], x[3][:200], x[4])


def open_report(payload: bytes) -> tuple[bytes, bytes, Report]:
    """Decode without trusting: (body, sig, report). Check with verify(..., REPORT_CONTEXT)."""
    body, sig = _open(payload)
    m = _loads(body)
    if not isinstance(m, dict):
        raise GwConfigError("malformed_body", "not a map")
    gw, ver, ts, devs, err = m.get("gw"), m.get("ver"), m.get("ts"), m.get("devs"), m.get("err", "")
    if not (isinstance(gw, bytes) and len(gw) == ID_LEN and _uint(ver) and _uint(ts)
            and isinstance(devs, list) and isinstance(err, str)):
        raise GwConfigError("malformed_body", "gw, ver, ts and devs are required")
    if len(devs) > MAX_DEVICES:
        raise GwConfigError("oversized", f"{len(devs)} results > {MAX_DEVICES}")
    assert isinstance(ver, int) and isinstance(ts, int)
    return body, sig, Report(gw, ver, ts, tuple(_parse_result(i, x) for i, x in enumerate(devs)), err[:200])
