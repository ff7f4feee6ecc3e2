"""Cloud ingest throughput: events/s from batches waiting on the broker to rows stored, per worker,
as a ratio of a raw executemany of the same rows into the same kind of database, in the same run.

Run: python -m benchmarks.cloud_ingest [--batches 1000 --batch 100 --devices 10 --rounds 3
     --workers 1,2] [--db sqlite|postgresql] [--paths copy,executemany] [--quick] [--profile] [--json]

One real Mosquitto with auth (sim/broker.py) serves every run. Each run gets a fresh database: a
SQLite file made by cloud.store.engine.make_engine (the app's schema, WAL, synchronous=FULL), or with
--db postgresql a database copied from the migrated template of a throwaway server started the way
the tests start theirs (tests/pg.py: fsync on), provisioned with one merchant,
campaign, gateway and `devices` devices. Outside the clocks, `batches` signed gateway batches of
`batch` tap records each are made (devices interleaved, as a gateway's spool seals them). Then, in an
order that rotates from round to round:

- workers (k of them, for each k in --workers): k worker sessions join the shared-subscription group
  and disconnect; the gateway publishes every batch at QoS 1 while they are down, so the batches wait
  in the workers' persistent sessions (split between them by the broker). Then k processes, each one
  cloud.mqtt.worker.IngestWorker as `mcode cloud ingest` runs it, are told to start at once; the clock runs
  from that moment until the last delivery is committed (each worker reports when its last one was).
  The rows are then counted in the database: every event stored once.
  On PostgreSQL the workers run once per ingest path (--paths): `copy` (COPY into a temporary
  table, then INSERT .. SELECT .. ON CONFLICT DO NOTHING; the default) and `executemany` (the path
  before it, `IngestWorker(copy=False)`); SQLite has only executemany.
- raw: the same rows (decoded outside the clock) into a fresh database made the same way, with the
  DB-API's executemany, INSERT .. ON CONFLICT DO NOTHING, one transaction per gateway batch (the
  unit a worker is handed and must commit before it acks);
- raw_grouped: the same, one transaction per MAX_GROUP (50) batches: the most a worker puts in one
  transaction when batches queue up, as they do here. This is the stricter baseline: the worker's
  cost over the database's own at the same commit rate.

Reported per run: events/s in all, per worker, and as ratios of both raw runs in the same round;
medians over the rounds. --profile runs the ingest core (cloud.services.ingest.Ingestor, in groups as the
worker forms them) in this process under cProfile over one round's batches.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

from cloud.mqtt import identity
from cloud.mqtt.worker import MAX_GROUP, SESSION_EXPIRY_S, IngestWorker, shared_subscription
from cloud.services import campaigns, merchants, provision
from cloud.services.ingest import EVENT_COLUMNS, Ingestor
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.engine import SessionFactory, make_engine
from cloud.store.migrate import migrated_engine
from cloud.store.models import Device, Event
from protocol import batch as pbatch
from protocol import record
from protocol.hmac256 import HmacKey
from protocol.keys import record_key
from sim.broker import Broker

GW_HEX = "c0c1c2c3c4c5c6c7"
GW_PW = "gw-pw"
CLOUD_PW = "cloud-pw"
MASTER_KEY = "42" * 32  # the benchmark cloud's MCODE_CLOUD_MASTER_KEY: device keys are stored sealed
RECEIVED_AT_MS = 1_700_000_000_000
WAIT_S = 600.0  # give up on a run; never a pass/fail bound


@dataclass
class Workload:
    gw_key: Ed25519PrivateKey
    device_keys: list[tuple[str, bytes]]  # (id hex, 32-byte key)
    payloads: list[bytes]
    rows: list[list[tuple[Any, ...]]]  # per batch, as cloud.services.ingest stores them (EVENT_COLUMNS)

    @property
    def events(self) -> int:
        return sum(len(r) for r in self.rows)


def make_workload(batches: int, per_batch: int, devices: int) -> Workload:
    gw_key = Ed25519PrivateKey.generate()
    devs = [(f"d0{d:014x}", bytes([d + 1]) * 32) for d in range(devices)]
    keys = [HmacKey(record_key(k)) for _, k in devs]
    seqs = [0] * devices
    payloads, rows = [], []
    for b in range(1, batches + 1):
        recs, batch_rows = [], []
        for i in range(per_batch):
            d = (b * per_batch + i) % devices  # interleaved, as a spool fed by several collectors
            seqs[d] += 1
            dev = bytes.fromhex(devs[d][0])
            rec = record.make(keys[d], dev, record.KIND_TAP, record.FLAG_CLOCK_SET, 1, seqs[d],
                              1_700_000_000 + seqs[d],
                          seqs[d].to_bytes(8, "big"))
            recs.append((dev, rec))
            _, kind, flags, epoch, seq, t, data = record.unpack(rec)
            batch_rows.append((devs[d][0], epoch, seq, kind, flags, t, data, rec, GW_HEX, b, RECEIVED_AT_MS))
        payloads.append(pbatch.sign(pbatch.Batch(bytes.fromhex(GW_HEX), b, RECEIVED_AT_MS, recs), gw_key))
        rows.append(batch_rows)
    return Workload(gw_key, devs, payloads, rows)


class Databases:
    """Fresh migrated databases: SQLite files under `work`, or PostgreSQL databases copied from the
    migrated template of a throwaway server (tests/pg.py), dropped with it."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind, self.work = kind, work
        self.cluster: Any = None
        if kind == "postgresql":
            from tests.pg import start_cluster

            self.cluster = start_cluster()

    def url(self, tag: str) -> str:
        if self.cluster is None:
            return f"sqlite:///{self.work / f'{tag}.db'}"
        from tests.pg import TEMPLATE

        return str(self.cluster.url(self.cluster.create_database(TEMPLATE)))

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def fresh_db(url: str, w: Workload) -> tuple[str, SessionFactory]:
    sf = vault.session_factory(migrated_engine(url), Settings(master_key=MASTER_KEY))
    m = merchants.create_merchant(sf, "bench")
    c = campaigns.create(sf, m["merchant_id"], base_code="7001", slots=max(10, len(w.device_keys)), digits=4,
                         period_s=60, pool_minor=0, label_zh="基准", label_en="bench")
    for dev_id, _ in w.device_keys:
        provision.create_device(sf, c["campaign_id"], device_id=dev_id)
    with sf.begin() as s:  # the keys the workload's records were sealed with
        for dev_id, key in w.device_keys:
            d = s.get(Device, dev_id)
            assert d is not None
            d.key_sealed = vault.of(s).seal_device_key(dev_id, key)
    raw = (Encoding.Raw, PublicFormat.Raw)
    provision.create_gateway(sf, GW_HEX, w.gw_key.public_key().public_bytes(*raw).hex(),
                             merchant_id=m["merchant_id"])
    return url, sf


def dispose(sf: SessionFactory) -> None:
    """Close the engine's pooled connections (a PostgreSQL database is not left with idle ones)."""
    with sf() as s:
        bind = s.get_bind()
    bind.dispose()  # type: ignore[union-attr]


def count_events(sf: SessionFactory) -> int:
    with sf() as s:
        return int(s.scalar(select(func.count(Event.id))) or 0)


# ---- raw baseline -------------------------------------------------------------------------------

def run_raw(url: str, rows: list[list[tuple[Any, ...]]], per_txn: int = 1) -> float:
    """Seconds to INSERT .. ON CONFLICT DO NOTHING every batch's rows with executemany, a commit per
    `per_txn` batches."""
    engine = make_engine(url)  # the same pragmas (connect hook) as the app's engine
    ph = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join([ph] * len(EVENT_COLUMNS))}) "
           f"ON CONFLICT (device_id, epoch, seq) DO NOTHING")
    conn = engine.raw_connection()
    try:
        t0 = time.perf_counter()
        for i, chunk in enumerate(rows, 1):
            cur = conn.cursor()
            cur.executemany(sql, chunk)
            if i % per_txn == 0 or i == len(rows):
                conn.commit()
        return time.perf_counter() - t0
    finally:
        conn.close()
        engine.dispose()


# ---- workers ------------------------------------------------------------------------------------

def _client(client_id: str, user: str, password: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    return c


def register_sessions(broker: Broker, worker_ids: list[str], subscription: str) -> None:
    """Make each worker's persistent session and its subscription, as that worker's own broker
    user and client id (cloud/mqtt/identity.py), then leave: what is published next waits there."""
    for wid in worker_ids:
        user = identity.role_user("cloud", identity.ingest_role(wid))
        cid = identity.client_id(CLOUD_PW, user)
        c = _client(cid, user, CLOUD_PW)
        done = threading.Event()
        c.on_connect = lambda cl, ud, fl, rc, pr_: cl.subscribe(subscription, qos=1)
        c.on_subscribe = lambda *a, done=done: done.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        c.connect(broker.host, broker.port, clean_start=True, properties=props)
        c.loop_start()
        if not done.wait(30):
            raise RuntimeError(f"session {cid}: no SUBACK")
        c.disconnect()
        c.loop_stop()


def publish_all(broker: Broker, payloads: list[bytes], window: int = 100) -> None:
    c = _client(identity.gateway_client_id(GW_HEX), GW_HEX, GW_PW)
    c.max_inflight_messages_set(window)
    acked = threading.Semaphore(0)
    c.on_publish = lambda *a: acked.release()
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        for p in payloads:
            info = c.publish(pbatch.batch_topic(GW_HEX), p, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publish refused: {mqtt.error_string(info.rc)}")
        for _ in payloads:
            if not acked.acquire(timeout=WAIT_S):
                raise RuntimeError("broker did not PUBACK every batch")
    finally:
        c.disconnect()
        c.loop_stop()


class WorkerProcess:
    """This module's --child mode: one IngestWorker in its own process, started on "GO"."""

    def __init__(self, url: str, broker: Broker, worker_id: str, group: str, copy: bool = True) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cloud_ingest", "--child", "--db-url", url, "--port",
             str(broker.port), "--worker-id", worker_id, "--group", group, *([] if copy else ["--no-copy"])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
        self.last: dict[str, Any] = {}
        self.changed = threading.Event()
        assert self.p.stdout is not None
        if self.p.stdout.readline().strip() != "READY":
            self.p.kill()
            raise RuntimeError("worker process did not start")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.last = json.loads(line)
            self.changed.set()

    def send(self, word: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(word + "\n")
        self.p.stdin.flush()

    def finish(self) -> dict[str, Any]:
        self.send("STOP")
        self.p.wait(60)
        time.sleep(0.05)
        return self.last


def run_workers(dbs: Databases, broker: Broker, w: Workload, k: int, tag: str,
                copy: bool = True) -> dict[str, Any]:
    url, sf = fresh_db(dbs.url(f"workers-{tag}"), w)
    group = f"bench-{tag}"
    ids = [f"{tag}-{i}" for i in range(k)]  # fresh sessions each run; Broker(ingest_workers=) has them
    register_sessions(broker, ids, shared_subscription(group))
    publish_all(broker, w.payloads)
    procs = [WorkerProcess(url, broker, cid, group, copy) for cid in ids]
    try:
        t_go = time.time()
        for p in procs:
            p.send("GO")
        deadline = time.monotonic() + WAIT_S
        while sum(p.last.get("batches", 0) for p in procs) < len(w.payloads):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers stuck: {[p.last for p in procs]}")
            time.sleep(0.01)
        t_end = max(p.last["t_last"] for p in procs)
    finally:
        finals = [p.finish() for p in procs]
    stored = count_events(sf)
    dispose(sf)
    if stored != w.events or sum(f["stored"] for f in finals) != w.events:
        raise RuntimeError(f"stored {stored} events of {w.events}: {finals}")
    return {"seconds": t_end - t_go, "per_worker_batches": [f["batches"] for f in finals],
            "transactions": sum(f["transactions"] for f in finals),
            "errors": sum(f["errors"] for f in finals)}


def child(url: str, port: int, worker_id: str, group: str, copy: bool) -> None:
    settings = Settings(broker_host="127.0.0.1", broker_port=port, broker_password=CLOUD_PW,
                        master_key=MASTER_KEY)
    sf = vault.session_factory(make_engine(url), settings)
    worker = IngestWorker(sf, settings, worker_id=worker_id, group=group, copy=copy)
    print("READY", flush=True)
    stop = threading.Event()

    def report() -> None:
        seen = -1
        while not stop.wait(0.002):
            n = worker.counts.batches
            if n != seen:
                seen = n
                print(json.dumps({**worker.snapshot(), "t_last": time.time()}), flush=True)

    threading.Thread(target=report, daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "GO":
            worker.start()
        elif line.strip() == "STOP":
            break
    worker.stop()
    stop.set()
    print(json.dumps({**worker.snapshot(), "t_last": time.time()}), flush=True)


# ---- rounds -------------------------------------------------------------------------------------

def profile_core(dbs: Databases, w: Workload, copy: bool) -> str:
    _, sf = fresh_db(dbs.url("profile"), w)
    topic = pbatch.batch_topic(GW_HEX)
    ing = Ingestor(sf, copy=copy)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(0, len(w.payloads), MAX_GROUP):
        ing.ingest_many([(topic, p) for p in w.payloads[i:i + MAX_GROUP]])
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats("cloud/services/ingest", 12)
    return s.getvalue()


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4)}


def _round(dbs: Databases, broker: Broker, w: Workload, r: int, workers: list[int],
           paths: list[str], verbose: bool) -> list[dict[str, Any]]:
    """One round: raw, raw_grouped and every (workers, path), in an order rotated by the round."""
    kinds: list[tuple[int, str]] = [(0, "raw"), (-1, "raw"), *((k, p) for k in workers for p in paths)]
    kinds = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
    raw: dict[int, float] = {}
    runs: list[dict[str, Any]] = []
    for k, path in kinds:
        if k <= 0:
            url, sf = fresh_db(dbs.url(f"raw-{r}-{-k}"), w)
            dispose(sf)
            raw[k] = w.events / run_raw(url, w.rows, MAX_GROUP if k else 1)
        else:
            res = run_workers(dbs, broker, w, k, f"{r}-{k}-{path}", copy=path == "copy")
            runs.append({"round": r + 1, "workers": k, "path": path, **res, "eps": w.events / res["seconds"]})
    for run in runs:
        run["raw_eps"], run["raw_grouped_eps"] = raw[0], raw[-1]
        run["eps_per_worker"] = run["eps"] / run["workers"]
        run["ratio"] = run["eps"] / raw[0]
        run["ratio_per_worker"] = run["eps_per_worker"] / raw[0]
        run["ratio_grouped"] = run["eps"] / raw[-1]
        run["ratio_grouped_per_worker"] = run["eps_per_worker"] / raw[-1]
        same = [x for x in runs if x["workers"] == run["workers"] and x["path"] == "executemany"]
        if same and run["path"] == "copy":  # the figure: COPY over executemany, same round
            run["copy_over_executemany"] = run["eps"] / same[0]["eps"]
        if verbose:
            print(f"round {r + 1}: {run['workers']} worker(s), {run['path']}: {run['eps']:,.0f} ev/s "
                  f"({run['eps_per_worker']:,.0f} per worker); raw {raw[0]:,.0f}, raw_grouped "
                  f"{raw[-1]:,.0f} ev/s; per worker / raw {run['ratio_per_worker']:.3f}, "
                  f"/ raw_grouped {run['ratio_grouped_per_worker']:.3f}; "
                  f"{run['transactions']} transactions for {len(w.payloads)} batches",
                  file=sys.stderr, flush=True)
    return runs


def measure(batches: int, per_batch: int, devices: int, rounds: int, workers: list[int],
            profile: bool = False, verbose: bool = True, db: str = "sqlite",
            paths: list[str] | None = None) -> dict[str, Any]:
    paths = paths or (["copy", "executemany"] if db == "postgresql" else ["executemany"])
    with tempfile.TemporaryDirectory(prefix="mcode-ingest-bench-", ignore_cleanup_errors=True) as d:
        work = Path(d)
        dbs = Databases(db, work)
        try:
            w = make_workload(batches, per_batch, devices)
            runs: list[dict[str, Any]] = []
            ids = tuple(f"{r}-{k}-{p}-{i}" for r in range(rounds) for k in workers for p in paths
                        for i in range(k))
            with Broker(work / "broker", {"cloud": CLOUD_PW, GW_HEX: GW_PW}, ingest_workers=ids) as broker:
                for r in range(rounds):
                    runs.extend(_round(dbs, broker, w, r, workers, paths, verbose))
            prof_text = profile_core(dbs, w, paths[0] == "copy") if profile else ""
        finally:
            dbs.close()
    by_path = {}
    for k in workers:
        for p in paths:
            mine = [x for x in runs if x["workers"] == k and x["path"] == p]
            keys = ["eps", "eps_per_worker", "raw_eps", "raw_grouped_eps", "ratio", "ratio_per_worker",
                    "ratio_grouped", "ratio_grouped_per_worker"]
            if "copy_over_executemany" in mine[0]:
                keys.append("copy_over_executemany")
            by_path[f"{k}/{p}"] = {key: _spread([x[key] for x in mine]) for key in keys}
    # "summary": per worker count, the first path (the deployed one); "by_path": "<k>/<path>"
    summary = {str(k): by_path[f"{k}/{paths[0]}"] for k in workers}
    return {"db": db, "batches": batches, "batch": per_batch, "devices": devices, "events": w.events,
            "rounds": rounds, "workers": workers, "paths": paths, "cpus": os.cpu_count(), "runs": runs,
            "summary": summary, "by_path": by_path, "profile": prof_text}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Cloud ingest events/s per worker / raw executemany.")
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100, help="records per batch (the gateway's default)")
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--paths", help="ingest paths to run, comma-separated: copy, executemany "
                    "(default: both on postgresql; SQLite has executemany only)")
    ap.add_argument("--quick", action="store_true", help="200 batches, 1 round (a smoke run)")
    ap.add_argument("--profile", action="store_true", help="the ingest core under cProfile afterwards")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the summary")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db-url", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--worker-id", help=argparse.SUPPRESS)
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--no-copy", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.db_url, a.port, a.worker_id, a.group, not a.no_copy)
        return
    if a.quick:
        a.batches, a.rounds = 200, 1
    paths = a.paths.split(",") if a.paths else None
    if paths and not set(paths) <= {"copy", "executemany"}:
        ap.error(f"--paths: copy or executemany, not {a.paths}")
    res = measure(a.batches, a.batch, a.devices, a.rounds, [int(x) for x in a.workers.split(",")], a.profile,
                  verbose=not a.json, db=a.db, paths=paths)
    if a.json:
        print(json.dumps(res))
        return
    for k, s in res["by_path"].items():
        extra = (f"; COPY / executemany {s['copy_over_executemany']['median']:.2f}x "
                 f"(min {s['copy_over_executemany']['min']:.2f}, max {s['copy_over_executemany']['max']:.2f})"
                 if "copy_over_executemany" in s else "")
        print(f"{k} worker(s): median {s['eps']['median']:,.0f} ev/s, "
              f"{s['eps_per_worker']['median']:,.0f} per worker; raw {s['raw_eps']['median']:,.0f} ev/s, "
              f"raw_grouped {s['raw_grouped_eps']['median']:,.0f}; per worker / raw "
              f"{s['ratio_per_worker']['median']:.3f} (min {s['ratio_per_worker']['min']:.3f}, max "
              f"{s['ratio_per_worker']['max']:.3f}), / raw_grouped "
              f"{s['ratio_grouped_per_worker']['median']:.3f} "
              f"(min {s['ratio_grouped_per_worker']['min']:.3f}, "
              f"max {s['ratio_grouped_per_worker']['max']:.3f}){extra}")
    print(f"{res['events']:,} events in {a.batches} batches of {a.batch} from {a.devices} devices, "
          f"{a.rounds} rounds, {res['cpus']} CPUs, {a.db}")
    if res["profile"]:
        print(res["profile"])


if __name__ == "__main__":
    main()
