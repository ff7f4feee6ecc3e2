"""Robustness under the real MicroPython interpreter: the watchdog fed by the main loop and firing
on a stalled one, reset causes in BOOT records (mp_robust.py); crash exit and safe mode
(mp_safemode.py); the clock's set/drifting/unset state and the status marks on screen and in INFO
(mp_status.py); the host watchdog resetting a hung device process for real (mp_wdt_kill.py)."""

from __future__ import annotations

import signal
from pathlib import Path

from protocol import record
from tests.mp.harness import assert_all_pass, run_module


def test_robustness() -> None:
    assert_all_pass("tests.firmware.mp_robust", heapsize="128K")


def test_crash_and_safe_mode() -> None:
    assert_all_pass("tests.firmware.mp_safemode", heapsize="128K")


def test_clock_state_and_status_marks() -> None:
    assert_all_pass("tests.firmware.mp_status", heapsize="128K")


def test_host_watchdog_resets_a_hung_device(tmp_path: Path) -> None:
    """A panel draw that never returns hangs the loop; the host watchdog notes RESET_WDT in the
    boot state (pending: the boot never got stable) and kills the process with SIGALRM, which a
    supervisor sees as a death by signal and restarts."""
    p = run_module("tests.firmware.mp_wdt_kill", heapsize="128K", cwd=tmp_path, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == -signal.SIGALRM, (p.returncode, out)
    assert "watchdog: 300 ms" in out, out
    assert "PASS" not in out and "FAIL" not in out, out
    assert (tmp_path / "boot.bin").read_bytes() == bytes([1, 0, record.RESET_WDT])
