"""A real Mosquitto on a free loopback port, with password auth and per-gateway ACLs.

Usernames: "cloud" (reads every gateway's batches, writes acks and configs) and
one user per gateway named by its hex id, which may write only under
mcode/v0/gw/<its id>/ and read only its own ack and config topics.
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
topic readwrite $share/ingest/mcode/v0/gw/#

pattern write mcode/v0/gw/%u/batch
pattern write mcode/v0/gw/%u/status
pattern read mcode/v0/gw/%u/ack
pattern read mcode/v0/gw/%u/config
"""


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return exe


@dataclass
class Broker:
    workdir: Path
    users: dict[str, str]
    port: int = 0
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
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
        )
        return conf

    def start(self) -> Broker:
        if not self.port:
            self.port = free_port()
        conf = self._write_config()
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([mosquitto_exe(), "-c", str(conf)], stdout=log, stderr=log)
        try:
            wait_port(self.port)
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
