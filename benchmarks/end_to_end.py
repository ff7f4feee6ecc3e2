"""End to end: events/s from a sealed gateway spool to rows committed in the cloud's database and
acked back to the gateway, as a ratio of a raw reference pipeline in the same run.

Run: python -m benchmarks.end_to_end [--events 200000 --batches 100,1000 --rounds 3]
     [--db sqlite|postgresql] [--quick] [--json]

One real Mosquitto with auth (sim/broker.py, TCP_NODELAY on) serves every run. For each batch size
and round, `events` tap records from 10 devices are spooled and sealed into signed batches outside
the clock (gateway.spool.Spool, SQLite synchronous=FULL), then, in alternating order:

- pipeline: the project's parts. gateway.uplink.Uplink publishes the spool, pumped every service
  tick (benchmarks.gateway_uplink.run_gateway); one cloud.mqtt.worker.IngestWorker in its own
  process, as `mcode cloud ingest` runs it, stores into a fresh database (SQLite in WAL mode with
  synchronous=FULL, or PostgreSQL) and acks after each commit. The clock runs from the Uplink's
  start until the cloud's acks have emptied the spool.
- raw: the same signed payloads, the same broker. A plain paho publisher (paho's default in-flight
  window of 20, TCP_NODELAY) and, in its own process, a minimal subscriber that verifies each
  batch's Ed25519 signature, HMACs each record with the stdlib's hmac, inserts the rows with the
  DB-API's executemany (ON CONFLICT DO NOTHING), commits per batch, publishes the ack and then
  PUBACKs, as the cloud does. The clock runs from the publisher's connect until its last ack.

Each consumer is connected and subscribed before its clock starts. After every run the database is
checked: every event stored exactly once (per device: seqs 1..n, each once). Reported per batch
size: events/s of both and their ratio, median, min and max over the rounds. --db postgresql starts a
throwaway server the way the tests do (tests/pg.py).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import text

from benchmarks.gateway_uplink import GW_HEX, GW_ID, GW_PW, run_gateway, run_raw, sealed_spool
from gateway.config import MqttConfig
from protocol import batch as pb
from protocol import record as pr
from protocol.hmac256 import HmacKey
from protocol.keys import record_key
from sim.broker import Broker

CLOUD_PW = "cloud-pw"
DEVICES = 10
RAW_WINDOW = 20  # paho's default max_inflight_messages
WORKER_ID = "0"  # one of the ingest workers sim/broker.py makes a broker user for
RECEIVED_AT_MS = 1_700_000_000_000
WAIT_S = 600.0  # give up on a run; never a pass/fail bound
_RAW = (Encoding.Raw, PublicFormat.Raw)


@dataclass
class Workload:
    gw_key: Ed25519PrivateKey
    device_keys: list[tuple[bytes, bytes]]  # (device id, 32-byte device key)
    records: list[tuple[bytes, list[bytes]]]  # per device, in seq order

    @property
    def events(self) -> int:
        return sum(len(rs) for _, rs in self.records)

    def keys_json(self) -> str:
        return json.dumps({"gateway": self.gw_key.public_key().public_bytes(*_RAW).hex(),
                           "devices": {d.hex(): k.hex() for d, k in self.device_keys}})


def make_workload(events: int, devices: int = DEVICES) -> Workload:
    keys = [((0xA0 + d).to_bytes(1, "big") * 8, bytes([d + 1]) * 32) for d in range(devices)]
    per = max(1, events // devices)
    records = []
    for dev, k in keys:
        rk = HmacKey(record_key(k))
        records.append((dev, [pr.make(rk, dev, pr.KIND_TAP, pr.FLAG_CLOCK_SET, 1, s, 1_700_000_000 + s,
                                      s.to_bytes(8, "big")) for s in range(1, per + 1)]))
    return Workload(Ed25519PrivateKey.generate(), keys, records)


# ---- databases ----------------------------------------------------------------------------------

class Databases:
    """Fresh, migrated, provisioned databases: SQLite files under `work`, or PostgreSQL databases
    copied from the migrated template of a throwaway server (tests/pg.py)."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind, self.work = kind, work
        self._n = 0
        self._cluster: Any = None
        if kind == "postgresql":
            from tests.pg import start_cluster

            self._cluster = start_cluster()

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()

    def fresh(self, w: Workload) -> str:
        from cloud.store.engine import make_engine
        from cloud.store.migrate import upgrade

        self._n += 1
        if self._cluster is None:
            url = f"sqlite:///{self.work / f'cloud-{self._n}.db'}"
            engine = make_engine(url)
            upgrade(engine)
        else:
            from tests.pg import TEMPLATE

            url = self._cluster.url(self._cluster.create_database(TEMPLATE))
            engine = make_engine(url)
        try:
            _provision(engine, w)
        finally:
            engine.dispose()
        return url


def _settings(port: int = 0, nagle: bool = False) -> Any:
    from benchmarks.cloud_ingest import MASTER_KEY
    from cloud.settings import Settings

    return Settings(broker_host="127.0.0.1", broker_port=port, broker_password=CLOUD_PW,
                    broker_tcp_nodelay=not nagle, master_key=MASTER_KEY)


def _provision(engine: Any, w: Workload) -> None:
    """One merchant, campaign and gateway, and the workload's devices with their keys."""
    from cloud.services import campaigns, merchants, provision
    from cloud.store import vault
    from cloud.store.models import Device

    sf = vault.session_factory(engine, _settings())
    m = merchants.create_merchant(sf, "bench")
    c = campaigns.create(sf, m["merchant_id"], base_code="7001", slots=max(10, len(w.device_keys)),
                         digits=4, period_s=60, pool_minor=0, label_zh="基准", label_en="bench")
    for dev, _ in w.device_keys:
        provision.create_device(sf, c["campaign_id"], device_id=dev.hex())
    with sf.begin() as s:  # the keys the workload's records were sealed with
        for dev, key in w.device_keys:
            d = s.get(Device, dev.hex())
            assert d is not None
            d.key_sealed = vault.of(s).seal_device_key(dev.hex(), key)
    provision.create_gateway(sf, GW_HEX, w.gw_key.public_key().public_bytes(*_RAW).hex(),
                             merchant_id=m["merchant_id"])


def check_exactly_once(url: str, w: Workload) -> int:
    """Every event of the workload stored exactly once; returns the rows counted. Raises if not."""
    from cloud.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            got = {r[0]: tuple(r[1:]) for r in conn.execute(text(
                "SELECT device_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events "
                "GROUP BY device_id"))}
    finally:
        engine.dispose()
    want = {dev.hex(): (len(rs), len(rs), 1, len(rs)) for dev, rs in w.records}
    if got != want:
        raise RuntimeError(f"not every event stored exactly once: got {got}, want {want}")
    return sum(v[0] for v in got.values())


# ---- consumers, each in its own process (the cloud is another machine, not our GIL) ------------

class RawSubscriber:
    """The raw reference's cloud: verify, HMAC with the stdlib, executemany, commit, ack, PUBACK."""

    def __init__(self, url: str, keys: dict[str, Any], client_id: str, nagle: bool = False) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from cloud.services.ingest import EVENT_COLUMNS
        from gateway.uplink import tcp_nodelay

        self.gw_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys["gateway"]))
        self.rec_keys = {bytes.fromhex(d): record_key(bytes.fromhex(k)) for d, k in keys["devices"].items()}
        self.pg = url.startswith("postgresql")
        ph = "%s" if self.pg else "?"
        self.sql = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join([ph] * 11)}) "
                    "ON CONFLICT (device_id, epoch, seq) DO NOTHING")
        self.db = _dbapi_connect(url)
        self.stats = {"batches": 0, "stored": 0, "bad": 0, "errors": 0}
        self.ready = False
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.username_pw_set("cloud", CLOUD_PW)
        self.c.on_socket_open = None if nagle else tcp_nodelay
        self.c.on_connect = lambda cl, *a: cl.subscribe(pb.BATCH_SUBSCRIPTION, qos=1)
        self.c.on_subscribe = lambda *a: setattr(self, "ready", True)
        self.c.on_message = self._on_message

    def _on_message(self, cl: Any, ud: object, msg: Any) -> None:
        try:
            self._handle(cl, msg)
        except Exception as e:  # say so, and let the parent's run time out rather than end paho's thread
            self.stats["errors"] += 1
            print(f"raw subscriber: {e!r}", file=sys.stderr, flush=True)

    def _handle(self, cl: Any, msg: Any) -> None:
        try:
            body, sig, b = pb.open_envelope(bytes(msg.payload))
            self.gw_key.verify(sig, pb.SIG_CONTEXT + body)
        except Exception:  # a bad batch: no ack, as the cloud would quarantine it
            self.stats["bad"] += 1
            return
        rows = []
        gw = b.gateway_id.hex()
        for dev, rec in b.records:
            k = self.rec_keys.get(dev)
            tag = hmac.new(k, dev + rec[:pr.BODY_LEN], hashlib.sha256).digest() if k else b""
            if not hmac.compare_digest(tag[:pr.TAG_LEN], rec[pr.BODY_LEN:]):
                self.stats["bad"] += 1
                continue
            _, kind, flags, epoch, seq, t, data = pr.unpack(rec)
            rows.append((dev.hex(), epoch, seq, kind, flags, t, data, rec, gw, b.bseq, RECEIVED_AT_MS))
        cur = self.db.cursor()
        cur.executemany(self.sql, rows)
        self.db.commit()
        self.stats["batches"] += 1
        self.stats["stored"] += len(rows)
        cl.publish(pb.ack_topic(gw), pb.encode_ack(b.bseq, pb.ACK_STORED, stored=len(rows), duplicates=0),
                   qos=1)

    def start(self, port: int) -> None:
        self.c.connect("127.0.0.1", port, clean_start=True)
        self.c.loop_start()
        deadline = time.monotonic() + 30
        while not self.ready:
            if time.monotonic() > deadline:
                raise RuntimeError("raw subscriber: no SUBACK")
            time.sleep(0.01)

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
        self.db.close()


def _dbapi_connect(url: str) -> Any:
    if url.startswith("postgresql"):
        import psycopg

        return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
    import sqlite3

    # paho's network thread uses it, after this thread opened it: one thread at a time
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # as the cloud's engine: no committed loss on power cut
    return conn


def child(kind: str, url: str, port: int, client_id: str, keys_file: Path, nagle: bool) -> None:
    """One consumer: READY once subscribed, then runs until STOP on stdin; prints its counts."""
    c0 = time.process_time()
    if kind == "worker":
        from cloud.mqtt.worker import IngestWorker
        from cloud.store import vault
        from cloud.store.engine import make_engine

        engine = make_engine(url)
        settings = _settings(port, nagle)
        worker = IngestWorker(vault.session_factory(engine, settings), settings, worker_id=WORKER_ID,
                              group=f"g-{client_id}")
        worker.start()
        print("READY", flush=True)
        sys.stdin.readline()
        worker.stop()
        stats: dict[str, Any] = worker.snapshot()
        engine.dispose()
        _end_session(settings)
    else:
        raw = RawSubscriber(url, json.loads(keys_file.read_text()), client_id, nagle)
        raw.start(port)
        print("READY", flush=True)
        sys.stdin.readline()
        raw.stop()
        stats = raw.stats
    print(json.dumps({**stats, "cpu_s": time.process_time() - c0}), flush=True)


def _end_session(settings: Any) -> None:
    """End the stopped worker's persistent session, so later runs' batches do not queue for it.
    (IngestWorker.stop(retire=True) would, but it can miss an UNSUBACK that beats it to noting the
    mid, and then waits 30 s.)"""
    from cloud.mqtt import identity
    from cloud.mqtt.client import connect, make_client

    c = make_client(settings, identity.ingest_role(WORKER_ID))
    connect(c, settings, clean_start=True)  # session expiry 0: gone on disconnect
    c.loop_start()
    c.disconnect()
    c.loop_stop()


@contextmanager
def consumer(kind: str, url: str, port: int, tag: str, keys_file: Path,
             nagle: bool) -> Iterator[dict[str, Any]]:
    """A consumer process, subscribed on entry; on exit, stopped and its counts put in the dict."""
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.end_to_end", "--child", kind, "--db-url", url,
                          "--port", str(port), "--client-id", f"e2e-{kind}-{tag}", "--keys", str(keys_file),
                          *(["--nagle"] if nagle else [])],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert p.stdin is not None and p.stdout is not None
    out: dict[str, Any] = {}
    try:
        if p.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{kind} consumer did not start")
        yield out
        p.stdin.write("STOP\n")
        p.stdin.flush()
        out.update(json.loads(p.stdout.readline()))
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---- rounds -------------------------------------------------------------------------------------

def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4)}


def one_round(work: Path, broker: Broker, dbs: Databases, w: Workload, per_batch: int, r: int,
              keys_file: Path, window: int, nagle: bool) -> dict[str, Any]:
    tag = f"{per_batch}-{r}"
    spool = sealed_spool(work / f"spool-{tag}.sqlite", w.gw_key, w.records, per_batch)
    payloads = [(p.bseq, p.payload) for p in spool.pending_batches()]
    out: dict[str, Any] = {"round": r + 1, "batch": per_batch, "batches": len(payloads)}
    order = ("raw", "pipeline") if r % 2 == 0 else ("pipeline", "raw")
    out["order"] = "/".join(order)
    try:
        for what in order:
            url = dbs.fresh(w)
            with consumer("raw" if what == "raw" else "worker", url, broker.port, tag, keys_file,
                          nagle) as cons:
                if what == "raw":
                    _, dt, cpu = run_raw(broker, payloads, RAW_WINDOW, nagle)
                else:
                    dt, _, cpu = run_gateway(broker, spool, window, nagle=nagle)
            out[what] = {"seconds": dt, "eps": w.events / dt, "stored": check_exactly_once(url, w),
                         "client_cpu_us_per_batch": 1e6 * cpu / len(payloads),
                         "cloud_cpu_us_per_batch": 1e6 * cons["cpu_s"] / len(payloads)}
    finally:
        spool.close()
    out["ratio"] = out["pipeline"]["eps"] / out["raw"]["eps"]
    return out


def measure(events: int, batches: list[int], rounds: int, db: str, window: int,
            verbose: bool = True, nagle: bool = False) -> dict[str, Any]:
    w = make_workload(events)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mcode-e2e-bench-", ignore_cleanup_errors=True) as d:
        work = Path(d)
        keys_file = work / "keys.json"
        keys_file.write_text(w.keys_json())
        dbs = Databases(db, work)
        try:
            with Broker(work / "broker", {"cloud": CLOUD_PW, GW_HEX: GW_PW}, tcp_nodelay=not nagle) as broker:
                for per_batch in batches:
                    for r in range(rounds):
                        run = one_round(work, broker, dbs, w, per_batch, r, keys_file, window, nagle)
                        runs.append(run)
                        if verbose:
                            print(f"batch {per_batch} round {r + 1} ({run['order']}): pipeline "
                                  f"{run['pipeline']['eps']:,.0f} ev/s, raw {run['raw']['eps']:,.0f} ev/s, "
                                  f"ratio {run['ratio']:.3f}", file=sys.stderr, flush=True)
        finally:
            dbs.close()
    summary = {}
    for per_batch in batches:
        mine = [x for x in runs if x["batch"] == per_batch]
        summary[str(per_batch)] = {
            "pipeline_eps": _spread([x["pipeline"]["eps"] for x in mine]),
            "raw_eps": _spread([x["raw"]["eps"] for x in mine]),
            "ratio": _spread([x["ratio"] for x in mine])}
    return {"db": db, "events": w.events, "devices": DEVICES, "batches": batches, "rounds": rounds,
            "gateway_max_inflight": window, "raw_window": RAW_WINDOW, "nagle": nagle,
            "gateway_id": GW_ID.hex(), "cpus": os.cpu_count(), "runs": runs, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="End-to-end events/s (spool to stored and acked) / raw.")
    ap.add_argument("--events", type=int, default=200_000, help="records per run")
    ap.add_argument("--batches", default="100,1000", help="batch sizes, comma-separated (1..1000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--window", type=int, default=MqttConfig.max_inflight,
                    help="the gateway's max_inflight (the cap of its adaptive window)")
    ap.add_argument("--nagle", action="store_true",
                    help="as before issue 17: no TCP_NODELAY anywhere, the gateway's window fixed "
                         "at --window")
    ap.add_argument("--quick", action="store_true", help="20,000 events, 3 rounds (a smoke run)")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the summary")
    ap.add_argument("--child", choices=("worker", "raw"), help=argparse.SUPPRESS)
    ap.add_argument("--db-url", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--client-id", help=argparse.SUPPRESS)
    ap.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.child, a.db_url, a.port, a.client_id, a.keys, a.nagle)
        return
    try:
        batches = [int(x) for x in a.batches.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--batches {a.batches!r}: want sizes like 100,1000")
    if not batches or any(not 1 <= b <= pb.MAX_RECORDS for b in batches):
        ap.error(f"--batches: each size must be 1..{pb.MAX_RECORDS}")
    if a.quick:
        a.events, a.rounds = 20_000, 3
    if a.events < DEVICES or a.rounds < 1 or a.window < 1:
        ap.error(f"--events must be at least {DEVICES}, --rounds and --window at least 1")
    res = measure(a.events, batches, a.rounds, a.db, a.window, verbose=not a.json, nagle=a.nagle)
    if a.json:
        print(json.dumps(res))
        return
    for b, s in res["summary"].items():
        print(f"batch {b}: pipeline {s['pipeline_eps']['median']:,.0f} ev/s, "
              f"raw {s['raw_eps']['median']:,.0f} ev/s; ratio median {s['ratio']['median']:.3f} "
              f"(min {s['ratio']['min']:.3f}, max {s['ratio']['max']:.3f})")
    print(f"{res['events']:,} events per run, {a.rounds} rounds, {a.db}, every run stored exactly once")


if __name__ == "__main__":
    main()
