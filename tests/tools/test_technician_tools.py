"""`mcode tools` flash, provision, verify, monitor against the virtual serial board, as a person
runs them: the real CLI in a subprocess, at 80 columns, in en and zh-CN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from sim.serialboard.board import SerialBoard
from tests.tools.conftest import BOARD, CloudFixture


def tools(*args: str, lang: str = "en_US.UTF-8", key: str | None = None,
          timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LANG=lang, LANGUAGE="", LC_ALL="", COLUMNS="80")
    env.pop("MCODE_TECHNICIAN_KEY", None)
    if key:
        env["MCODE_TECHNICIAN_KEY"] = key
    return subprocess.run([sys.executable, "-m", "mcode.cli", "tools", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_flash_provision_verify_monitor(board: SerialBoard, cloud: CloudFixture, tmp_path: Path) -> None:
    r = tools("flash", board.port, "--board", BOARD)
    assert r.returncode == 0, r.stderr
    assert "firmware.romfs" in r.stdout and "main.py" in r.stdout
    assert (board.state / "romfs.bin").stat().st_size > 10000

    state = tmp_path / "box.json"
    r = tools("provision", board.port, "--board", BOARD, "--location", cloud.location, "--cloud", cloud.url,
              "--state", str(state), "--label", "shelf 3", key=cloud.tech_key)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reset: software reset" in r.stdout  # the boot watched after writing the config
    assert "safe mode" not in r.stdout
    entry = next(iter(json.loads(state.read_text()).values()))
    dev_id = entry["device_id"]
    # The firmware's boot line named it, so provisioning asked nothing over the REPL after the reset
    # (its clock is unset until a gateway visits: "-").
    assert f"device {dev_id} code -" in r.stdout, r.stdout
    assert entry["code"] is None
    assert entry["booted"] and entry["location"] == cloud.location
    # The cloud has it, at the location; the key never went into a URL or the output.
    auth = {"Authorization": f"Bearer {cloud.tech_key}"}
    d = httpx.get(f"{cloud.url}/devices/{dev_id}", headers=auth).json()
    assert d["location"] == cloud.location and d["board"] == BOARD
    assert cloud.tech_key not in r.stdout + r.stderr

    r = tools("verify", board.port)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and f"ok {dev_id} 4919" in r.stdout

    r = tools("monitor", board.port, "--seconds", "2")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout
    r = tools("monitor", board.port, "--reset", "--seconds", "3", lang="zh_CN.UTF-8")
    assert r.returncode == 0, r.stderr
    assert "复位: 软件复位" in r.stdout and "rst:0xc (RTC_SW_CPU_RST)" in r.stdout, r.stdout
    # Every tool session stopped the firmware within its first 30 s; none counted as a failed boot.
    assert "safe mode" not in r.stdout


def test_port_missing_or_busy_said_in_zh_and_en(board: SerialBoard, tmp_path: Path) -> None:
    r = tools("verify", str(tmp_path / "ttyUSB9"))
    assert r.returncode == 3 and "Plug the board in" in r.stderr and "Traceback" not in r.stderr
    r = tools("verify", str(tmp_path / "ttyUSB9"), lang="zh_CN.UTF-8")
    assert r.returncode == 3 and "插" in r.stderr
    import serial

    with serial.Serial(board.port, exclusive=True):
        r = tools("verify", board.port)
        assert r.returncode == 3 and "busy" in r.stderr, r.stderr
        r = tools("monitor", board.port, "--seconds", "1", lang="zh_CN.UTF-8")
        assert r.returncode == 3 and "占用" in r.stderr, r.stderr


def test_wrong_board_and_unknown_arch(board: SerialBoard) -> None:
    r = tools("flash", board.port, "--board", "kiosk-esp32-ssd1306")
    assert r.returncode == 5 and "Wrong board" in r.stderr and "ESP32-C3" in r.stderr, r.stderr
    r = tools("flash", board.port, "--board", "nope")
    assert r.returncode == 2 and "No board profile nope." in r.stderr
    r = tools("build", "--arch", "riscv")
    assert r.returncode == 2 and "rv32imc" in r.stderr and "Traceback" not in r.stderr
    r = tools("build", "--arch", "riscv", lang="zh_CN.UTF-8")
    assert r.returncode == 2 and "未知" in r.stderr


def test_provision_without_key_says_how_to_get_one(board: SerialBoard) -> None:
    r = tools("provision", board.port, "--board", BOARD, "--location", "x", "--key-file", "/nonexistent")
    assert r.returncode == 2 and "MCODE_TECHNICIAN_KEY" in r.stderr and "Traceback" not in r.stderr
