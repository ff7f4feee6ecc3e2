"""The cloud's signed config (protocol/gwconfig.py) as this gateway applied it, and what became of
each device configuration write it carries.

    rc = RemoteConfig(path, gateway_id, cloud_public_key)
    applied = rc.load()            # the last applied config, re-verified; None: use gateway.toml
    rc.offer(payload)              # from the config topic: applied, None (already), or GwConfigError
    blob = rc.pending(device_id)   # a sealed devconfig blob still to deliver to this device
    rc.record(device_id, blob, status, device_version)   # the device's reply to OP_CONFIG

A config is applied only if the cloud's key signed it, it names this gateway and its version is
above the applied one. The applied envelope is kept verbatim with the per-device results in one
JSON file, replaced by rename after an fsync, so a crash leaves the old or the new state and a
restart uses the latest applied config (re-verified, like the device's devconfig.bin).

Thread-safe: the uplink's thread offers configs, sessions record results from worker threads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.config import Device
from protocol import command, devconfig
from protocol import gwconfig as pg
from protocol.gwconfig import DeviceResult, GwConfig, GwConfigError

log = logging.getLogger(__name__)

STATE_FORMAT = 1

# Device replies that settle a write for good; any other status (busy, rate limited, bad tag,
# replay, bad argument) and any transport failure leave it pending for the next pull.
FINAL_REFUSALS = (command.BAD_CONFIG_TAG, command.BAD_VALUE, command.MALFORMED, command.STALE_VERSION,
                  command.UNKNOWN_OP)


def outcome(blob: bytes, status: int, device_version: int) -> tuple[str, str]:
    """(status, reason) in a report for the device's reply to OP_CONFIG with `blob`."""
    name = command.STATUS_NAMES.get(status, f"status_{status}")
    if status == command.OK:
        return pg.OK, ""
    if status == command.STALE_VERSION and device_version == devconfig.version_of(blob):
        # The device holds this very version: an earlier delivery whose reply we lost.
        return pg.OK, "already_applied"
    if status in FINAL_REFUSALS:
        return pg.REFUSED, name
    return pg.PENDING, name


class RemoteConfig:
    def __init__(self, path: str | Path, gateway_id: bytes, cloud_key: Ed25519PublicKey | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.gateway_id = gateway_id
        self.cloud_key = cloud_key
        self.clock = clock
        self.on_change: Callable[[], None] | None = None  # after results change (send a report)
        self._lock = threading.RLock()
        self._config: GwConfig | None = None
        self._payload: bytes | None = None
        self._results: dict[bytes, DeviceResult] = {}
        self.last_refusal: tuple[float, str] | None = None  # since the applied config: (unix time, reason)

    # -- the applied config --------------------------------------------------------------------

    @property
    def config(self) -> GwConfig | None:
        return self._config

    @property
    def version(self) -> int:
        return 0 if self._config is None else self._config.version

    def devices(self) -> tuple[Device, ...] | None:
        """The allowlist of the applied config; None when none is applied (use gateway.toml's)."""
        c = self._config
        return None if c is None else tuple(Device(d.id, d.key) for d in c.devices)

    def load(self) -> GwConfig | None:
        """Restore the state file, re-verifying the config it holds. A file that does not verify
        (a different cloud key in gateway.toml, damage) is ignored loudly, never trusted."""
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.error("REMOTE CONFIG %s unreadable (%s): using gateway.toml's devices", self.path, e)
            return None
        try:
            if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
                raise GwConfigError("bad_state_file", "unknown format")
            payload = bytes.fromhex(state["config"])
            c = self._accept(payload, 0)
            results = {r.device_id: r for r in map(_result_from_json, state.get("results", []))}
        except (GwConfigError, KeyError, TypeError, ValueError) as e:
            log.error("REMOTE CONFIG %s refused at start (%s): using gateway.toml's devices", self.path, e)
            return None
        with self._lock:
            self._install(c, payload, results)
        log.info("remote config v%d restored: %d devices, %d writes pending", c.version, len(c.devices),
                 sum(r.status == pg.PENDING for r in self._results.values()))
        return c

    def _accept(self, payload: bytes, current: int) -> GwConfig:
        if self.cloud_key is None:
            raise GwConfigError("no_cloud_key", "gateway.toml has no cloud_public_key")
        return pg.accept(payload, self.cloud_key, self.gateway_id, current)

    def offer(self, payload: bytes) -> GwConfig | None:
        """Apply a config from the cloud: returns it once applied and persisted, None if it is the
        one already applied (the broker redelivers the retained config on every connect).
        Raises GwConfigError (with `reason`) for anything refused; nothing changes then."""
        with self._lock:
            if payload == self._payload:
                return None
            try:
                c = self._accept(payload, self.version)
            except GwConfigError as e:
                self.last_refusal = (self.clock(), e.reason)
                raise
            old = self._results
            results: dict[bytes, DeviceResult] = {}
            for d in c.devices:
                v = d.config_version
                if v is None or d.config is None:
                    continue
                prev = old.get(d.id)
                prev_blob = self._blob(d.id)
                same = prev is not None and prev.version == v and prev_blob == d.config
                results[d.id] = prev if same and prev is not None else DeviceResult(d.id, v, pg.PENDING)
            self._save(payload, results)
            self._install(c, payload, results)
            self.last_refusal = None
        log.info("remote config v%d applied: %d devices, %d config writes, firmware targets %s",
                 c.version, len(c.devices), len(results), c.firmware or "-")
        self._changed()
        return c

    def _install(self, c: GwConfig, payload: bytes, results: dict[bytes, DeviceResult]) -> None:
        blobs = {d.id: d.config for d in c.devices}
        # Keep only results for writes this config still carries.
        self._results = {k: r for k, r in results.items()
                         if blobs.get(k) is not None and devconfig.version_of(blobs[k] or b"") == r.version}
        self._config = c
        self._payload = payload

    # -- device configuration writes ----------------------------------------------------------

    def _blob(self, device_id: bytes) -> bytes | None:
        c = self._config
        if c is None:
            return None
        for d in c.devices:
            if d.id == device_id:
                return d.config
        return None

    def pending(self, device_id: bytes) -> bytes | None:
        """The sealed blob to deliver to this device now, or None."""
        with self._lock:
            r = self._results.get(device_id)
            return self._blob(device_id) if r is not None and r.status == pg.PENDING else None

    def record(self, device_id: bytes, blob: bytes, status: int, device_version: int) -> DeviceResult | None:
        """The device replied `status` (protocol.command) to OP_CONFIG carrying `blob`, with its
        config version after the write. Returns the new result; None if `blob` is no longer the
        write for this device (a newer config replaced it during the pull)."""
        st, reason = outcome(blob, status, device_version)
        return self._set(device_id, blob, st, reason, device_version)

    def record_failure(self, device_id: bytes, blob: bytes, reason: str) -> DeviceResult | None:
        """The delivery did not get a reply (timeout, disconnect): still pending, with why."""
        return self._set(device_id, blob, pg.PENDING, reason, None)

    def _set(self, device_id: bytes, blob: bytes, status: str, reason: str,
             device_version: int | None) -> DeviceResult | None:
        with self._lock:
            if self._blob(device_id) != blob or device_id not in self._results:
                log.info("config write result for %s dropped: the write was replaced", device_id.hex())
                return None
            prev = self._results[device_id]
            if device_version is None:
                device_version = prev.device_version
            r = DeviceResult(device_id, devconfig.version_of(blob), status, reason[:200], device_version)
            if r == prev:
                return r
            results = {**self._results, device_id: r}
            assert self._payload is not None
            self._save(self._payload, results)
            self._results = results
        level = logging.ERROR if status == pg.REFUSED else logging.INFO
        log.log(level, "config write v%d to %s: %s%s", r.version, device_id.hex(), status,
                f" ({reason})" if reason else "")
        self._changed()
        return r

    def results(self) -> list[DeviceResult]:
        with self._lock:
            return sorted(self._results.values(), key=lambda r: r.device_id)

    def report(self, key: Ed25519PrivateKey) -> bytes:
        """Every write's result, signed: the whole state each time, so a lost report costs nothing."""
        with self._lock:
            r = pg.Report(self.gateway_id, self.version, int(self.clock() * 1000), tuple(self.results()),
                          self.last_refusal[1] if self.last_refusal else "")
        return pg.sign_report(r, key)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            counts = {s: 0 for s in pg.STATUSES}
            for r in self._results.values():
                counts[r.status] += 1
            return {"version": self.version, "devices": len(self._config.devices) if self._config else None,
                    "firmware": dict(self._config.firmware) if self._config else {},
                    "writes": counts, "last_refusal": self.last_refusal}

    # -- persistence -------------------------------------------------------------------------

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a report is a courtesy; the state is already saved
                log.exception("remote config change hook failed")

    def _save(self, payload: bytes, results: dict[bytes, DeviceResult]) -> None:
        state = {"format": STATE_FORMAT, "config": payload.hex(),
                 "results": [_result_to_json(r) for r in sorted(results.values(), key=lambda r: r.device_id)]}
        data = json.dumps(state, indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        # The rename itself must reach the disk before we act on the new config.
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _result_to_json(r: DeviceResult) -> dict[str, Any]:
    return {"id": r.device_id.hex(), "version": r.version, "status": r.status, "reason": r.reason,
            "device_version": r.device_version}


def _result_from_json(d: dict[str, Any]) -> DeviceResult:
    if d["status"] not in pg.STATUSES:
        raise ValueError(f"bad status {d['status']!r}")
    dv = d.get("device_version")
    return DeviceResult(bytes.fromhex(d["id"]), int(d["version"]), str(d["status"]), str(d.get("reason", "")),
                        None if dv is None else int(dv))
