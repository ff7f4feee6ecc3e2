"""The dashboard's scale benchmark runs end to end at a tiny size on both databases: the rolled
dashboard equals the live one for every period and case (checked inside, before and after rows
arrive between loads), and it reports what docs/performance.md quotes. No figure here is a speed
requirement."""

from __future__ import annotations

from tests.benchmarks.test_cloud_benchmarks import _run


def test_dashboard_scale_benchmark_tiny() -> None:
    res = _run("benchmarks.dashboard_scale", "--scale", "0.0002", "--loads", "2", "--live-loads", "1")
    assert (res["big_events"], res["small_events"]) == (2000, 1000)
    for db in ("sqlite", "postgresql"):
        r = res[db]
        assert isinstance(r, dict)
        assert r["cases"]["big"]["events"] == 2000 and r["cases"]["small"]["events"] == 1000
        assert r["cases"]["big"]["entries"] == 200
        assert sorted(r["checked_equal"]) == sorted(f"{c}/{p}" for c in ("small", "big")
                                                    for p in ("today", "7d", "30d"))
        loads = r["loads"]
        periods = ("today", "7d", "30d")
        assert set(loads) == {f"{a}_{p}" for a in ("rollup", "live") for p in periods} | {
            "merchant_table_live"}
        for k, v in loads.items():
            n = 2 if k.startswith("rollup") else 1
            assert v["small"]["n"] == v["big"]["n"] == n, k
            for case in ("small", "big"):
                assert 0 < v[case]["p50_ms"] <= v[case]["p95_ms"], (k, case)
            assert v["ratio_p95"] == round(v["big"]["p95_ms"] / v["small"]["p95_ms"], 2)
