"""The trust log's cost at ingest: events/s of the ingest core (cloud.services.ingest.Ingestor, as the
worker drives it) with the log on and off (setting trust_log), in the same run, as a ratio on/off.

Run: python -m benchmarks.trust_log [--batches 1000 --batch 100 --devices 10 --rounds 3]
     [--db sqlite|postgresql] [--groups 1,50] [--quick] [--json]

Each run gets a fresh database provisioned as benchmarks/cloud_ingest.py does (SQLite WAL with
synchronous=FULL, or PostgreSQL from the migrated template, fsync on) and ingests the same signed
batches, `group` deliveries per transaction: 1 (one commit per batch, the log's worst case: a log
append and its lock per commit) and 50 (MAX_GROUP: a worker with a backlog). On and off alternate
in order from round to round. After each run with the log on, the log is checked: one leaf per
batch plus the gateway's key, contiguous, its root the Merkle root of its leaves. Medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.cloud_ingest import (
    GW_HEX,
    Databases,
    Workload,
    count_events,
    dispose,
    fresh_db,
    make_workload,
)
from cloud.mqtt.worker import MAX_GROUP
from cloud.services import tlog
from cloud.services.ingest import Ingestor
from cloud.store.engine import SessionFactory
from cloud.store.models import LogLeaf
from protocol import batch as pbatch
from protocol import merkle


def run(dbs: Databases, w: Workload, on: bool, group: int, tag: str) -> float:
    _, sf = fresh_db(dbs.url(tag), w)
    tlog.configure(sf, on)
    topic = pbatch.batch_topic(GW_HEX)
    core = Ingestor(sf)
    deliveries = [(topic, p) for p in w.payloads]
    t0 = time.perf_counter()
    for i in range(0, len(deliveries), group):
        core.ingest_many(deliveries[i:i + group])
    took = time.perf_counter() - t0
    n = count_events(sf)
    assert n == sum(len(r) for r in w.rows), f"{n} events stored"
    check_log(sf, len(w.payloads) + 1 if on else 0)
    dispose(sf)
    return n / took


def check_log(sf: SessionFactory, expected: int) -> None:
    with sf() as s:
        rows = s.execute(select(LogLeaf.idx, LogLeaf.hash).order_by(LogLeaf.idx)).all()
        root = tlog.state(s).root()
    assert [i for i, _ in rows] == list(range(expected)), f"{len(rows)} leaves, expected {expected}"
    assert root == merkle.root([bytes(h) for _, h in rows])


def measure(db: str, batches: int, per_batch: int, devices: int, rounds: int,
            groups: list[int]) -> dict[str, Any]:
    w = make_workload(batches, per_batch, devices)
    out: dict[str, Any] = {"db": db, "batches": batches, "batch": per_batch, "rounds": rounds, "groups": {}}
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(db, Path(tmp))
        try:
            for g in groups:
                res: dict[str, list[float]] = {"on": [], "off": []}
                for r in range(rounds):
                    for on in ((True, False) if r % 2 == 0 else (False, True)):
                        res["on" if on else "off"].append(run(dbs, w, on, g, f"g{g}r{r}{int(on)}"))
                ratios = [a / b for a, b in zip(res["on"], res["off"], strict=True)]
                out["groups"][g] = {"on_events_per_s": round(statistics.median(res["on"])),
                                    "off_events_per_s": round(statistics.median(res["off"])),
                                    "ratio_on_off": round(statistics.median(ratios), 3),
                                    "ratios": [round(x, 3) for x in ratios]}
        finally:
            dbs.close()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Ingest events/s with the trust log on / off.")
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--groups", default=f"1,{MAX_GROUP}", help="deliveries per transaction, comma-separated")
    ap.add_argument("--quick", action="store_true", help="200 batches, 1 round")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    batches, rounds = (200, 1) if a.quick else (a.batches, a.rounds)
    res = measure(a.db, batches, a.batch, a.devices, rounds, [int(g) for g in a.groups.split(",")])
    if a.json:
        print(json.dumps(res))
        return
    for g, r in res["groups"].items():
        print(f"{a.db} group {g:>3}: on {r['on_events_per_s']:>8} ev/s  off {r['off_events_per_s']:>8} ev/s  "
              f"on/off {r['ratio_on_off']} {r['ratios']}")


if __name__ == "__main__":
    main()
