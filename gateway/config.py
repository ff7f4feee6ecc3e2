"""gateway.toml: identity, key, spool path, MQTT, BLE backend, batching and the device allowlist.

Example::

    gateway_id = "a1a2a3a4a5a6a7a8"
    private_key = "gateway.key"          # PEM Ed25519; relative paths are relative to this file
    spool = "spool.sqlite"
    cloud_public_key = "<64 hex: `mcode cloud public-key`>"  # verifies the cloud's signed config
    # remote_config = "remote-config.json"   # the applied cloud config; default next to the spool

    [mqtt]
    host = "127.0.0.1"
    port = 1883
    username = "a1a2a3a4a5a6a7a8"
    password = "gw-pw"

    [ble]
    backend = "default"                  # or "bumble:tcp-client:127.0.0.1:PORT"

    [batch]
    max_records = 100
    max_age_s = 2.0

    [[devices]]                          # until the cloud's config arrives; then that one
    id = "0102030405060708"
    key = "<64 hex: protocol.keys.gateway_key(device_key, gateway_id), from the cloud>"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    keepalive: int = 30
    session_expiry_s: int = 24 * 3600
    # The in-flight window (batches published, not yet acked by the cloud) adapts to the round
    # trip (gateway.inflight); these cap it. paho holds in-flight batches in RAM.
    max_inflight: int = 128
    max_inflight_bytes: int = 4 * 1024 * 1024
    republish_after_s: float = 30.0  # unacked batch is sent again after this
    status_interval_s: float = 30.0  # the retained online status (health figures) is refreshed this often
    reconnect_min_s: float = 1.0  # first retry after losing the broker; doubles, jittered, up to max
    reconnect_max_s: float = 30.0
    # TLS when tls_ca is set: the CA that signed the broker's certificate (hostname checked), and
    # optionally this gateway's client certificate and key. Relative paths: from this file.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


@dataclass(frozen=True)
class BleConfig:
    backend: str = "default"
    scan_s: float = 3.0
    sweep_interval_s: float = 10.0
    connect_timeout_s: float = 10.0
    op_timeout_s: float = 10.0  # one GATT read/write/command reply
    session_timeout_s: float = 60.0  # whole pull of one device
    concurrency: int = 2  # BLE connections at once
    backoff_base_s: float = 5.0
    backoff_max_s: float = 300.0
    log_capacity: int = 4096  # records a display's log holds (docs/firmware.md)
    near_full: float = 0.5  # a device likely this full (of log_capacity) is pulled first


@dataclass(frozen=True)
class BatchConfig:
    max_records: int = 100
    max_age_s: float = 2.0


@dataclass(frozen=True)
class SpoolConfig:
    """`spool = "path"`, or a [spool] table with `path` and these (0 = no limit)."""

    max_records: int = 1_000_000  # unconfirmed records; at the limit no more are pulled
    max_bytes: int = 512 * 1024 * 1024
    warn_fraction: float = 0.8  # log a warning and show the alarm in status from here
    keep_confirmed: int = 10_000  # entries in the confirmed-batches log


@dataclass(frozen=True)
class Device:
    id: bytes  # 8 bytes
    key: bytes  # 32-byte gateway command key for this device

    @property
    def hex(self) -> str:
        return self.id.hex()


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: bytes
    private_key_path: Path
    spool_path: Path
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ble: BleConfig = field(default_factory=BleConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    devices: tuple[Device, ...] = ()
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    cloud_public_key: bytes | None = None  # raw Ed25519: verifies the cloud's config (remote_config)
    remote_config_path: Path | None = None  # the applied cloud config; None: next to the spool

    @property
    def gateway_hex(self) -> str:
        return self.gateway_id.hex()

    def device(self, device_id: bytes) -> Device | None:
        for d in self.devices:
            if d.id == device_id:
                return d
        return None

    def load_private_key(self) -> Ed25519PrivateKey:
        return load_private_key(self.private_key_path)

    def cloud_key(self) -> Ed25519PublicKey | None:
        return None if self.cloud_public_key is None else \
            Ed25519PublicKey.from_public_bytes(self.cloud_public_key)

    @property
    def remote_config_file(self) -> Path:
        return self.remote_config_path or self.spool_path.with_name("remote-config.json")


def _hex(value: object, nbytes: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a hex string")
    try:
        b = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"{what} is not hex") from None
    if len(b) != nbytes:
        raise ConfigError(f"{what} must be {nbytes} bytes ({2 * nbytes} hex digits)")
    return b


def _section(raw: dict[str, object], name: str, cls: Any) -> object:
    sec = raw.get(name, {})
    if not isinstance(sec, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = set(cls.__dataclass_fields__)
    unknown = set(sec) - known
    if unknown:
        raise ConfigError(f"[{name}] unknown keys: {', '.join(sorted(unknown))}")
    try:
        return cls(**sec)
    except TypeError as e:
        raise ConfigError(f"[{name}]: {e}") from None


def parse(raw: dict[str, object], base: Path = Path(".")) -> GatewayConfig:
    gw = _hex(raw.get("gateway_id"), 8, "gateway_id")
    if not isinstance(raw.get("private_key"), str):
        raise ConfigError("private_key must be a path string")
    spool_path, spool = _spool(raw.get("spool"))
    devices: list[Device] = []
    seen: set[bytes] = set()
    raw_devices = raw.get("devices", [])
    if not isinstance(raw_devices, list):
        raise ConfigError("[[devices]] must be an array of tables")
    for i, d in enumerate(raw_devices):
        if not isinstance(d, dict):
            raise ConfigError(f"devices[{i}] must be a table")
        did = _hex(d.get("id"), 8, f"devices[{i}].id")
        if did in seen:
            raise ConfigError(f"devices[{i}]: duplicate id {did.hex()}")
        seen.add(did)
        devices.append(Device(did, _hex(d.get("key"), 32, f"devices[{i}].key")))
    mqtt = _section(raw, "mqtt", MqttConfig)
    ble = _section(raw, "ble", BleConfig)
    batch = _section(raw, "batch", BatchConfig)
    assert isinstance(mqtt, MqttConfig) and isinstance(ble, BleConfig) and isinstance(batch, BatchConfig)
    mqtt = _mqtt_paths(mqtt, base)
    if not 1 <= mqtt.max_inflight <= 10_000 or mqtt.max_inflight_bytes < 1:
        raise ConfigError("[mqtt] max_inflight must be 1..10000 and max_inflight_bytes at least 1")
    if not 1 <= batch.max_records <= 1000:
        raise ConfigError("[batch] max_records must be 1..1000 (protocol.batch.MAX_RECORDS)")
    return GatewayConfig(
        gateway_id=gw,
        private_key_path=(base / str(raw["private_key"])),
        spool_path=(base / spool_path),
        mqtt=mqtt, ble=ble, batch=batch, devices=tuple(devices), spool=spool,
        cloud_public_key=None if raw.get("cloud_public_key") is None else
        _hex(raw.get("cloud_public_key"), 32, "cloud_public_key"),
        remote_config_path=_remote_config_path(raw.get("remote_config"), base),
    )


def _remote_config_path(value: object, base: Path) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("remote_config must be a path string")
    return base / value


def _mqtt_paths(m: MqttConfig, base: Path) -> MqttConfig:
    if (m.tls_cert or m.tls_key) and not m.tls_ca:
        raise ConfigError("[mqtt] tls_cert/tls_key need tls_ca (the CA of the broker's certificate)")
    if bool(m.tls_cert) != bool(m.tls_key):
        raise ConfigError("[mqtt] tls_cert and tls_key go together")
    def at(v: str) -> str:
        return str(base / v) if v else ""

    return replace(m, tls_ca=at(m.tls_ca), tls_cert=at(m.tls_cert), tls_key=at(m.tls_key))


def _spool(value: object) -> tuple[str, SpoolConfig]:
    if isinstance(value, str):
        return value, SpoolConfig()
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise ConfigError('spool must be a path string, or a [spool] table with path = "..."')
    rest = {k: v for k, v in value.items() if k != "path"}
    sc = _section({"spool": rest}, "spool", SpoolConfig)
    assert isinstance(sc, SpoolConfig)
    ints = (sc.max_records, sc.max_bytes, sc.keep_confirmed)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or \
            not isinstance(sc.warn_fraction, int | float):
        raise ConfigError("[spool] limits must be numbers")
    if min(sc.max_records, sc.max_bytes) < 0 or not 0 < sc.warn_fraction <= 1 or sc.keep_confirmed < 1:
        raise ConfigError("[spool] limits must be >= 0 (0 = none), warn_fraction in (0, 1], "
                          "keep_confirmed >= 1")
    return value["path"], sc


def load(path: str | Path) -> GatewayConfig:
    p = Path(path)
    with p.open("rb") as f:
        raw = tomllib.load(f)
    return parse(raw, p.parent)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def generate_key(path: str | Path, overwrite: bool = False) -> Ed25519PrivateKey:
    """Write a new PEM Ed25519 private key (mode 0600) and return it."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; refusing to overwrite a gateway identity")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(pem)
    tmp.replace(p)
    return key
