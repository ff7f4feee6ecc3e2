"""A real Mosquitto on a free loopback port, with password auth and per-gateway ACLs that cover
SUBSCRIBE too (Mosquitto's dynamic-security plugin).

Usernames: the cloud's users and one user per gateway named by its hex id. Every user is bound to
one client id (the plugin's `clientid`): connecting with another id is CONNACK 0x87, so no user can
take over another's session (a user with no bound id could take over any, bound or not). Gateways
are bound to `gw-<id>`. The "cloud" entry of `users` makes the cloud's users (cloud/mqtt/identity.py:
cloud-ingest-<w> for each of `ingest_workers`, cloud-reports, cloud-status, cloud-config, each bound to its
HMAC-derived id, all with the cloud's password and role) and the user "cloud" itself, for test
stand-ins (sim/cloud_acker.py, observers) that pick their own client ids: it is bound too unless
named in `open_users` (by default it is; a production broker has no such user, docs/gateway.md).
What each may do, and nothing else (the plugin's default access is deny for publish, receive,
subscribe and unsubscribe):
- a gateway: publish mcode/v0/gw/<its id>/{batch,status,report}; subscribe to (and receive)
  exactly mcode/v0/gw/<its id>/ack and .../config, no wildcards, no $share;
- cloud: subscribe to (and receive) mcode/v0/gw/+/{batch,status,report} and the ingest workers'
  $share/<any group>/mcode/v0/gw/+/batch; publish mcode/v0/gw/<any>/{ack,config}.
A refused SUBSCRIBE gets SUBACK reason 0x87 (not authorized); a refused PUBLISH, PUBACK 0x87.

Why not acl_file: Mosquitto 2.0's acl_file checks no SUBSCRIBE, only each message's topic at
delivery, so any gateway could join the ingest workers' shared subscription and have the broker
hand it (and drop) a share of every gateway's batches. The plugin of 2.0.11 has no %u in ACL
topics (plugins/dynamic-security/acl.c matches topics verbatim), so each gateway gets a role of
its own. The cloud's HMAC-derived default group (cloud/worker.py) stays as defense in depth for
brokers configured with acl_file.

The plugin's JSON (clients with PBKDF2-SHA512 hashes, roles, default access) is written from
`users` at every start(); users added to the dict later count from the next start().
With `tls` it also listens on `tls_port` with TLS (sim/certs.py makes the files at run time),
the same users and ACLs, optionally requiring a client certificate from the same CA.
`autosave_interval` is how often Mosquitto writes its persistence (it also writes on SIGTERM,
never on SIGKILL): what it PUBACKed since the last save is lost by a SIGKILL.

`message_size_limit` is the largest legitimate message of any kind (MESSAGE_SIZE_LIMIT: a signed
gateway config, 256 KiB; the largest batch is 52,118 bytes and the cloud quarantines a larger one
as `oversized`); Mosquitto's limit is global, not per topic. Larger publishes get PUBACK 0x83
and go nowhere. Retained messages cannot be refused per topic on Mosquitto 2.0 (`retain_available`
is global, and gateways retain their status, the cloud their configs), so the ingest worker ignores
retained batches (cloud/mqtt/worker.py).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.mqtt import identity
from protocol import batch as pb
from protocol import gwconfig, health
from sim.ports import free_port, wait_port
from sim.process import stop_process

CLOUD_USER = "cloud"
DYNSEC_SO = "mosquitto_dynamic_security.so"
PW_ITERATIONS = 101  # what mosquitto_ctrl and mosquitto_passwd of 2.0.11 use
SALT_LEN = 12  # the plugin drops a client whose salt is any other length (clients.c)
HASH_LEN = 64  # PBKDF2-HMAC-SHA512 output
INGEST_WORKERS = ("0", "1", "2", "3")  # worker ids the cloud's users are made for
MESSAGE_SIZE_LIMIT = max(pb.MAX_PAYLOAD, gwconfig.MAX_PAYLOAD, health.MAX_PAYLOAD)


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return exe


def dynsec_plugin() -> str:
    """The dynamic-security plugin of the installed Mosquitto (Debian: /usr/lib/<triplet>/)."""
    found = sorted(glob.glob(f"/usr/lib/*/{DYNSEC_SO}")) + [
        p for p in (f"/usr/lib/{DYNSEC_SO}", f"/usr/local/lib/{DYNSEC_SO}") if Path(p).exists()]
    if not found:
        raise RuntimeError(f"{DYNSEC_SO} not found (Debian's mosquitto package ships it)")
    return found[0]


def _allow(acltype: str, *topics: str) -> list[dict[str, Any]]:
    return [{"acltype": acltype, "topic": t, "allow": True} for t in topics]


def cloud_role() -> dict[str, Any]:
    reads = (pb.BATCH_SUBSCRIPTION, f"{pb.TOPIC_ROOT}/+/status", gwconfig.REPORT_SUBSCRIPTION)
    subs = (*reads, f"$share/+/{pb.BATCH_SUBSCRIPTION}")  # the ingest workers' group, any name
    return {"rolename": CLOUD_USER, "acls": [
        *_allow("publishClientSend", pb.ack_topic("+"), gwconfig.config_topic("+")),
        *_allow("publishClientReceive", *reads),
        *_allow("subscribePattern", *subs),
        *_allow("unsubscribePattern", *subs)]}


def gateway_role(gw: str) -> dict[str, Any]:
    """Only this gateway's own topics, spelled out (the plugin has no %u)."""
    if not gw or any(c in gw for c in "/+#$\0"):
        raise ValueError(f"gateway user {gw!r} would be a wildcard or system topic in its ACL")
    reads = (pb.ack_topic(gw), gwconfig.config_topic(gw))
    return {"rolename": f"gateway-{gw}", "acls": [
        *_allow("publishClientSend", pb.batch_topic(gw), pb.status_topic(gw), gwconfig.report_topic(gw)),
        *_allow("publishClientReceive", *reads),
        *_allow("subscribeLiteral", *reads),  # literal: a filter with + or # matches no entry
        *_allow("unsubscribeLiteral", *reads)]}


def _client(user: str, password: str, role: str, clientid: str | None) -> dict[str, Any]:
    salt = os.urandom(SALT_LEN)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PW_ITERATIONS, HASH_LEN)
    bound = {} if clientid is None else {"clientid": clientid}
    return {"username": user, "password": base64.b64encode(digest).decode(),
            "salt": base64.b64encode(salt).decode(), "iterations": PW_ITERATIONS,
            "roles": [{"rolename": role}], **bound}


def dynsec_config(users: dict[str, str], ingest_workers: tuple[str, ...] = INGEST_WORKERS,
                  open_users: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The plugin's whole state: one client per user, each bound to its client id (except
    `open_users`), one role per gateway and one for the cloud's users; everything else denied."""
    roles, clients = [], []
    for user, pw in users.items():
        if user == CLOUD_USER:
            roles.append(cloud_role())
            cloud = [user, *identity.cloud_users(CLOUD_USER, ingest_workers)]
            clients += [_client(u, pw, CLOUD_USER, None if u in open_users else identity.client_id(pw, u))
                        for u in cloud]
        else:
            role = gateway_role(user)
            roles.append(role)
            clients.append(_client(user, pw, role["rolename"],
                                   None if user in open_users else identity.gateway_client_id(user)))
    return {"clients": clients, "groups": [], "roles": roles,
            "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": False}}


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
    ingest_workers: tuple[str, ...] = INGEST_WORKERS
    open_users: frozenset[str] = frozenset({CLOUD_USER})  # test stand-ins only; see the docstring
    tcp_nodelay: bool = True  # False only to measure what Nagle costs (benchmarks/end_to_end.py --nagle)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sec = self.workdir / "dynsec.json"
        sec.touch(mode=0o600)
        sec.chmod(0o600)  # password hashes: private before anything is written
        sec.write_text(json.dumps(dynsec_config(self.users, self.ingest_workers, self.open_users), indent=1))
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            ""
            # As root, Mosquitto would drop to user "mosquitto", who cannot read a private tmp dir.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"plugin {dynsec_plugin()}\n"
            f"plugin_opt_config_file {sec}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            f"autosave_interval {self.autosave_interval}\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"message_size_limit {MESSAGE_SIZE_LIMIT}\n"
            # Nagle would hold each small PUBLISH/PUBACK back for the peer's delayed ACK (about
            # 40 ms a round trip); Mosquitto leaves it on unless told.
            f"set_tcp_nodelay {'true' if self.tcp_nodelay else 'false'}\n"
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
