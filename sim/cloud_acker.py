"""A stand-in for the cloud's ingest: verifies each batch's signature and acks it after a "commit".

    acker = CloudAcker("127.0.0.1", port, {gateway_id: public_key}).start()
    ...
    acker.stop()

As user `cloud` (sim/broker.py's ACL) it subscribes to every gateway's batch topic and answers on
the gateway's ack topic with protocol.batch.encode_ack, the same shape the real cloud sends.
`decide(bseq)` picks the status, or None to stay silent (a cloud that received but never committed).
Bad input is counted, never raised: a malformed envelope or a bad signature gets no ack.

Also runs as a process, so a benchmark's cloud does not share the measured process's GIL:

    python -m sim.cloud_acker --port P --key GATEWAY_HEX:PUBLIC_HEX [--exit-on-eof]
prints READY once subscribed, and on SIGTERM one JSON line of its counters.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from protocol import batch as pbatch


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
    records: int = 0  # records in acked-as-stored deliveries, resends counted again


class CloudAcker:
    """`keys` maps gateway id (8 bytes) to its public key; a single key is accepted for any gateway.
    With `keep`, the (device id, record) pairs of stored batches are kept in `records`."""

    def __init__(self, host: str, port: int,
                 keys: Ed25519PublicKey | Mapping[bytes, Ed25519PublicKey],
                 decide: Callable[[int], str | None] = _store_all, username: str = "cloud",
                 password: str = "cloud-pw", keep: bool = True, client_id: str | None = None) -> None:
        self.host, self.port = host, port
        self.keys = keys
        self.decide = decide
        self.keep = keep
        self.lock = threading.Lock()
        self.stats = AckerStats()
        self.records: set[tuple[bytes, bytes]] = set()
        self.delivered: set[int] = set()
        self.acked: list[int] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"cloud-{id(self)}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set(username, password)
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(pbatch.BATCH_SUBSCRIPTION, qos=1)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message

    def start(self, timeout: float = 10.0) -> CloudAcker:
        self.c.connect(self.host, self.port)
        self.c.loop_start()
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"cloud acker not subscribed on {self.host}:{self.port} after {timeout}s")
        return self

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def __enter__(self) -> CloudAcker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _key(self, gateway_id: bytes) -> Ed25519PublicKey | None:
        if isinstance(self.keys, Ed25519PublicKey):
            return self.keys
        return self.keys.get(gateway_id)

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
            if status == pbatch.ACK_STORED:  # "commit" before acking
                self.stats.records += len(b.records)
                if self.keep:
                    self.records.update(b.records)
            self.acked.append(b.bseq)
            self.stats.acked += 1
        reason = "" if status == pbatch.ACK_STORED else "stand-in quarantine"
        cl.publish(pbatch.ack_topic(b.gateway_id.hex()),
                   pbatch.encode_ack(b.bseq, status, stored=len(b.records), reason=reason), qos=1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--username", default="cloud")
    ap.add_argument("--password", default="cloud-pw")
    ap.add_argument("--key", action="append", required=True, metavar="GATEWAY_HEX:PUBLIC_HEX",
                    help="a gateway's id and raw Ed25519 public key, both hex (repeatable)")
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
                       client_id="cloud-acker")
    acker.start()
    print("READY", flush=True)
    done.wait()
    acker.stop()
    print(json.dumps(asdict(acker.stats)), flush=True)


if __name__ == "__main__":
    main()
