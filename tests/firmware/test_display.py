"""Displays under the real MicroPython interpreter: every board profile rendered to PBM and
compared pixel for pixel with the golden images in tests/firmware/golden/ (rewrite them with
MCODE_UPDATE_GOLDEN=1, then look at the PNGs written next to them), and the SSD1680 e-paper
driver on fake pins and SPI."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

from cloud.services import label_art
from protocol import devconfig, keys
from protocol.hmac256 import HmacKey
from tests.firmware import fwtest
from tests.mp.harness import ROOT, assert_all_pass

GOLDEN = ROOT / "tests" / "firmware" / "golden"
BOARDS = ROOT / "hardware" / "boards"
SCENARIOS = ["synced", "unsynced", "no_gateway", "battery_low", "clock_unset", "clock_stale", "all_marks",
             "zh", "text_label"]
URL = "https://m.mcode.cn/s/4919"


def write_art_configs(folder: Path, width: int, height: int) -> None:
    """The cloud's path: config.json, and sealed configs carrying the label rendered by
    cloud/services/label_art.py (en.bin, zh.bin) for this panel, with the host and the QR."""
    (folder / "config.json").write_text(__import__("json").dumps(fwtest.CFG))
    ck = HmacKey(keys.config_key(fwtest.KEY))
    for name, label in (("en", "Oat milk 1L"), ("zh", "扫码有礼")):
        art = label_art.device_art(label, URL, width, height)
        s = devconfig.Settings(1, "4919", 1, 4, 2, 60, label, 0, "m.mcode.cn", art)
        (folder / f"{name}.bin").write_bytes(devconfig.seal(ck, fwtest.DEVICE_ID, s))


def read_pbm(data: bytes) -> tuple[int, int, bytes]:
    magic, dims, rest = data.split(b"\n", 2)
    assert magic == b"P4"
    w, h = (int(v) for v in dims.split())
    assert len(rest) == (w + 7) // 8 * h
    return w, h, rest


def pbm_to_png(data: bytes, scale: int = 3) -> bytes:
    """A tiny PNG encoder (8-bit grey), scaled up so the pixels are easy to see."""
    w, h, bits = read_pbm(data)
    stride = (w + 7) // 8
    raw = bytearray()
    for y in range(h):
        row = bytearray()
        for x in range(w):
            black = bits[y * stride + x // 8] >> (7 - x % 8) & 1
            row += bytes([0 if black else 255]) * scale
        for _ in range(scale):
            raw += b"\0" + row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w * scale, h * scale, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw))) + \
        chunk(b"IEND", b"")


def test_every_board_matches_its_golden_images(tmp_path: Path) -> None:
    boards = sorted(p.stem for p in BOARDS.glob("*.json"))
    assert len(boards) >= 2
    for b in boards:
        (tmp_path / b).mkdir()
        shutil.copyfile(BOARDS / f"{b}.json", tmp_path / b / "board.json")
        prof = __import__("json").loads((BOARDS / f"{b}.json").read_text())["display"]
        write_art_configs(tmp_path / b, prof["width"], prof["height"])
    assert_all_pass("tests.firmware.mp_render", heapsize="128K", cwd=tmp_path)
    update = os.environ.get("MCODE_UPDATE_GOLDEN") == "1"
    diffs = []
    for b in boards:
        for s in SCENARIOS:
            got = (tmp_path / b / f"{s}.pbm").read_bytes()
            gold = GOLDEN / f"{b}-{s}.pbm"
            if update:
                GOLDEN.mkdir(exist_ok=True)
                gold.write_bytes(got)
                gold.with_suffix(".png").write_bytes(pbm_to_png(got))
                continue
            assert gold.exists(), f"no golden image {gold}: run with MCODE_UPDATE_GOLDEN=1"
            gw, gh, gbits = read_pbm(gold.read_bytes())
            w, h, bits = read_pbm(got)
            if (w, h) != (gw, gh):
                diffs.append(f"{gold.name}: {w}x{h}, golden {gw}x{gh}")
            elif bits != gbits:
                n = sum(bin(a ^ c).count("1") for a, c in zip(bits, gbits, strict=True))
                diffs.append(f"{gold.name}: {n} pixels differ")
                (tmp_path / f"{b}-{s}.png").write_bytes(pbm_to_png(got))
    assert not diffs, f"{diffs} (new renders as PNG in {tmp_path})"


def test_scenarios_differ_and_the_code_is_big() -> None:
    for b in sorted(p.stem for p in BOARDS.glob("*.json")):
        imgs = {s: (GOLDEN / f"{b}-{s}.pbm").read_bytes() for s in SCENARIOS}
        # Every mark shows; the device's legacy text status "not synced" draws the clock mark too.
        assert imgs["unsynced"] == imgs["clock_unset"], b
        assert len(set(imgs.values())) == len(SCENARIOS) - 1, b
        w, h, bits = read_pbm(imgs["text_label"])
        stride = (w + 7) // 8
        rows = [y for y in range(h) if any(bits[y * stride:(y + 1) * stride])]
        # The code's digits: the tallest run of consecutive inked rows is over 40% of the panel.
        best = run = 0
        for y in range(h):
            run = run + 1 if y in rows else 0
            best = max(best, run)
        assert best > 0.4 * h, (b, best, h)


def test_zh_label_is_the_cloud_bitmap() -> None:
    """The zh image's top rows are the cloud's rendering of 扫码有礼, bit for bit, and the en
    image's differ from them."""
    for b in sorted(p.stem for p in BOARDS.glob("*.json")):
        prof = __import__("json").loads((BOARDS / f"{b}.json").read_text())["display"]
        w = prof["width"]
        art = label_art.device_art("扫码有礼", URL, w, prof["height"])
        kind, aw, ah, want = art[0]
        assert kind == devconfig.ART_LABEL and any(want)
        gw, gh, gold = read_pbm((GOLDEN / f"{b}-zh.pbm").read_bytes())
        x0 = ((aw if len(art) > 1 else w) - aw) // 2
        got = bytearray()
        for y in range(ah):
            row = 0
            for x in range(aw):
                px = gold[y * ((gw + 7) // 8) + (x0 + x) // 8] >> (7 - (x0 + x) % 8) & 1
                row = row << 1 | px
            got += (row << (-aw % 8)).to_bytes((aw + 7) // 8, "big")
        assert bytes(got) == want, b
        assert (GOLDEN / f"{b}-zh.pbm").read_bytes() != (GOLDEN / f"{b}-synced.pbm").read_bytes()


def test_epaper_driver_on_fake_spi() -> None:
    assert_all_pass("tests.firmware.mp_epaper", heapsize="128K")
