"""The label sheet, and a box of boards resumed after a pulled cable without a second
registration."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sim.serialboard.board import SerialBoard
from tests.tools.conftest import BOARD, CloudFixture
from tests.tools.test_technician_tools import tools
from tools.batch import State
from tools.cloudapi import Cloud
from tools.errors import ToolError
from tools.provisioning import provision


def test_label_png_300dpi_and_pdf(tmp_path: Path) -> None:
    args = ["--device", "mc-4160", "--location", "三号货架 Aisle 3", "--base", "4919", "--date", "2026-12-07"]
    r = tools("label", str(tmp_path / "l.png"), *args, lang="zh_CN.UTF-8")
    assert r.returncode == 0, r.stderr
    img = Image.open(tmp_path / "l.png")
    assert img.size == (1181, 732) and round(img.info["dpi"][0]) == 300
    black = img.convert("L").histogram()[:128]
    black_n = sum(black)
    assert 0.05 < black_n / (img.size[0] * img.size[1]) < 0.6  # text and a QR, not blank, not solid
    r = tools("label", str(tmp_path / "l.pdf"), *args)
    assert r.returncode == 0 and (tmp_path / "l.pdf").read_bytes().startswith(b"%PDF")
    r = tools("label", str(tmp_path / "l.txt"), *args)
    assert r.returncode == 2 and ".png or .pdf" in r.stderr


@pytest.mark.xfail(strict=False, reason=(
    "open (issue 15): 1 run in 11 after e4a53c1, `tools batch` on the re-plugged board hung until the "
    "test's 180 s timeout in a blocking read of the port after flash's reset, the board crash-looping "
    "without config.json. The read now times out (tools/link.py READ_TIMEOUT_S), so such a run fails "
    "with an error instead; the crash loop is not explained. Still run: a fix shows as XPASS"))
def test_batch_resumes_after_a_pulled_cable(board: SerialBoard, cloud: CloudFixture, tmp_path: Path) -> None:
    assert tools("flash", board.port, "--board", BOARD).returncode == 0
    state = State(tmp_path / "box.json")
    auth = {"Authorization": f"Bearer {cloud.tech_key}"}
    before = len(httpx.get(f"{cloud.url}/devices", headers=auth).json()["devices"])

    def pull_cable_after_registration() -> None:
        state.save()
        if any("device_id" in e for e in state.data.values()):
            board.stop()

    with pytest.raises(ToolError):
        provision(board.port, Cloud(cloud.url, cloud.tech_key), BOARD, cloud.location, None, "", state.data,
                  pull_cable_after_registration, 5)
    registered = next(iter(json.loads(state.path.read_text()).values()))["device_id"]  # type: ignore[union-attr]

    again = SerialBoard(board.state, BOARD, radio=board.radio)  # plugged back in: a new port, same board
    again.start()
    try:
        r = tools("batch", again.port, "--board", BOARD, "--location", cloud.location, "--cloud", cloud.url,
                  "--state", str(state.path), key=cloud.tech_key)
        assert r.returncode == 0, r.stdout + r.stderr
        entry = next(iter(json.loads(Path(str(state.path)).read_text()).values()))
        assert entry["device_id"] == registered and entry["booted"]
        after = httpx.get(f"{cloud.url}/devices", headers=auth).json()["devices"]
        assert len(after) == before + 1  # registered once
        r = tools("batch", again.port, "--board", BOARD, "--location", cloud.location, "--cloud", cloud.url,
                  "--state", str(state.path), key=cloud.tech_key)
        assert r.returncode == 0 and "done before" in r.stdout
    finally:
        again.stop()
