"""The gateway benchmarks run end to end (--quick) and report what docs/performance.md quotes.

Structure and counts only: no figure here is a speed requirement."""

from __future__ import annotations

import json
import subprocess
import sys

from sim.devices import ROOT


def _run(module: str) -> dict[str, object]:
    p = subprocess.run([sys.executable, "-m", module, "--quick", "--json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def test_uplink_benchmark_quick() -> None:
    res = _run("benchmarks.gateway_uplink")
    assert res["rounds"] == 2 and res["events_per_round"] == 20_000 and res["batches_per_round"] == 200
    assert res["raw_window"] == 20 and res["window"] > 0
    for k in ("gateway_eps", "raw_puback_eps", "raw_appack_eps", "ratio_gateway_to_raw_puback",
              "ratio_gateway_to_raw_appack"):
        v = res[k]
        assert isinstance(v, dict) and set(v) == {"median", "min", "max"}
        assert 0 < v["min"] <= v["median"] <= v["max"]
    cloud = res["cloud"]
    assert isinstance(cloud, dict)
    # every batch of every run went through the cloud stand-in, each verified and acked once:
    # 2 rounds x (gateway + raw) x 200 batches
    assert cloud["deliveries"] == cloud["acked"] == 800
    assert cloud["records"] == 80_000
    assert cloud["bad_signatures"] == cloud["malformed"] == 0


def test_rss_benchmark_quick() -> None:
    res = _run("benchmarks.gateway_rss")
    phases = res["phases"]
    assert isinstance(phases, list)
    assert [(p["phase"], p["rate"]) for p in phases] == [
        ("mcode gateway run --no-ble", 0), ("python -m gateway run (BLE on)", 0),
        ("Gateway(collect=False)", 0), ("Gateway(collect=False)", 1000)]
    for p in phases:
        assert 0 < p["rss_median_mb"] <= p["rss_max_mb"] <= p["hwm_mb"]
        assert p["cpu_s_per_s"] >= 0
    # per import: every module of IMPORTS, in order, RSS never shrinking by much (a fresh process)
    imports = res["imports"]
    assert isinstance(imports, list) and imports[0]["module"] == "(interpreter)"
    assert [r["module"] for r in imports[1:]][-1] == "mcode.cli" and "bleak" in [r["module"] for r in imports]
    assert imports[-1]["rss_mb"] >= imports[0]["rss_mb"] > 0
    loaded = phases[3]
    assert loaded["added"] > 0 and "net_of_idle_per_1k_eps" in loaded
    cloud = res["cloud"]
    assert isinstance(cloud, dict) and cloud["bad_signatures"] == 0
    # what left the spool reached the cloud: records confirmed <= records the cloud stored
    assert loaded["added"] - loaded["left_in_spool"] <= cloud["records"]
