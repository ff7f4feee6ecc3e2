"""The cloud benchmarks run end to end at tiny sizes and report what docs/performance.md quotes.

Structure and counts only: no figure here is a speed requirement."""

from __future__ import annotations

import json
import subprocess
import sys

from sim.devices import ROOT


def _run(module: str, *args: str) -> dict[str, object]:
    p = subprocess.run([sys.executable, "-m", module, *args, "--json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def _spread_ok(v: object) -> None:
    assert isinstance(v, dict) and set(v) == {"median", "min", "max"}
    assert 0 < v["min"] <= v["median"] <= v["max"]


def test_ingest_benchmark_tiny() -> None:
    res = _run("benchmarks.cloud_ingest", "--batches", "20", "--batch", "10", "--devices", "3",
               "--rounds", "2", "--workers", "1,2", "--profile")
    assert (res["events"], res["rounds"], res["workers"]) == (200, 2, [1, 2])
    runs = res["runs"]
    assert isinstance(runs, list) and len(runs) == 4
    for run in runs:
        # every batch was handled once by the workers of that run, and stored (checked inside too)
        assert sum(run["per_worker_batches"]) == 20 and len(run["per_worker_batches"]) == run["workers"]
        assert 1 <= run["transactions"] <= 20 and run["errors"] == 0
        assert run["eps"] > 0 and run["raw_eps"] > 0 and run["raw_grouped_eps"] > 0
        assert run["ratio"] == run["eps"] / run["raw_eps"]
        assert run["ratio_per_worker"] == run["eps_per_worker"] / run["raw_eps"]
    summary = res["summary"]
    assert isinstance(summary, dict) and set(summary) == {"1", "2"}
    for s in summary.values():
        for k in ("eps", "eps_per_worker", "raw_eps", "raw_grouped_eps", "ratio", "ratio_per_worker",
                  "ratio_grouped", "ratio_grouped_per_worker"):
            _spread_ok(s[k])
    assert "ingest_many" in str(res["profile"])


def test_resolve_benchmark_tiny() -> None:
    res = _run("benchmarks.cloud_resolve", "--campaigns", "3", "--devices", "20", "--requests", "60",
               "--warmup", "10", "--concurrency", "4", "--rounds", "2")
    assert (res["campaigns"], res["devices_per_campaign"], res["small_campaigns"],
            res["small_devices_per_campaign"]) == (3, 20, 1, 10)
    assert str(res["rate_limits"]).startswith("off")
    runs = res["runs"]
    assert isinstance(runs, list) and [r["order"] for r in runs] == ["small/big", "big/small"]
    for run in runs:
        for k in ("small", "big"):
            assert run[k]["requests"] == 60 and run[k]["rps"] > 0
            assert 0 < run[k]["p50_ms"] <= run[k]["p99_ms"]
        assert run["rps_ratio"] == run["big"]["rps"] / run["small"]["rps"]
    summary = res["summary"]
    assert isinstance(summary, dict)
    for k in ("small_rps", "big_rps", "small_p99_ms", "big_p99_ms", "rps_ratio", "p99_ratio"):
        _spread_ok(summary[k])
