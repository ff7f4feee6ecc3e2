"""The merchant dashboard as the data grows (issue 14 part 7): the time to load its data for one
merchant with 10 million events and 1 million entries, against the same merchant's shape at 10
thousand events, in the same run, on SQLite and PostgreSQL.

Run: python -m benchmarks.dashboard_scale [--scale 1] [--db sqlite,postgresql] [--loads 30]
     [--live-loads 3] [--json]

The merchant: 4 campaigns, 200 displays (50 each, some far busier than others), 90 days of traffic
with a shop's day (quiet nights), ending at NOW (9:00 UTC, so "today" has data). Per 10 events one
entry; 10% of entries make their shopper a sharer; 8% come through a sharer's code (chains up to a
few deep), 2% through a bare base code, the rest from a display; 3% lead to an order, 5% of orders
are refunded; each order pays up to three sharers up its chain and the rest to charity. Seqs skip
now and then (gaps) and each display reboots into a new epoch every 30 days. --scale multiplies
the big case (10M events) and the small one (10k, at least 1,000).

Each case gets a fresh database migrated as the app does (PostgreSQL: a throwaway server as the
tests start it, fsync on), the merchant made by the services, and the bulk rows loaded raw:
executemany in 250k-row transactions on SQLite, COPY on PostgreSQL; then ANALYZE (VACUUM ANALYZE).
Then the rollups are brought up to date once (`roll_s`: the first roll over everything), and the
rolled dashboard is checked equal to the live one for every period. Measured, small and big
alternating so both see the same machine load:
- rollup: cloud.services.dashboard.dashboard(...) as the page calls it (roll, then read rollups),
  for today, 7d and 30d, --loads times each; after every load 100 new events, 10 entries, a share,
  an order and a refund arrive, so every load rolls something;
- live: the same with live=True (the queries over every row), --live-loads times;
- merchant_table: cloud.services.stats.merchant_stats, the merchant page's device table (live).
Reported: p50 and p95 per case in milliseconds, and p95 big / p95 small (the goal: within 3x).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.cloud_ingest import MASTER_KEY, Databases, dispose
from cloud.services import campaigns, dashboard, merchants, provision, rollups, stats
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.migrate import migrated_engine
from protocol.record import KIND_BOOT, KIND_TAP

DAY = 24 * 3600 * 1000
HOUR = 3600 * 1000
DAYS = 90
NOW_MS = 1_767_225_600_000 + 9 * HOUR  # 2026-01-01 09:00 UTC
START_MS = NOW_MS // DAY * DAY - (DAYS - 1) * DAY
CAMPAIGNS, PER_CAMPAIGN = 4, 50
GATEWAY = "c0c1c2c3c4c5c6c7"
CASES = ("small", "big")
# a shop's day, UTC: quiet at night, busy after work
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 15, 16, 16, 15, 14, 14, 15, 17, 18, 16, 12, 8, 4, 2]
EVENT_COLS = (
    "device_id",
    "epoch",
    "seq",
    "kind",
    "flags",
    "time",
    "data",
    "raw",
    "gateway_id",
    "bseq",
    "received_at_ms",
)
ENTRY_COLS = (
    "id",
    "campaign_id",
    "code",
    "device_id",
    "window",
    "parent_participant_id",
    "root_device_id",
    "depth",
    "visitor",
    "created_at_ms",
    "via",
)
PART_COLS = ("id", "campaign_id", "entry_id", "share_code", "visitor", "created_at_ms")
ORDER_COLS = (
    "id",
    "merchant_id",
    "idempotency_key",
    "request_hash",
    "campaign_id",
    "entry_id",
    "amount_minor",
    "pool_minor",
    "rule",
    "rule_params_json",
    "chain_json",
    "response_json",
    "status",
    "channel",
    "refund_json",
    "created_at_ms",
    "refunded_at_ms",
)
PAYOUT_COLS = ("order_id", "participant_id", "level", "payee", "amount_minor")
TXN_COLS = ("merchant_id", "campaign_id", "order_id", "kind", "created_at_ms")
LEVELS = (500, 250, 125)  # what the sharers up the chain get of a 1000 pool; the rest to charity


@dataclass
class World:
    merchant_id: int
    campaign_ids: list[int]
    bases: list[str]
    devices: list[tuple[str, int, int]]  # (id, campaign index, slot)
    weights: list[float] = field(default_factory=list)


@dataclass
class Rows:
    """One case's bulk rows, made in creation order (ids in order of time, as a live system's)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    participants: list[tuple[Any, ...]] = field(default_factory=list)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    payouts: list[tuple[Any, ...]] = field(default_factory=list)
    txns: list[tuple[Any, ...]] = field(default_factory=list)


def _day_shares(rng: random.Random, total: int) -> list[int]:
    """`total` spread over DAYS days, growing a little (a shop that gets known)."""
    w = [1.0 + 0.5 * d / DAYS + rng.random() * 0.2 for d in range(DAYS)]
    s = sum(w)
    out = [int(total * x / s) for x in w]
    out[-1] += total - sum(out)
    return out


def _times(rng: random.Random, day: int, n: int, hours: list[int]) -> list[int]:
    base = START_MS + day * DAY
    ts = sorted(base + rng.choice(hours) * HOUR + rng.randrange(HOUR) for _ in range(n))
    return [min(t, NOW_MS - 1) for t in ts]


def make_rows(w: World, events: int, seed: int = 7) -> Rows:
    rng = random.Random(seed)
    hours = [h for h, k in enumerate(HOUR_WEIGHTS) for _ in range(k)]
    cum = list(itertools.accumulate(w.weights))
    r = Rows()
    seqs = [0] * len(w.devices)
    raw, data = bytes(range(40)), bytes(8)
    bseq = 0
    for day, n in enumerate(_day_shares(rng, events)):
        devs = rng.choices(range(len(w.devices)), cum_weights=cum, k=n)
        for t, d in zip(_times(rng, day, n, hours), devs, strict=True):
            seqs[d] += 2 if rng.random() < 0.001 else 1  # now and then a record never arrives: a gap
            kind = KIND_BOOT if rng.random() < 0.01 else KIND_TAP
            bseq += 1
            r.events.append(
                (
                    w.devices[d][0],
                    1 + day // 30,
                    seqs[d],
                    kind,
                    1,
                    t // 1000,
                    data,
                    raw,
                    GATEWAY,
                    bseq // 100,
                    t + rng.randrange(60_000),
                )
            )
    _traffic(rng, w, events // 10, hours, cum, r)
    return r


def _traffic(
    rng: random.Random, w: World, n_entries: int, hours: list[int], cum: list[float], r: Rows
) -> None:
    info: list[tuple[str, int, str | None, int]] = []  # per entry: id, campaign, root, depth
    sharers: list[tuple[int, int]] = []  # (participant id, entry index)
    row: tuple[Any, ...]
    orders: list[tuple[int, int]] = []  # (created, entry index)
    for day, n in enumerate(_day_shares(rng, n_entries)):
        for t in _times(rng, day, n, hours):
            eid, visitor, x = f"{rng.getrandbits(128):032x}", f"v{rng.getrandbits(80):020x}", rng.random()
            if x < 0.08 and sharers:
                pid, pe = sharers[-1 - rng.randrange(min(len(sharers), 2000))]
                _, c, root, depth = info[pe]
                row = (
                    eid,
                    w.campaign_ids[c],
                    f"{w.bases[c]}-{pid:06d}",
                    None,
                    None,
                    pid,
                    root,
                    depth + 1,
                    visitor,
                    t,
                    "share",
                )
                info.append((eid, c, root, depth + 1))
            elif x < 0.10:
                c = rng.randrange(len(w.campaign_ids))
                row = (eid, w.campaign_ids[c], w.bases[c], None, None, None, None, 0, visitor, t, "base")
                info.append((eid, c, None, 0))
            else:
                dev, c, slot = w.devices[rng.choices(range(len(w.devices)), cum_weights=cum)[0]]
                row = (
                    eid,
                    w.campaign_ids[c],
                    f"{w.bases[c]}-{slot:02d}",
                    dev,
                    t // 60_000,
                    None,
                    dev,
                    0,
                    visitor,
                    t,
                    "display",
                )
                info.append((eid, c, dev, 0))
            r.entries.append(row)
            i = len(info) - 1
            if rng.random() < 0.10:
                pid = len(r.participants) + 1
                r.participants.append((pid, row[1], eid, f"{pid:06d}", visitor, t + rng.randrange(600_000)))
                sharers.append((pid, i))
            if rng.random() < 0.03:
                orders.append((min(t + rng.randrange(2 * HOUR), NOW_MS - 1), i))
    parent = {e[0]: e[5] for e in r.entries if e[5] is not None}
    entry_of = {p[0]: p[2] for p in r.participants}
    for oid, (t, i) in enumerate(sorted(orders), 1):
        eid, c, _root, _depth = info[i]
        refunded = rng.random() < 0.05
        r.orders.append(
            (
                oid,
                w.merchant_id,
                f"k{oid}",
                "0" * 64,
                w.campaign_ids[c],
                eid,
                rng.randrange(1000, 50_000),
                1000,
                "red-balloon",
                "{}",
                "[]",
                "{}",
                "refunded" if refunded else "placed",
                "api",
                "",
                t,
                t + DAY if refunded else None,
            )
        )
        paid, up = 0, parent.get(eid)
        for level, amount in enumerate(LEVELS, 1):
            if up is None:
                break
            r.payouts.append((oid, up, level, "participant", amount))
            paid += amount
            up = parent.get(entry_of[up])
        r.payouts.append((oid, None, 0, "charity", 1000 - paid))
        r.txns.append((w.merchant_id, w.campaign_ids[c], oid, "order", t))
        if refunded:
            r.txns.append((w.merchant_id, w.campaign_ids[c], oid, "refund", t + DAY))


# ---- building a case --------------------------------------------------------------------------


def make_world(sf: SessionFactory) -> World:
    m = merchants.create_merchant(sf, "scale")
    ids, bases, devices = [], [], []
    for c in range(CAMPAIGNS):
        base = f"{7001 + c}"
        cid = campaigns.create(
            sf,
            m["merchant_id"],
            base_code=base,
            slots=PER_CAMPAIGN,
            digits=2,
            period_s=60,
            pool_minor=1000,
            label_zh=f"规模 {c}",
            label_en=f"scale {c}",
        )["campaign_id"]
        ids.append(cid)
        bases.append(base)
        for slot in range(PER_CAMPAIGN):
            dev = f"{c + 1:02x}{slot:014x}"
            provision.create_device(sf, cid, slot=slot, device_id=dev, label=f"{base}/{slot}")
            devices.append((dev, c, slot))
    rng = random.Random(11)
    weights = [1.0 / (1 + rng.randrange(PER_CAMPAIGN)) ** 0.7 for _ in devices]
    return World(m["merchant_id"], ids, bases, devices, weights)


def _chunks(rows: list[tuple[Any, ...]], n: int) -> Iterator[list[tuple[Any, ...]]]:
    for i in range(0, len(rows), n):
        yield rows[i : i + n]


TABLE_ROWS = (
    ("events", EVENT_COLS, "events"),
    ("entries", ENTRY_COLS, "entries"),
    ("participants", PART_COLS, "participants"),
    ("orders", ORDER_COLS, "orders"),
    ("payouts", PAYOUT_COLS, "payouts"),
    ("ledger_txns", TXN_COLS, "txns"),
)


def _names(cols: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in cols)  # quoted: "window" is a keyword in PostgreSQL


def load_sqlite(path: str, r: Rows) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=OFF")  # entries and participants refer to each other
        for table, cols, attr in TABLE_ROWS:
            sql = f"INSERT INTO {table} ({_names(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for chunk in _chunks(getattr(r, attr), 250_000):
                conn.executemany(sql, chunk)
                conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()


def load_pg(url: str, r: Rows) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")  # FK triggers off for the load only
            for table, cols, attr in TABLE_ROWS:
                with cur.copy(f"COPY {table} ({_names(cols)}) FROM STDIN") as cp:
                    for row in getattr(r, attr):
                        cp.write_row(row)
            for table in ("participants", "orders"):  # explicit ids: move their sequences past them
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


@dataclass
class Case:
    name: str
    sf: SessionFactory
    world: World
    counts: dict[str, Any]
    extra: int = 0  # orders added while measuring (their ids)


def build(dbs: Databases, db: str, name: str, events: int, work: Path) -> Case:
    url = dbs.url(f"{name}")
    sf = vault.session_factory(migrated_engine(url), Settings(master_key=MASTER_KEY))
    w = make_world(sf)
    t0 = time.perf_counter()
    r = make_rows(w, events)
    made = time.perf_counter() - t0
    if db == "sqlite":
        load_sqlite(url.removeprefix("sqlite:///"), r)
    else:
        load_pg(url, r)
    loaded = time.perf_counter() - t0 - made
    t1 = time.perf_counter()
    rollups.roll(sf)
    counts: dict[str, Any] = {
        k: len(getattr(r, k)) for k in ("events", "entries", "participants", "orders", "payouts")
    }
    counts |= {
        "make_s": round(made, 1),
        "load_s": round(loaded, 1),
        "roll_s": round(time.perf_counter() - t1, 2),
    }
    return Case(name, sf, w, counts)


# ---- measuring --------------------------------------------------------------------------------


def arrive(case: Case) -> None:
    """What reaches the cloud between two loads: 100 events, 10 entries, one share, one order and
    the refund of an old one, written as the app writes them (rows, not services: no clock needed)."""
    from cloud.store.models import Entry, Event, LedgerTxn, Order, Participant, Payout

    case.extra += 1
    w, i = case.world, case.extra
    t = NOW_MS - 1000 + i
    with case.sf.begin() as s:
        dev = w.devices[i % len(w.devices)][0]
        s.add_all(
            [
                Event(
                    device_id=dev,
                    epoch=1000 + i,
                    seq=k,
                    kind=KIND_TAP,
                    flags=1,
                    time=t // 1000,
                    data=bytes(8),
                    raw=bytes(40),
                    gateway_id=GATEWAY,
                    bseq=0,
                    received_at_ms=t,
                )
                for k in range(100)
            ]
        )
        c = w.campaign_ids[0]
        es = [
            Entry(
                id=f"x{i:08d}{k:02d}",
                campaign_id=c,
                code="x",
                device_id=dev,
                window=0,
                root_device_id=dev,
                depth=0,
                visitor="v",
                created_at_ms=t,
                via="display",
            )
            for k in range(10)
        ]
        s.add_all(es)
        s.flush()
        s.add(
            Participant(
                campaign_id=c, entry_id=es[0].id, share_code=f"x{i:05d}", visitor="v", created_at_ms=t
            )
        )
        o = Order(
            merchant_id=w.merchant_id,
            idempotency_key=f"x{i}",
            request_hash="0" * 64,
            campaign_id=c,
            entry_id=es[1].id,
            amount_minor=2000,
            pool_minor=1000,
            rule="red-balloon",
            response_json="{}",
            created_at_ms=t,
        )
        s.add(o)
        s.flush()
        s.add(Payout(order_id=o.id, participant_id=None, level=0, payee="charity", amount_minor=1000))
        s.add(
            LedgerTxn(merchant_id=w.merchant_id, campaign_id=c, order_id=o.id, kind="order", created_at_ms=t)
        )
        old = s.get(Order, i + 1)  # a loaded order, refunded now (the app's refund: status + ledger txn)
        if old is not None and old.status == "placed":
            old.status, old.refunded_at_ms = "refunded", t
            s.add(
                LedgerTxn(
                    merchant_id=w.merchant_id,
                    campaign_id=old.campaign_id,
                    order_id=old.id,
                    kind="refund",
                    created_at_ms=t,
                )
            )


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summary(times: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: {
            "n": len(v),
            "p50_ms": round(statistics.median(v) * 1000, 2),
            "p95_ms": round(pct(v, 0.95) * 1000, 2),
        }
        for k, v in times.items()
    }
    if "big" in out:
        out["ratio_p95"] = round(out["big"]["p95_ms"] / out["small"]["p95_ms"], 2)
        out["ratio_p50"] = round(out["big"]["p50_ms"] / out["small"]["p50_ms"], 2)
    return out


def timed(f: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    f(*args, **kwargs)
    return time.perf_counter() - t0


def note(db: str, what: str, data: Any = None) -> None:
    """Progress on stderr (a run at full scale takes a long while), with what was measured so far."""
    print(f"[{time.strftime('%H:%M:%S')} {db}] {what}" + (f" {json.dumps(data)}" if data is not None else ""),
          file=sys.stderr, flush=True)


def measure_db(db: str, big: int, small: int, loads: int, live_loads: int, big_live: bool,
               work: Path) -> dict[str, Any]:
    dbs = Databases(db, work)
    try:
        cases = []
        for name, n in (("small", small), ("big", big)):
            cases.append(build(dbs, db, name, n, work))
            note(db, f"built {name}", cases[-1].counts)
        out: dict[str, Any] = {"cases": {c.name: c.counts for c in cases}, "checked_equal": []}
        spans = {k: dashboard.period(k, NOW_MS) for k in dashboard.PERIODS}
        times: dict[str, dict[str, list[float]]] = {f"rollup_{k}": {"small": [], "big": []} for k in spans}
        for _ in range(loads):
            for c in cases:
                for k, p in spans.items():
                    arrive(c)
                    times[f"rollup_{k}"][c.name].append(
                        timed(dashboard.dashboard, c.sf, c.world.merchant_id, p, NOW_MS)
                    )
        out["loads"] = {k: summary(v) for k, v in times.items()}
        note(db, "rolled loads", out["loads"])
        live_cases = cases if big_live else cases[:1]
        for c in live_cases:  # after all that arrived, the rollups answer what the live queries answer
            for k, p in spans.items():
                live = dashboard.dashboard(c.sf, c.world.merchant_id, p, NOW_MS, live=True)
                assert dashboard.dashboard(c.sf, c.world.merchant_id, p, NOW_MS) == live, (c.name, k)
                out["checked_equal"].append(f"{c.name}/{k}")
        note(db, "checked equal", out["checked_equal"])
        for k in [*(f"live_{k}" for k in spans), "merchant_table_live"]:
            times[k] = {c.name: [] for c in live_cases}
        for _ in range(live_loads):
            for c in live_cases:
                for k, p in spans.items():
                    times[f"live_{k}"][c.name].append(
                        timed(dashboard.dashboard, c.sf, c.world.merchant_id, p, NOW_MS, live=True)
                    )
                times["merchant_table_live"][c.name].append(
                    timed(stats.merchant_stats, c.sf, c.world.merchant_id))
        out["loads"] = {k: summary(v) for k, v in times.items() if all(v.values())}
        for c in cases:
            dispose(c.sf)
        return out
    finally:
        dbs.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Dashboard load time at 10M events against 10k, same run.")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies 10M (big) and 10k (small) events")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--loads", type=int, default=30, help="rolled dashboard loads per period and case")
    ap.add_argument("--live-loads", type=int, default=3, help="live loads per period and case")
    ap.add_argument("--no-big-live", dest="big_live", action="store_false",
                    help="no live queries on the big case (each takes minutes at full scale)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    big, small = int(10_000_000 * a.scale), max(int(10_000 * a.scale), 1000)
    res: dict[str, Any] = {
        "scale": a.scale,
        "big_events": big,
        "small_events": small,
        "loads": a.loads,
        "live_loads": a.live_loads,
        "cpus": os.cpu_count(),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    with tempfile.TemporaryDirectory(dir=os.environ.get("MCODE_BENCH_DIR")) as tmp:
        for db in a.db.split(","):
            res[db] = measure_db(db, big, small, a.loads, a.live_loads, a.big_live, Path(tmp))
    res["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    if a.json:
        print(json.dumps(res))
        return
    for db in a.db.split(","):
        print(f"{db}: {res[db]['cases']}")
        for k, v in res[db]["loads"].items():
            cells = [f"{c} p50 {v[c]['p50_ms']:>9} p95 {v[c]['p95_ms']:>9} ms" for c in v if c in CASES]
            print(f"  {k:<22} {'   '.join(cells)}   p95 ratio {v.get('ratio_p95', '-')}")


if __name__ == "__main__":
    main()
