"""End to end: `mcode demo --check` on real parts (MicroPython devices on the bumble radio,
the gateway over bleak, Mosquitto, the cloud) — every scan reaches the cloud exactly once."""

from __future__ import annotations

import json
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
    # Devices rendered their screens as images a person can open.
    pbms = list((tmp_path / "demo" / "devices").glob("*/display.pbm"))
    assert len(pbms) == 3 and all(p.read_bytes().startswith(b"P4") for p in pbms)
    # ... each with its board profile's panel: the 128x64 kiosk OLED and the 296x128 e-paper label.
    sizes = {tuple(p.read_bytes().split(b"\n")[1].split()) for p in pbms}
    assert sizes == {(b"128", b"64"), (b"296", b"128")}, sizes


def test_cli_fronts_every_tier() -> None:
    p = subprocess.run([sys.executable, "-m", "mcode.cli", "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for sub in ("demo", "gateway", "cloud", "tools"):
        assert sub in p.stdout
