"""Code resolution cost against the number of devices: GET /r/{code} requests/s and latency on a
database of 100 campaigns x 1,000 devices, as a ratio of one of 1 campaign x 10 devices, same run;
and both as a ratio of a trivial FastAPI GET in the same run (issue 17: >= 0.5x its requests/s, p99
<= 3x its p99).

Run: python -m benchmarks.cloud_resolve [--campaigns 100 --devices 1000 --requests 5000
     --concurrency 8 --rounds 3] [--quick] [--json]

Each database is a SQLite file made by cloud.store.engine.make_engine (the app's schema, WAL,
synchronous=FULL). Campaigns are made with cloud.services.campaigns.create (base codes 1000, 1001, ...;
`digits` 5), devices by one bulk insert with random 32-byte keys. The API is the real app
(cloud.http.app.create_app) on uvicorn in a process of its own, one worker, access log off, with the
rate limits OFF (Settings rate_client_burst=0, rate_campaign_fail_burst=0): the benchmark sends far
more than one client address may in production (10/s). The load comes from this process: httpx
AsyncClient, `concurrency` keep-alive connections, each sending its next request when the last
answered. Every request is a valid current code of a random device, computed as the device does
(protocol.rotation with the device's rotation key) when the request is sent, so each one is a full
resolution: campaign by base code, device by slot, the rotating value checked, an entry written and
committed. Every answer must be 200.

The trivial GET is a FastAPI app of one `async def` route, `GET /r/{code}` returning
`{"code": code}`, on uvicorn in its own process the same way, sent the same codes. Every request asks
for JSON (`Accept: application/json`): the API's answer, not the page a browser gets.

Rounds alternate the order (small then big, big then small; the trivial GET first, then last); each
run is preceded by `warmup` untimed requests. Reported: requests/s, p50, p99 (ms) per run, and
big/small and big/trivial ratios, medians; also the CPU per request of the server process and of
the load generator (both on the same 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from cloud.services import campaigns, merchants
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.migrate import migrated_engine
from cloud.store.models import Device
from protocol.keys import rotation_key
from protocol.rotation import Rotor, format_code, window
from sim.ports import free_port, wait_port

DIGITS = 5
PERIOD_S = 60
MASTER_KEY = "42" * 32  # the benchmark cloud's MCODE_CLOUD_MASTER_KEY: device keys are stored sealed


def build_db(path: Path, n_campaigns: int, n_devices: int, seed: int = 1) -> list[tuple[str, int, bytes]]:
    """A fresh database with n_campaigns x n_devices; returns (base code, slot, device key) for
    every device, to compute codes with."""
    sf = vault.session_factory(migrated_engine(f"sqlite:///{path}"), Settings(master_key=MASTER_KEY))
    m = merchants.create_merchant(sf, "bench")
    rng = random.Random(seed)
    out: list[tuple[str, int, bytes]] = []
    now = int(time.time() * 1000)
    with sf() as s:
        v = vault.of(s)
    for i in range(n_campaigns):
        base = str(1000 + i)
        c = campaigns.create(sf, m["merchant_id"], base_code=base, slots=n_devices, digits=DIGITS,
                             period_s=PERIOD_S, pool_minor=1000, label_zh="基准", label_en="bench")
        rows = []
        for slot in range(n_devices):
            key = rng.randbytes(32)
            dev_id = hashlib.sha256(f"{i}/{slot}".encode()).hexdigest()[:16]
            rows.append({"id": dev_id, "key_sealed": v.seal_device_key(dev_id, key),
                         "campaign_id": c["campaign_id"], "slot": slot,
                         "label": "", "location": "", "created_at_ms": now})
            out.append((base, slot, key))
        with sf.begin() as s:
            s.execute(insert(Device), rows)
    sf.kw["bind"].dispose()
    return out


class Codes:
    """Codes of random devices, each computed as its display shows it at the moment it is sent, so
    a run slowed by a loaded machine never sends a code whose window has passed (a 410, not a
    resolution). The device keys are turned into rotors outside the clock."""

    def __init__(self, devices: list[tuple[str, int, bytes]], slots: int, n: int, seed: int) -> None:
        rng = random.Random(seed)
        picked = [rng.choice(devices) for _ in range(n)]
        rotors = {(b, s): Rotor(rotation_key(k), s, slots, DIGITS) for b, s, k in set(picked)}
        self.picks = [(base, rotors[(base, slot)]) for base, slot, _ in picked]

    def __len__(self) -> int:
        return len(self.picks)

    def part(self, start: int, end: int | None = None) -> Iterator[str]:
        for base, rotor in self.picks[start:end]:
            yield format_code(base, rotor.value(window(time.time(), PERIOD_S)), DIGITS)


class Server:
    """The app on uvicorn in its own process (this module's --serve mode)."""

    def __init__(self, db: Path | None) -> None:
        """The app on the database `db`, or (None) the trivial GET."""
        self.port = free_port()
        root = Path(__file__).resolve().parents[1]
        what = ["--db", str(db)] if db is not None else ["--trivial"]
        self.p = subprocess.Popen([sys.executable, "-m", "benchmarks.cloud_resolve", "--serve", *what,
                                   "--port", str(self.port)], cwd=root)
        try:
            wait_port(self.port, timeout=60)
        except TimeoutError:
            self.p.kill()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (Linux /proc), to split the cost from the client's."""
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(30)


def trivial_app() -> Any:
    """The baseline: FastAPI's own cost for a GET with a path parameter and a JSON answer."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/r/{code}")
    async def r(code: str) -> dict[str, str]:
        return {"code": code}

    return app


def serve(db: str | None, port: int) -> None:
    import uvicorn

    from cloud.http.app import create_app
    if db is None:
        uvicorn.run(trivial_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return
    st = Settings(db_url=f"sqlite:///{db}", master_key=MASTER_KEY, visitor_secret="bench-visitor-secret",
                  rate_client_burst=0, rate_campaign_fail_burst=0)
    uvicorn.run(create_app(st), host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _load(url: str, codes: Iterator[str], concurrency: int) -> tuple[float, list[float], int]:
    """Seconds for all codes, each request's latency (s), and the number of non-200 answers."""
    lat: list[float] = []
    bad = 0
    it = codes
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60,
                                 headers={"Accept": "application/json"}) as client:
        async def one() -> None:
            nonlocal bad
            for code in it:
                client.cookies.clear()  # each request a new shopper
                t = time.perf_counter()
                r = await client.get(f"/r/{code}")
                lat.append(time.perf_counter() - t)
                if r.status_code != 200:
                    bad += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - t0, lat, bad


def run_one(server: Server, devices: list[tuple[str, int, bytes]], slots: int, requests: int, warmup: int,
            concurrency: int, seed: int) -> dict[str, Any]:
    codes = Codes(devices, slots, warmup + requests, seed)
    _, _, bad = asyncio.run(_load(server.url, codes.part(0, warmup), concurrency))
    s0, c0 = server.cpu_s(), time.process_time()
    dt, lat, bad2 = asyncio.run(_load(server.url, codes.part(warmup), concurrency))
    s1, c1 = server.cpu_s(), time.process_time()
    if bad or bad2:
        raise RuntimeError(f"{bad + bad2} answers were not 200")
    lat.sort()
    return {"rps": requests / dt, "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "requests": requests,
            "server_cpu_ms_per_req": 1000 * (s1 - s0) / requests,
            "client_cpu_ms_per_req": 1000 * (c1 - c0) / requests}


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4)}


def measure(n_campaigns: int, n_devices: int, small_campaigns: int, small_devices: int, requests: int,
            warmup: int, concurrency: int, rounds: int, verbose: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mcode-resolve-bench-", ignore_cleanup_errors=True) as d:
        work = Path(d)
        t0 = time.perf_counter()
        dbs = {"small": (work / "small.db", small_campaigns, small_devices),
               "big": (work / "big.db", n_campaigns, n_devices)}
        devices = {k: build_db(p, c, n) for k, (p, c, n) in dbs.items()}
        build_s = time.perf_counter() - t0
        servers = {k: Server(p) for k, (p, _, _) in dbs.items()}
        servers["trivial"] = Server(None)
        runs: list[dict[str, Any]] = []
        try:
            for r in range(rounds):
                order = ("small", "big") if r % 2 == 0 else ("big", "small")
                sequence = ("trivial", *order) if r % 2 == 0 else (*order, "trivial")
                data = {k: "small" if k == "trivial" else k for k in sequence}  # whose codes to send
                got = {k: run_one(servers[k], devices[data[k]], dbs[data[k]][2], requests, warmup,
                                  concurrency, 100 * r) for k in sequence}
                row = {"round": r + 1, "order": "/".join(order), "small": got["small"], "big": got["big"],
                       "trivial": got["trivial"],
                       "rps_ratio": got["big"]["rps"] / got["small"]["rps"],
                       "p99_ratio": got["big"]["p99_ms"] / got["small"]["p99_ms"],
                       "vs_trivial": {f"{k}_{m}": got[k][f] / got["trivial"][f] for k in ("small", "big")
                                      for m, f in (("rps", "rps"), ("p99", "p99_ms"))}}
                runs.append(row)
                if verbose:
                    vt = row["vs_trivial"]
                    print(f"round {r + 1} ({row['order']}): small {got['small']['rps']:,.0f} req/s p99 "
                          f"{got['small']['p99_ms']:.1f} ms; big {got['big']['rps']:,.0f} req/s p99 "
                          f"{got['big']['p99_ms']:.1f} ms; trivial {got['trivial']['rps']:,.0f} req/s p99 "
                          f"{got['trivial']['p99_ms']:.1f} ms; big/small req/s {row['rps_ratio']:.3f}, p99 "
                          f"{row['p99_ratio']:.3f}; big/trivial req/s {vt['big_rps']:.3f}, p99 "
                          f"{vt['big_p99']:.3f}", file=sys.stderr, flush=True)
        finally:
            for s in servers.values():
                s.stop()
    return {"campaigns": n_campaigns, "devices_per_campaign": n_devices, "small_campaigns": small_campaigns,
            "small_devices_per_campaign": small_devices, "requests": requests, "warmup": warmup,
            "concurrency": concurrency, "rounds": rounds, "build_s": round(build_s, 2),
            "cpus": os.cpu_count(),
            "rate_limits": "off (rate_client_burst=0, rate_campaign_fail_burst=0)", "runs": runs,
            "summary": {
                "small_rps": _spread([x["small"]["rps"] for x in runs]),
                "big_rps": _spread([x["big"]["rps"] for x in runs]),
                "small_p99_ms": _spread([x["small"]["p99_ms"] for x in runs]),
                "big_p99_ms": _spread([x["big"]["p99_ms"] for x in runs]),
                "rps_ratio": _spread([x["rps_ratio"] for x in runs]),
                "p99_ratio": _spread([x["p99_ratio"] for x in runs]),
                "trivial_rps": _spread([x["trivial"]["rps"] for x in runs]),
                "trivial_p99_ms": _spread([x["trivial"]["p99_ms"] for x in runs]),
                **{f"{k}_vs_trivial": _spread([x["vs_trivial"][k] for x in runs])
                   for k in ("small_rps", "small_p99", "big_rps", "big_p99")},
                "small_server_cpu_ms_per_req": _spread([x["small"]["server_cpu_ms_per_req"] for x in runs]),
                "big_server_cpu_ms_per_req": _spread([x["big"]["server_cpu_ms_per_req"] for x in runs]),
                "client_cpu_ms_per_req": _spread([x[k]["client_cpu_ms_per_req"] for x in runs
                                                  for k in ("small", "big")])}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="GET /r/{code} on many devices, as a ratio of few.")
    ap.add_argument("--campaigns", type=int, default=100)
    ap.add_argument("--devices", type=int, default=1000, help="devices per campaign")
    ap.add_argument("--small-campaigns", type=int, default=1)
    ap.add_argument("--small-devices", type=int, default=10)
    ap.add_argument("--requests", type=int, default=5000, help="timed requests per run")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="10 x 100 devices, 500 requests, 2 rounds")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the summary")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--trivial", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        serve(None if a.trivial else a.db, a.port)
        return
    if a.quick:
        a.campaigns, a.devices, a.requests, a.warmup, a.rounds = 10, 100, 500, 50, 2
    res = measure(a.campaigns, a.devices, a.small_campaigns, a.small_devices, a.requests, a.warmup,
                  a.concurrency, a.rounds, verbose=not a.json)
    if a.json:
        print(json.dumps(res))
        return
    s = res["summary"]
    print(f"small ({a.small_campaigns} x {a.small_devices}): {s['small_rps']['median']:,.0f} req/s, p99 "
          f"{s['small_p99_ms']['median']:.1f} ms; big ({a.campaigns} x {a.devices}): "
          f"{s['big_rps']['median']:,.0f} req/s, p99 {s['big_p99_ms']['median']:.1f} ms")
    print(f"big/small: req/s {s['rps_ratio']['median']:.3f} (min {s['rps_ratio']['min']:.3f}, max "
          f"{s['rps_ratio']['max']:.3f}); p99 {s['p99_ratio']['median']:.3f} "
          f"(min {s['p99_ratio']['min']:.3f}, max {s['p99_ratio']['max']:.3f}); "
          f"{a.requests} requests per run, {a.concurrency} connections, "
          f"{a.rounds} rounds; rate limits off; databases built in {res['build_s']} s")
    print(f"against a trivial FastAPI GET ({s['trivial_rps']['median']:,.0f} req/s, p99 "
          f"{s['trivial_p99_ms']['median']:.1f} ms): big req/s {s['big_rps_vs_trivial']['median']:.3f} "
          f"(min {s['big_rps_vs_trivial']['min']:.3f}, max {s['big_rps_vs_trivial']['max']:.3f}), p99 "
          f"{s['big_p99_vs_trivial']['median']:.2f}x; small req/s {s['small_rps_vs_trivial']['median']:.3f}, "
          f"p99 {s['small_p99_vs_trivial']['median']:.2f}x")
    print(f"CPU per request: server small {s['small_server_cpu_ms_per_req']['median']:.2f} ms, big "
          f"{s['big_server_cpu_ms_per_req']['median']:.2f} ms; load generator (httpx, this process) "
          f"{s['client_cpu_ms_per_req']['median']:.2f} ms")


if __name__ == "__main__":
    main()
