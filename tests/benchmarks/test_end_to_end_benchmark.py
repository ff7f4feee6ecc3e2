"""benchmarks/end_to_end.py runs at tiny sizes on SQLite and PostgreSQL, and every run it reports
stored every event exactly once (checked in the database after each run).

Structure and counts only: no figure here is a speed requirement."""

from __future__ import annotations

import json
import subprocess
import sys

from sim.devices import ROOT


def _run(*args: str) -> dict[str, object]:
    p = subprocess.run([sys.executable, "-m", "benchmarks.end_to_end", *args, "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def _check(res: dict[str, object], batches: list[int], rounds: int, events: int) -> None:
    assert (res["batches"], res["rounds"], res["events"]) == (batches, rounds, events)
    runs = res["runs"]
    assert isinstance(runs, list) and len(runs) == len(batches) * rounds
    for run in runs:
        # alternating order, and both pipelines stored every event once
        assert run["order"] == ("raw/pipeline" if run["round"] % 2 else "pipeline/raw")
        assert run["batches"] == -(-events // run["batch"])
        for side in ("pipeline", "raw"):
            assert run[side]["stored"] == events and run[side]["eps"] > 0
        assert run["ratio"] == run["pipeline"]["eps"] / run["raw"]["eps"]
    summary = res["summary"]
    assert isinstance(summary, dict) and set(summary) == {str(b) for b in batches}
    for s in summary.values():
        for k in ("pipeline_eps", "raw_eps", "ratio"):
            assert set(s[k]) == {"median", "min", "max"} and 0 < s[k]["min"] <= s[k]["median"] <= s[k]["max"]


def test_end_to_end_tiny_on_sqlite() -> None:
    _check(_run("--events", "600", "--batches", "10,100", "--rounds", "2"), [10, 100], 2, 600)


def test_end_to_end_tiny_before_the_fixes() -> None:
    res = _run("--events", "300", "--batches", "50", "--rounds", "1", "--nagle", "--window", "20")
    assert res["nagle"] is True and res["gateway_max_inflight"] == 20
    _check(res, [50], 1, 300)


def test_end_to_end_tiny_on_postgresql() -> None:
    res = _run("--events", "300", "--batches", "50", "--rounds", "1", "--db", "postgresql")
    assert res["db"] == "postgresql"
    _check(res, [50], 1, 300)


def test_bad_arguments_are_said_plainly() -> None:
    p = subprocess.run([sys.executable, "-m", "benchmarks.end_to_end", "--batches", "0,x"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--batches" in p.stderr and "Traceback" not in p.stderr
