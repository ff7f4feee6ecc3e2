"""A real Mosquitto on a free loopback port, with password auth and per-gateway ACLs.

Usernames: "cloud" (reads every gateway's batches, writes acks and configs) and
one user per gateway named by its hex id, which may write only under
mcode/v0/gw/<its id>/ and read only its own ack and config topics.

With `tls` it also listens on `tls_port` with TLS (sim/certs.py makes the files at run time),
the same users and ACLs, optionally requiring a client certificate from the same CA.
`autosave_interval` is how often Mosquitto writes its persistence (it also writes on SIGTERM,
never on SIGKILL): what it PUBACKed since the last save is lost by a SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sim.ports import free_port, wait_port
from sim.process import stop_process

ACL = """\
user cloud
topic readwrite mcode/v0/gw/#
# No line for the ingest workers' $share/<group>/... : Mosquitto 2.0's acl_file checks no SUBSCRIBE,
# only each message's real topic on delivery, so the line above covers shared subscriptions too.

pattern write mcode/v0/gw/%u/batch
pattern write mcode/v0/gw/%u/status
pattern write mcode/v0/gw/%u/report
pattern read mcode/v0/gw/%u/ack
pattern read mcode/v0/gw/%u/config
"""


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return exe


@dataclass(frozen=True)
class BrokerTls:
    ca: Path  # CA certificate that signs clients' certificates (when required)
    cert: Path  # the broker's certificate and key
    key: Path
    require_client_cert: bool = False


@dataclass
class Broker:
    workdir: Path
    users: dict[str, str]
    port: int = 0
    tls: BrokerTls | None = None
    tls_port: int = 0
    autosave_interval: int = 1
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pw = self.workdir / "passwd"
        pw.write_text("")
        pw.chmod(0o600)
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True,
                           capture_output=True)
        acl = self.workdir / "acl"
        acl.write_text(ACL)
        acl.chmod(0o600)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            ""
            # As root, Mosquitto would drop to user "mosquitto", who cannot read a private tmp dir.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {pw}\n"
            f"acl_file {acl}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            f"autosave_interval {self.autosave_interval}\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
            + self._tls_listener()
        )
        return conf

    def _tls_listener(self) -> str:
        if self.tls is None:
            return ""
        t = self.tls
        return (f"listener {self.tls_port} 127.0.0.1\n"
                f"cafile {t.ca}\ncertfile {t.cert}\nkeyfile {t.key}\n"
                f"require_certificate {'true' if t.require_client_cert else 'false'}\n")

    def start(self) -> Broker:
        if not self.port:
            self.port = free_port()
        if self.tls is not None and not self.tls_port:
            self.tls_port = free_port()
        conf = self._write_config()
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([mosquitto_exe(), "-c", str(conf)], stdout=log, stderr=log)
        try:
            wait_port(self.port)
            if self.tls is not None:
                wait_port(self.tls_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError((self.workdir / "mosquitto.log").read_text()[-2000:]) from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
