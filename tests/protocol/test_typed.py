"""What a person types becomes a code the same way under CPython and the real MicroPython."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.mp.harness import micropython_exe
from tests.protocol import typed_cases

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(n for n in dir(typed_cases) if n.startswith("test_"))


@pytest.mark.parametrize("name", CASES)
def test_cpython(name: str) -> None:
    getattr(typed_cases, name)()


def test_micropython_runs_the_same_cases() -> None:
    # From source: only the cloud reads typed text, but the rule must stay MicroPython-clean
    # (no unicodedata), like the rest of protocol/.
    env = dict(os.environ, MICROPYPATH=f"{ROOT}:{ROOT / 'tests' / 'mp'}")
    p = subprocess.run([micropython_exe(), "-X", "heapsize=128K", str(ROOT / "tests" / "mp" / "runner.py"),
                        "tests.protocol.typed_cases"], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    for name in CASES:
        assert f"PASS {name}" in out


def test_protocol_doc_lists_the_typed_vectors() -> None:
    """docs/protocol.md shows what each spelling becomes; fail if it drifts from the vectors."""
    doc = (ROOT / "docs" / "protocol.md").read_text()
    v = json.loads((ROOT / "tests" / "protocol" / "typed_vectors.json").read_text())
    for case in v["normalize"]:
        if case["typed"].strip() and len(case["typed"]) <= 20:
            shown = f"`{case['code']}`" if case["code"] else "no code"
            assert f"| `{case['typed']}` | {shown} |" in doc, case["typed"]
