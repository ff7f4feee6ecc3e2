"""End to end: `mcode demo --check` on real parts (MicroPython devices on the bumble radio,
the gateway over bleak, Mosquitto, the cloud) — every scan reaches the cloud exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(400)
def test_demo_check_path_is_exact(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "mcode.cli", "demo", "--devices", "3", "--duration", "30",
                        "--check", "--workdir", str(tmp_path / "demo"), "--drain", "90"],
                       capture_output=True, text=True, timeout=380)
    lines = p.stdout.strip().splitlines()
    assert lines, p.stderr[-3000:]
    out = json.loads(lines[-1])
    assert p.returncode == 0, (out, p.stderr[-3000:])
    assert out["ok"] and out["drained"]
    assert out["devices"] == 3
    # The shoppers really did something, and the cloud holds exactly what the devices logged.
    assert out["scans_logged"] > 0 and out["taps_with_receipt"] > 0
    assert out["lost"] == 0 and out["duplicates"] == 0
    assert out["events_in_cloud"] == out["records_logged"]
    assert out["receipts_in_cloud"] == out["receipts"] == out["taps_with_receipt"]
    assert out["orders"] > 0 and out["shares"] > 0
    assert out["payouts_total_minor"] == out["pool_total_minor"] > 0
    assert out["orders_unbalanced"] == 0
    # Each shopper is their own person: friends came through shares, orders came both ways, and
    # sharers were paid (a run of self-referrals sent every pool to charity and still said ok).
    assert out["entries_via_share"] > 0 and out["orders_via_share"] > 0
    assert out["orders_online"] > 0 and out["orders_till"] > 0
    assert out["orders_online"] + out["orders_till"] == out["orders"]
    assert out["paid_ok"] and 0 < out["paid_to_sharers_minor"] <= out["payouts_total_minor"]
    assert out["sale_errors"] == {}, out["sale_errors"]
    # While it ran it said where to look, with no secret in any URL, and a live line.
    err = p.stderr
    for where in ("/me", "/displays", "/login", "/till", "/shop", "merchant.key"):
        assert where in err, where
    assert "mk_" not in err and "payouts ¥" in err and "summary" in err
    # Devices rendered their screens as images a person can open.
    pbms = list((tmp_path / "demo" / "devices").glob("*/display.pbm"))
    assert len(pbms) == 3 and all(p.read_bytes().startswith(b"P4") for p in pbms)
    # ... each with its board profile's panel: the 128x64 kiosk OLED and the 296x128 e-paper label.
    sizes = {tuple(p.read_bytes().split(b"\n")[1].split()) for p in pbms}
    assert sizes == {(b"128", b"64"), (b"296", b"128")}, sizes


@pytest.mark.parametrize("args", [["--devices", "0"], ["--devices", "-2"], ["--devices", "99"],
                                  ["--duration", "-1"], ["--duration", "0"], ["--drain", "-5"],
                                  ["--check"]])
def test_demo_refuses_bad_options_in_one_clear_line(args: list[str]) -> None:
    p = subprocess.run([sys.executable, "-m", "mcode.cli", "demo", *args], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "80", "LANG": "zh_CN.UTF-8"}, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and ("Invalid value" in p.stderr or "needs" in p.stderr)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in p.stderr), p.stderr  # zh-CN too
    assert "starting" not in p.stderr  # refused before anything was started


def test_cli_fronts_every_tier() -> None:
    p = subprocess.run([sys.executable, "-m", "mcode.cli", "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for sub in ("demo", "gateway", "cloud", "tools"):
        assert sub in p.stdout
