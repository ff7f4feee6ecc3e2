"""Gateway memory and CPU under a steady load: RSS, and CPU seconds per 1,000 events/s.

Run: python -m benchmarks.gateway_rss [--rates 1000,5000 --seconds 45 --warmup 5] [--quick] [--json]

Starts a real Mosquitto with auth (sim/broker.py) and the cloud stand-in (sim/cloud_acker.py, its
own process), then runs the real gateway, one process per phase, and reads that process's
/proc/<pid>/status (VmRSS sampled every 0.5 s, VmHWM) and /proc/<pid>/stat (user + system CPU):

- `mcode gateway run --no-ble`, idle: the command as deployed before issue 17, for comparison;
- `python -m gateway run`, idle, BLE on: the command as deployed now (deploy/systemd), with bleak
  and its platform backend (BlueZ over D-Bus: dbus_fast) loaded. Without BlueZ here its scans fail
  and back off, so BlueZ's connection state is not in the figure;
- gateway.service.Gateway(collect=False) at each rate, 0 (idle) first as the baseline: a task on
  the gateway's loop adds records to the spool every 0.1 s, in one transaction per pull
  (`Spool.add_records` in a worker thread, after `Spool.full()`), as the collector's session does,
  round-robin over 10 devices. The gateway seals, signs and publishes them; the cloud acks.

CPU is counted over the measuring window only (after the warm-up). The Gateway(collect=False)
phases load no BLE. This is x86-64, not a Raspberry Pi 4.

`imports`: what each import of an idle gateway adds to RSS, in the order they load, in a fresh
process (IMPORTS; each line counts what that module brings that the ones above did not).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICK_S = 0.1  # the producer's period: one spool transaction per tick
# An idle deployed gateway's imports, biggest shared dependencies first (each counts only what is new).
IMPORTS = ("ssl", "asyncio", "sqlite3", "paho.mqtt.client", "cryptography.hazmat.bindings._rust",
           "cbor2", "typer", "rich.console", "rich.table", "gateway.config", "gateway.spool",
           "gateway.uplink", "gateway.remote_config", "gateway.collector", "gateway.service", "gateway.cli",
           "bleak", "dbus_fast", "bleak.backends.bluezdbus.scanner", "bleak.backends.bluezdbus.client",
           "gateway.ble.factory", "mcode.cli")
DEVICES = 10
SAMPLE_S = 0.5


# -- the child: one gateway process ------------------------------------------------------------

async def _produce(gw: object, rate: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    from gateway.service import Gateway
    from protocol import record
    from protocol.hmac256 import HmacKey

    assert isinstance(gw, Gateway)
    key = HmacKey(b"k" * 32)
    devs = [(0xE0 + d).to_bytes(1, "big") * 8 for d in range(DEVICES)]
    seqs = [0] * DEVICES
    carry = 0.0
    t_next = time.monotonic()
    i = 0
    while not stop.is_set():
        carry += rate * TICK_S
        n, carry = int(carry), carry - int(carry)
        d = i % DEVICES
        i += 1
        if n:
            recs = [record.make(key, devs[d], record.KIND_TAP, 0, 1, s, 1000 + s, s.to_bytes(8, "big"))
                    for s in range(seqs[d] + 1, seqs[d] + n + 1)]
            seqs[d] += n
            if not await asyncio.to_thread(gw.spool.full):
                counts["added"] += await asyncio.to_thread(gw.spool.add_records, devs[d], recs)
        t_next += TICK_S
        await asyncio.sleep(max(0.0, t_next - time.monotonic()))


async def _child(config: Path, rate: int) -> dict[str, object]:
    """Run until stdin closes: the parent ends a phase when its sampling is done."""
    from gateway import config as gconfig
    from gateway.service import Gateway

    gw = Gateway(gconfig.load(config), collect=False)
    counts = {"added": 0}
    stop = asyncio.Event()
    run = asyncio.create_task(gw.run())
    t0 = time.monotonic()
    while not gw.uplink.wait_ready(0):
        if time.monotonic() - t0 > 30:
            raise RuntimeError("gateway did not connect to the broker")
        await asyncio.sleep(0.05)
    print("RUNNING", flush=True)
    prod = asyncio.create_task(_produce(gw, rate, stop, counts)) if rate else None
    await asyncio.to_thread(sys.stdin.read)
    stop.set()
    if prod is not None:
        await prod
    left = gw.spool.counts()
    out: dict[str, object] = {"added": counts["added"], "left_in_spool": left.records,
           "confirmed_batches": gw.uplink.stats.confirmed}
    gw.stop()
    await run
    return out


def child_main(config: Path, rate: int) -> None:
    print(json.dumps(asyncio.run(_child(config, rate))), flush=True)


_IMPORTS_CHILD = """
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 2)
out = [["(interpreter)", rss()]]
for m in sys.argv[1:]:
    importlib.import_module(m)
    out.append([m, rss()])
print(json.dumps(out))
"""


def measure_imports() -> list[dict[str, object]]:
    """IMPORTS one by one in a fresh interpreter that imports nothing else: VmRSS after each."""
    p = subprocess.run([sys.executable, "-c", _IMPORTS_CHILD, *IMPORTS], capture_output=True, text=True,
                       timeout=120, check=True)
    rows = json.loads(p.stdout.strip().splitlines()[-1])
    return [{"module": m, "rss_mb": mb, "added_mb": round(mb - (rows[i - 1][1] if i else mb), 2)}
            for i, (m, mb) in enumerate(rows)]


# -- the parent: broker, cloud, and /proc readings ---------------------------------------------

def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


def _cpu_s(pid: int) -> float:
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def _phase(argv: list[str], warmup: float, seconds: float, ready: str | None,
           log: Path) -> dict[str, object]:
    """Run one gateway process; sample it over [warmup, warmup + seconds] after it is ready."""
    with log.open("w") as err:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    assert p.stdout is not None
    try:
        if ready is not None:
            line = p.stdout.readline()
            if line.strip() != ready:
                raise RuntimeError(f"gateway did not start: {line!r} {log.read_text()[-2000:]}")
        else:
            time.sleep(2.0)  # the CLI says nothing on stdout; give it time to connect
        time.sleep(warmup)
        rss: list[int] = []
        c0, t0 = _cpu_s(p.pid), time.monotonic()
        while time.monotonic() - t0 < seconds - SAMPLE_S / 2:
            rss.append(_status_kb(p.pid)["VmRSS"])
            time.sleep(SAMPLE_S)
        c1, t1 = _cpu_s(p.pid), time.monotonic()
        hwm = _status_kb(p.pid)["VmHWM"]
        if ready is None:
            p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)  # closes stdin: the child phase stops
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"gateway exited {p.returncode}: {log.read_text()[-2000:]}")
    res: dict[str, object] = {
        "rss_median_mb": round(statistics.median(rss) / 1024, 1), "rss_max_mb": round(max(rss) / 1024, 1),
        "rss_first_mb": round(rss[0] / 1024, 1), "rss_last_mb": round(rss[-1] / 1024, 1),
        "hwm_mb": round(hwm / 1024, 1), "cpu_s_per_s": round((c1 - c0) / (t1 - t0), 4),
        "window_s": round(t1 - t0, 1)}
    if ready is not None:
        res.update(json.loads(out.strip().splitlines()[-1]))
    return res


def _write_config(work: Path, port: int, gw_hex: str, password: str) -> Path:
    cfg = work / f"gateway-{len(list(work.glob('gateway-*.toml')))}.toml"
    spool = cfg.with_suffix(".sqlite")
    cfg.write_text(f'gateway_id = "{gw_hex}"\nprivate_key = "gateway.key"\nspool = "{spool.name}"\n\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nusername = "{gw_hex}"\n'
                   f'password = "{password}"\n')
    return cfg


def measure(rates: list[int], seconds: float, warmup: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mcode-rss-bench-", ignore_cleanup_errors=True) as d:
        return _measure(Path(d), rates, seconds, warmup)


def _measure(work: Path, rates: list[int], seconds: float, warmup: float) -> dict[str, object]:
    from benchmarks.gateway_uplink import start_acker, stop_acker
    from gateway import config as gconfig
    from sim.broker import Broker

    gw_id, pw = bytes.fromhex("c0c1c2c3c4c5c6c7"), "gw-pw"
    key = gconfig.generate_key(work / "gateway.key")
    me = [sys.executable, "-m", "benchmarks.gateway_rss", "--child"]
    phases: list[dict[str, object]] = []
    with Broker(work / "broker", {"cloud": "cloud-pw", gw_id.hex(): pw}) as broker:
        acker = start_acker(broker, {gw_id: key})
        try:
            cfg = _write_config(work, broker.port, gw_id.hex(), pw)
            cli = [sys.executable, "-m", "mcode.cli", "gateway", "run", "--config", str(cfg), "--no-ble"]
            phases.append({"phase": "mcode gateway run --no-ble", "rate": 0,
                           **_phase(cli, warmup, seconds, None, cfg.with_suffix(".log"))})
            cfg = _write_config(work, broker.port, gw_id.hex(), pw)
            deployed = [sys.executable, "-m", "gateway", "run", "--config", str(cfg)]
            phases.append({"phase": "python -m gateway run (BLE on)", "rate": 0,
                           **_phase(deployed, warmup, seconds, None, cfg.with_suffix(".log"))})
            for rate in [0, *rates]:
                cfg = _write_config(work, broker.port, gw_id.hex(), pw)  # a fresh spool each phase
                argv = [*me, "--config", str(cfg), "--rate", str(rate)]
                phases.append({"phase": "Gateway(collect=False)", "rate": rate,
                               **_phase(argv, warmup, seconds, "RUNNING", cfg.with_suffix(".log"))})
        finally:
            cloud = stop_acker(acker)
    idle = next(p for p in phases if str(p["phase"]).startswith("Gateway") and p["rate"] == 0)
    for p in phases:
        rate = int(p["rate"])  # type: ignore[call-overload]
        if rate:
            net = float(p["cpu_s_per_s"]) - float(idle["cpu_s_per_s"])  # type: ignore[arg-type]
            p["cpu_s_per_s_per_1k_eps"] = round(float(p["cpu_s_per_s"]) / (rate / 1000), 4)  # type: ignore[arg-type]
            p["net_of_idle_per_1k_eps"] = round(net / (rate / 1000), 4)
    return {"phases": phases, "imports": measure_imports(), "cloud": cloud, "seconds": seconds,
            "warmup": warmup, "budget_mb": 50,
            "machine": f"{os.uname().machine}, {os.cpu_count()} cpus (not a Raspberry Pi 4)"}


def _table(res: dict[str, object]) -> str:
    rows = [f"{'phase':<28} {'ev/s':>6} {'RSS med MB':>10} {'RSS max':>8} {'first->last':>12} {'VmHWM':>6} "
            f"{'CPU s/s':>8} "
            f"{'/1k ev/s':>9} {'net/1k':>7} {'added':>7} {'left':>5}"]
    phases = res["phases"]
    assert isinstance(phases, list)
    for p in phases:
        rows.append(f"{p['phase']:<28} {p['rate']:>6} {p['rss_median_mb']:>10} {p['rss_max_mb']:>8} "
                    f"{str(p['rss_first_mb']) + '->' + str(p['rss_last_mb']):>12} "
                    f"{p['hwm_mb']:>6} {p['cpu_s_per_s']:>8} {p.get('cpu_s_per_s_per_1k_eps', '-'):>9} "
                    f"{p.get('net_of_idle_per_1k_eps', '-'):>7} {p.get('added', '-'):>7} "
                    f"{p.get('left_in_spool', '-'):>5}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Gateway RSS and CPU per 1,000 events/s.")
    ap.add_argument("--rates", default="1000,5000", help="events/s, comma separated (idle is always run)")
    ap.add_argument("--seconds", type=float, default=45.0, help="measuring window per phase")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="1,000 events/s only, 4 s windows (a smoke run)")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child_main(a.config, a.rate)
        return
    rates = [int(r) for r in a.rates.split(",") if r.strip()]
    if a.quick:
        rates, a.seconds, a.warmup = [1000], 4.0, 1.0
    if any(r <= 0 for r in rates):
        ap.error("--rates must be positive")
    res = measure(rates, a.seconds, a.warmup)
    if a.json:
        print(json.dumps(res))
        return
    print(_table(res))
    imports = res["imports"]
    assert isinstance(imports, list)
    print("\nRSS per import (MB):")
    for r in imports:
        print(f"  {r['module']:<38} {r['rss_mb']:>6} {'+' + str(r['added_mb']):>7}")
    print(f"{res['machine']}; window {a.seconds:g} s after {a.warmup:g} s warm-up; cloud: {res['cloud']}")


if __name__ == "__main__":
    main()
