"""The protocol core, checked under CPython and under the real MicroPython interpreter."""

import pytest

from tests.mp.harness import assert_all_pass
from tests.protocol import cases

CASES = sorted(n for n in dir(cases) if n.startswith("test_"))


@pytest.mark.parametrize("name", CASES)
def test_cpython(name: str) -> None:
    getattr(cases, name)()


def test_micropython_runs_the_same_cases() -> None:
    out = assert_all_pass("tests.protocol.cases", heapsize="64K")
    for name in CASES:
        assert f"PASS {name}" in out


def test_protocol_doc_carries_the_vectors() -> None:
    """docs/protocol.md prints the vectors; fail if the page and vectors.json drift apart."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "protocol.md").read_text()
    v = json.loads((root / "tests" / "protocol" / "vectors.json").read_text())
    wanted = [v["device_key"], v["device_id"], v["gateway_id"], v["rotation_key"], v["record_key"],
              v["gateway_key"], v["record"]["hex"], v["ack_command"]["hex"], v["ack_command"]["nonce"],
              v["config_key"], v["config"]["hex"]]
    wanted += [f"`{w['code']}`" for w in v["rotation"]["windows"]]
    for w in v["rotation"]["windows"]:
        assert f"| {w['window']} | {w['secret']} | {w['value']} |" in doc
    missing = [x for x in wanted if x not in doc]
    assert not missing, missing


def test_protocol_doc_lists_status_bits_and_reset_causes() -> None:
    """docs/protocol.md names every INFO status bit and reset cause with its value."""
    from pathlib import Path

    from protocol import gatt, record

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for name in ("STATUS_CLOCK_SET", "STATUS_SAFE_MODE", "STATUS_CLOCK_STALE", "STATUS_BATTERY_LOW"):
        v = getattr(gatt, name)
        assert f"| {v.bit_length() - 1} | {v} | `{name}` |" in doc, name
    names = {"UNKNOWN": "unknown", "POWER_ON": "power_on", "HARD": "hard", "WDT": "wdt",
             "DEEPSLEEP": "deepsleep", "SOFT": "soft", "CRASH": "crash"}
    causes = sorted(n for n in dir(record) if n.startswith("RESET_"))
    assert sorted("RESET_" + k for k in names) == causes
    for k, name in names.items():
        assert f"| {getattr(record, 'RESET_' + k)} | {name} |" in doc, name
