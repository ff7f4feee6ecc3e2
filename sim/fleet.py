"""The whole virtual fleet as processes: Mosquitto, the radio, the cloud, a gateway, N devices.

Each tier runs as its own process on its real component, as it would in a shop:
devices in the MicroPython interpreter, the gateway and the cloud as `mcode` commands.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sim.broker import Broker
from sim.devices import VirtualDevice
from sim.ports import free_port, wait_port
from sim.process import stop_process
from sim.radio.hub import RadioHub

log = logging.getLogger(__name__)


@dataclass
class FleetPlan:
    devices: int = 3
    base_code: str = "4919"
    digits: int = 2
    period_s: int = 20
    pool_minor: int = 4000  # one order's reward pool, in minor units (40.00)
    heapsize: str = "64K"


def _mcode(*args: str) -> list[str]:
    return [sys.executable, "-m", "mcode.cli", *args]


@dataclass
class Fleet:
    workdir: Path
    plan: FleetPlan
    broker: Broker | None = None
    hub: RadioHub | None = None
    devices: list[VirtualDevice] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http_port: int = 0
    db_url: str = ""
    master_key: str = ""  # MCODE_CLOUD_MASTER_KEY of the fleet's cloud (hex)
    merchant: dict[str, Any] = field(default_factory=dict)
    gateway_id: str = ""
    device_restarts: dict[str, int] = field(default_factory=dict)
    site_port: int = 0  # the demo's own site (sim/demo_site.py): displays and the merchant's shop

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ble_spec(self) -> str:
        assert self.hub is not None
        return "bumble:" + self.hub.hci_spec

    @property
    def login_url(self) -> str:
        """The merchant page's login; the key to type is in merchant_key_file (never in a URL)."""
        return f"{self.api}/login"

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.site_port}"

    @property
    def shop_url(self) -> str:
        """The campaign's target URL: the merchant's online shop (served by sim/demo_site.py)."""
        return f"{self.site_url}/shop"

    @property
    def merchant_key_file(self) -> Path:
        return self.workdir / "merchant.key"

    def _write_merchant_key(self) -> None:
        """The merchant key, readable by this user only: printed nowhere, typed at /login."""
        path = self.merchant_key_file
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.merchant["api_key"] + "\n")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        # its own session: Ctrl-C at the demo's terminal reaches the demo only, which prints its
        # summary (asking the cloud) and then stops every process itself
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            env=dict(os.environ, **(env or {})), cwd=self.workdir,
                                            start_new_session=True)

    def start(self) -> Fleet:
        from cloud.services import campaigns, merchants, provision
        from cloud.settings import Settings
        from cloud.store import vault
        from cloud.store.migrate import migrated_engine
        from tools.boards import board_names

        boards = board_names()

        self.workdir.mkdir(parents=True, exist_ok=True)
        p = self.plan
        self.gateway_id = secrets.token_hex(8)
        cloud_pw, gw_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.broker = Broker(self.workdir / "broker", {"cloud": cloud_pw, self.gateway_id: gw_pw}).start()
        self.hub = RadioHub()
        self.hub.start()

        # Provision as a technician would: merchant, campaign, devices, gateway.
        self.db_url = f"sqlite:///{self.workdir / 'cloud.sqlite'}"
        engine = migrated_engine(self.db_url)
        # the cloud seals device keys under this master key; it goes to the cloud process's environment
        self.master_key = secrets.token_hex(32)
        sf = vault.session_factory(engine, Settings(db_url=self.db_url, master_key=self.master_key))
        self.merchant = merchants.create_merchant(sf, "Demo shop 演示商店")
        self._write_merchant_key()
        slots = max(4, p.devices)
        self.site_port = free_port()
        camp = campaigns.create(sf, self.merchant["merchant_id"], base_code=p.base_code, slots=slots,
                                digits=p.digits, period_s=p.period_s, pool_minor=p.pool_minor,
                                label_zh="扫码有礼", label_en="Tap and share",
                                landing_zh="到店出示结账码付款，或去网店下单。分享您的码：朋友购买，您得分成。",
                                landing_en="Pay at the counter with a checkout code, or order online. Share "
                                           "your code: when a friend buys, you get a part.")
        self._set_target(sf, camp["campaign_id"])
        gw_key = Ed25519PrivateKey.generate()
        key_path = self.workdir / "gateway" / "gateway.key"
        key_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.write_bytes(gw_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        key_path.chmod(0o600)
        pub = gw_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for i in range(p.devices):
            cfg = provision.create_device(sf, camp["campaign_id"], slot=i, label=f"Display {i + 1}")
            dev = VirtualDevice(self.workdir / "devices" / cfg["device_id"], self.hub.dev_addr, p.heapsize)
            # Every board profile in hardware/boards/ runs: kiosk, shelf label, kiosk, ...
            dev.provision(cfg, board=boards[i % len(boards)])
            self.devices.append(dev)
        provision.create_gateway(sf, self.gateway_id, pub.hex(), self.merchant["merchant_id"], "back room")
        dev_keys = provision.gateway_device_keys(sf, self.gateway_id)
        engine.dispose()
        self._write_gateway_config(gw_pw, dev_keys)

        self.http_port = free_port()
        self._spawn("cloud", _mcode("cloud", "run", "--port", str(self.http_port)), {
            # loopback only, no TLS: cookies without Secure (the demo says so when it starts)
            "MCODE_CLOUD_INSECURE_HTTP": "1",
            "MCODE_CLOUD_DB_URL": self.db_url, "MCODE_CLOUD_BROKER_PORT": str(self.broker.port),
            "MCODE_CLOUD_BROKER_PASSWORD": cloud_pw, "MCODE_CLOUD_ADMIN_KEY": secrets.token_urlsafe(32),
            "MCODE_CLOUD_MASTER_KEY": self.master_key})
        wait_port(self.http_port, timeout=30)
        for dev in self.devices:
            dev.start()
        gw_conf = str(self.workdir / "gateway" / "gateway.toml")
        self._spawn("gateway", _mcode("gateway", "run", "--config", gw_conf))
        return self

    def _set_target(self, sf: Any, campaign_id: int) -> None:
        """The campaign's online shop is the demo's (its landing page's button goes there). Set on
        the row: the service takes https target URLs only, and the demo's shop is plain HTTP on
        loopback."""
        from cloud.store.models import Campaign

        with sf.begin() as s:
            c = s.get(Campaign, campaign_id)
            c.target_url = self.shop_url

    def _write_gateway_config(self, password: str, dev_keys: list[dict[str, Any]]) -> None:
        assert self.broker is not None
        lines = [
            f'gateway_id = "{self.gateway_id}"', 'private_key = "gateway.key"', 'spool = "spool.sqlite"', "",
            "[mqtt]", f'host = "{self.broker.host}"', f"port = {self.broker.port}",
            f'username = "{self.gateway_id}"', f'password = "{password}"', "republish_after_s = 5.0", "",
            "[ble]", f'backend = "{self.ble_spec}"', "scan_s = 1.0", "sweep_interval_s = 1.0",
            "connect_timeout_s = 5.0", "backoff_base_s = 1.0", "backoff_max_s = 5.0", "",
            "[batch]", "max_records = 100", "max_age_s = 0.5", "",
        ]
        for d in dev_keys:
            lines += ["[[devices]]", f'id = "{d["device_id"]}"', f'key = "{d["gateway_key"]}"', ""]
        path = self.workdir / "gateway" / "gateway.toml"
        path.write_text("\n".join(lines))
        path.chmod(0o600)

    def check_alive(self) -> list[str]:
        """Processes that died. A device that ended (a crash, or its watchdog) is
        started again, as an ESP32 resets itself, and counted in device_restarts;
        the gateway, cloud and broker are reported."""
        dead = [n for n, pr in self.procs.items() if pr.poll() is not None]
        for d in self.devices:
            if not d.alive():
                rc = d.proc.returncode if d.proc is not None else None
                log.warning("device %s ended (exit %s): restarting it", d.device_id, rc)
                self.device_restarts[d.device_id] = self.device_restarts.get(d.device_id, 0) + 1
                d.start()
        return dead

    def stop(self) -> None:
        for pr in self.procs.values():
            if pr.poll() is None:
                pr.send_signal(signal.SIGTERM)
        for pr in self.procs.values():
            stop_process(pr)
        for d in self.devices:
            d.stop()
        if self.hub is not None:
            self.hub.stop()
        if self.broker is not None:
            self.broker.stop()
