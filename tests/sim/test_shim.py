"""sim/micropython/bluetooth.py under the real MicroPython interpreter, against a live hub."""

from __future__ import annotations

import pytest
from conftest import ROOT, SHIM_DIR

from sim.radio import RadioHub
from tests.mp.harness import assert_all_pass


@pytest.mark.timeout(60)
def test_shim_api(hub: RadioHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCODE_RADIO", hub.dev_addr)
    monkeypatch.setenv("MCODE_RADIO_ADDR", "01:02:03:04:05:06")
    assert_all_pass("mp_shim_checks", extra_path=(SHIM_DIR, ROOT / "tests" / "sim"))


@pytest.mark.timeout(60)
def test_shim_without_radio_fails_to_activate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCODE_RADIO", raising=False)
    from tests.mp.harness import run_module

    p = run_module("mp_shim_checks", extra_path=(SHIM_DIR, ROOT / "tests" / "sim"))
    assert p.returncode != 0
    assert "PASS test_uuid" in p.stdout and "FAIL test_handles_like_the_real_module" in p.stdout
