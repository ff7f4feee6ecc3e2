"""A stand-in for the cloud's ingest: verifies each batch's signature and acks it after a "commit".

    acker = CloudAcker("127.0.0.1", port, {gateway_id: public_key}).start()
    ...
    acker.stop()

As user `cloud` (sim/broker.py's ACL) it subscribes to every gateway's batch topic and answers on
the gateway's ack topic with protocol.batch.encode_ack, the same shape the real cloud sends, as
cloud/worker.py does: a persistent session (clean start off, session expiry), the ack published
after the commit, the PUBACK after the ack (paho sends it when on_message returns).
`decide(bseq)` picks the status, or None to stay silent (a cloud that received but never committed).
Like the real cloud it stores a batch once per (gateway, bseq) and acks a redelivery again as
duplicates; `commit` is the hook for another notion of "stored once" (tests/gateway's SIGKILL test
commits per record). Bad input is counted, never raised: a malformed envelope or a bad signature
gets no ack.

Also runs as a process, so a benchmark's cloud does not share the measured process's GIL:

    python -m sim.cloud_acker --port P --key GATEWAY_HEX:PUBLIC_HEX [--exit-on-eof] [--store-resends]
prints READY once subscribed, and on SIGTERM one JSON line of its counters.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Self

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.uplink import tcp_nodelay
from protocol import batch as pbatch
from protocol import health
from protocol import record as precord
from sim.broker import Broker

SESSION_EXPIRY_S = 600


def _store_all(bseq: int) -> str | None:
    return pbatch.ACK_STORED


@dataclass
class AckerStats:
    deliveries: int = 0  # batch messages received, resends included
    acked: int = 0  # acks published
    malformed: int = 0
    bad_signatures: int = 0
    unknown_gateway: int = 0
    silent: int = 0  # decide() said None
    duplicates: int = 0  # deliveries of a committed batch, acked again without storing
    records: int = 0  # records committed


class CloudAcker:
    """`keys` maps gateway id (8 bytes) to its public key; a single key is accepted for any gateway.
    With `keep`, the (device id, record) pairs committed are kept in `records` (and in commit order
    in `log`), and every delivery's (gateway id, bseq) in `delivery_log`. `store_resends` commits
    a redelivered batch again (a benchmark replaying the same batches); `ack_delay_s` sends each ack
    that long after its commit, as a busy cloud does."""

    def __init__(self, host: str, port: int,
                 keys: Ed25519PublicKey | Mapping[bytes, Ed25519PublicKey],
                 decide: Callable[[int], str | None] = _store_all, username: str = "cloud",
                 password: str = "cloud-pw", keep: bool = True, client_id: str | None = None,
                 store_resends: bool = False, ack_delay_s: float = 0.0) -> None:
        self.host, self.port = host, port
        self.public_keys = keys
        self.decide = decide
        self.keep = keep
        self.store_resends = store_resends
        self.ack_delay_s = ack_delay_s
        self.lock = threading.Lock()
        self.stats = AckerStats()
        self.records: set[tuple[bytes, bytes]] = set()
        self.log: list[tuple[bytes, bytes]] = []
        self.record_commits: Counter[tuple[bytes, bytes]] = Counter()
        self.committed: set[tuple[bytes, int]] = set()  # (gateway id, bseq)
        self.delivered: set[int] = set()
        self.delivery_log: list[tuple[bytes, int]] = []
        self.acked: list[int] = []
        self.session_present: list[bool] = []  # per CONNACK
        self.ready = threading.Event()
        self._acks: queue.Queue[tuple[float, str, bytes] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"cloud-{id(self)}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set(username, password)
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.on_socket_open = tcp_nodelay  # as the cloud's clients do

    def start(self, timeout: float = 10.0) -> Self:
        """Connect (again, after `stop`) with the same client id: the session gets what was queued."""
        self.ready.clear()
        if self.ack_delay_s and self._sender is None:
            self._sender = threading.Thread(target=self._send_acks, name="cloud-acks", daemon=True)
            self._sender.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.c.connect(self.host, self.port, clean_start=False, properties=props)
        self.c.loop_start()
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"cloud acker not subscribed on {self.host}:{self.port} after {timeout}s")
        return self

    def stop(self) -> None:
        """Send the acks still due, disconnect; the session stays on the broker until `start`."""
        if self._sender is not None:
            self._acks.put(None)
            self._sender.join(10 + self.ack_delay_s)
            self._sender = None
        self.c.disconnect()
        self.c.loop_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, cl: mqtt.Client, ud: object, flags: mqtt.ConnectFlags, rc: object,
                    props: object) -> None:
        self.session_present.append(bool(flags.session_present))
        cl.subscribe(pbatch.BATCH_SUBSCRIPTION, qos=1)

    def _key(self, gateway_id: bytes) -> Ed25519PublicKey | None:
        if isinstance(self.public_keys, Ed25519PublicKey):
            return self.public_keys
        return self.public_keys.get(gateway_id)

    def commit(self, b: pbatch.Batch) -> tuple[int, int]:
        """"Commit" a verified batch the cloud stores (called under `lock`, before its ack);
        returns the ack's (stored, duplicates)."""
        if (b.gateway_id, b.bseq) in self.committed and not self.store_resends:
            self.stats.duplicates += 1
            return 0, len(b.records)
        self.committed.add((b.gateway_id, b.bseq))
        self.stats.records += len(b.records)
        if self.keep:
            self.records.update(b.records)
            self.log.extend(b.records)
            self.record_commits.update(b.records)
        return len(b.records), 0

    def _on_message(self, cl: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            body, sig, b = pbatch.open_envelope(bytes(msg.payload))
        except pbatch.BatchError:
            with self.lock:
                self.stats.malformed += 1
            return
        key = self._key(b.gateway_id)
        with self.lock:
            self.stats.deliveries += 1
            self.delivered.add(b.bseq)
            if self.keep:
                self.delivery_log.append((b.gateway_id, b.bseq))
            if key is None:
                self.stats.unknown_gateway += 1
                return
            if not pbatch.verify(body, sig, key):
                self.stats.bad_signatures += 1
                return
            status = self.decide(b.bseq)
            if status is None:
                self.stats.silent += 1
                return
            stored, dups = self.commit(b) if status == pbatch.ACK_STORED else (len(b.records), 0)
            self.acked.append(b.bseq)
            self.stats.acked += 1
        topic = pbatch.ack_topic(b.gateway_id.hex())
        ack = pbatch.encode_ack(b.bseq, status, stored=stored, duplicates=dups,
                                reason="" if status == pbatch.ACK_STORED else "stand-in quarantine")
        if self.ack_delay_s:
            self._acks.put((time.monotonic() + self.ack_delay_s, topic, ack))
        else:
            cl.publish(topic, ack, qos=1)

    def _send_acks(self) -> None:
        while (item := self._acks.get()) is not None:
            due, topic, ack = item
            time.sleep(max(0.0, due - time.monotonic()))
            self.c.publish(topic, ack, qos=1)

    def twice(self) -> list[tuple[bytes, bytes]]:
        """Records committed more than once (in two different batches)."""
        with self.lock:
            return [r for r, n in self.record_commits.items() if n > 1]

    def seqs_by_device(self) -> dict[bytes, list[int]]:
        """Each device's record seqs in the order the cloud committed them."""
        out: dict[bytes, list[int]] = {}
        with self.lock:
            for dev, raw in self.log:
                out.setdefault(dev, []).append(precord.unpack(raw)[4])
        return out


def observe_status(broker: Broker, gateway_hex: str = "a1a2a3a4a5a6a7a8"
                   ) -> tuple[mqtt.Client, list[dict[str, object]]]:
    """A cloud-side reader of a gateway's status topic, decoding every message (protocol.health).
    It subscribes on every connect, so it follows the gateway across broker restarts."""
    got: list[dict[str, object]] = []
    ready = threading.Event()
    obs = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    obs.username_pw_set("cloud", "cloud-pw")
    obs.reconnect_delay_set(1, 2)
    obs.on_connect = lambda cl, *a: cl.subscribe(pbatch.status_topic(gateway_hex), qos=1)
    obs.on_subscribe = lambda *a: ready.set()
    obs.on_message = lambda cl, ud, m: got.append(health.decode(m.payload))
    obs.on_socket_open = tcp_nodelay
    obs.connect(broker.host, broker.port)
    obs.loop_start()
    if not ready.wait(10):
        raise RuntimeError(f"status reader not subscribed on {broker.host}:{broker.port}")
    return obs, got


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--username", default="cloud")
    ap.add_argument("--password", default="cloud-pw")
    ap.add_argument("--key", action="append", required=True, metavar="GATEWAY_HEX:PUBLIC_HEX",
                    help="a gateway's id and raw Ed25519 public key, both hex (repeatable)")
    ap.add_argument("--store-resends", action="store_true",
                    help="commit a redelivered batch again (a benchmark replaying the same batches)")
    ap.add_argument("--exit-on-eof", action="store_true",
                    help="stop when stdin closes (a parent's pipe: the acker never outlives it)")
    a = ap.parse_args(argv)
    keys: dict[bytes, Ed25519PublicKey] = {}
    for spec in a.key:
        gw, _, pub = spec.partition(":")
        try:
            keys[bytes.fromhex(gw)] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub))
        except ValueError as e:
            ap.error(f"--key {spec!r}: {e}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if a.exit_on_eof:
        def until_eof() -> None:
            sys.stdin.read()
            done.set()

        threading.Thread(target=until_eof, daemon=True).start()
    acker = CloudAcker(a.host, a.port, keys, username=a.username, password=a.password, keep=False,
                       client_id="cloud-acker", store_resends=a.store_resends)
    acker.start()
    print("READY", flush=True)
    done.wait()
    acker.stop()
    print(json.dumps(asdict(acker.stats)), flush=True)


if __name__ == "__main__":
    main()
