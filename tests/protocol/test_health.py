"""The gateway status format, under CPython and under the real MicroPython interpreter."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.mp.harness import micropython_exe
from tests.protocol import health_cases

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(n for n in dir(health_cases) if n.startswith("test_"))


@pytest.mark.parametrize("name", CASES)
def test_cpython(name: str) -> None:
    getattr(health_cases, name)()


def test_micropython_runs_the_same_cases() -> None:
    # From source, not the device's ROMFS image: the device never imports protocol.health.
    env = dict(os.environ, MICROPYPATH=f"{ROOT}:{ROOT / 'tests' / 'mp'}")
    p = subprocess.run([micropython_exe(), "-X", "heapsize=64K", str(ROOT / "tests" / "mp" / "runner.py"),
                        "tests.protocol.health_cases"], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    for name in CASES:
        assert f"PASS {name}" in out, out


def test_protocol_doc_lists_every_figure() -> None:
    from protocol import health

    doc = (ROOT / "docs" / "protocol.md").read_text()
    missing = [n for n in health.FIGURES if f"| `{n}` |" not in doc]
    assert not missing, missing
