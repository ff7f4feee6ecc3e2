"""`mcode tools verify`: read everything back and run a self-test on the board.

Read-back: each firmware file on the board (main.py and board.json on littlefs, the .mpy in
the ROMFS at /rom) against a fresh build of this checkout, by sha256. Self-test, on the board:
the firmware's own config and board loaders accept what is there, the heap and flash have room,
and the last reset's cause."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tools import build
from tools.flashing import LITTLEFS_FILES, build_for
from tools.i18n import _
from tools.link import BoardInfo, Link

SELFTEST = """\
import sys
r = {}
try:
    import config
    c = config.load('', True)
    r['config'] = 'ok ' + c.device_id.hex() + ' ' + c.base + ' slot ' + str(c.slot)
except Exception as e:
    r['config'] = 'FAIL ' + repr(e)
try:
    import board
    b = board.load('')
    r['board'] = 'ok ' + b.name + ' ' + b.driver + ' %dx%d' % (b.width, b.height)
except Exception as e:
    r['board'] = 'FAIL ' + repr(e)
try:
    from protocol import rotation
    r['protocol'] = 'ok'
except Exception as e:
    r['protocol'] = 'FAIL ' + repr(e)
print(repr(r))
"""
MIN_HEAP_FREE = 32 * 1024
MIN_FLASH_FREE = 64 * 1024
CAUSES = {1: "power on", 2: "hard reset", 3: "watchdog", 4: "deep sleep", 5: "soft reset"}


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


def readback(link: Link, info: BoardInfo, board: str, work: Path) -> list[Check]:
    out = build_for(board, info.virtual, work / "firmware")
    checks = []
    for name in LITTLEFS_FILES:
        want = hashlib.sha256((out / name).read_bytes()).hexdigest()
        got = link.sha256(name)
        checks.append(Check(name, got == want, (got or _("missing"))[:16]))
    for mpy in sorted(out.rglob("*.mpy")):
        rel = mpy.relative_to(out).as_posix()
        want = hashlib.sha256(mpy.read_bytes()).hexdigest()
        got = link.sha256("/rom/" + rel)
        checks.append(Check("/rom/" + rel, got == want, (got or _("missing"))[:16]))
    return checks


def selftest(link: Link, info: BoardInfo) -> list[Check]:
    r = ast.literal_eval(link.exec(SELFTEST).strip())
    checks = [Check(k, str(v).startswith("ok"), str(v)) for k, v in r.items()]
    checks.append(Check(_("heap free"), info.heap_free >= MIN_HEAP_FREE,
                        f"{info.heap_free // 1024} / {info.heap_total // 1024} KiB"))
    checks.append(Check(_("flash free"), info.flash_free >= MIN_FLASH_FREE,
                        f"{info.flash_free // 1024} / {info.flash_total // 1024} KiB"))
    checks.append(Check(_("last reset"), info.reset_cause != 3, CAUSES.get(info.reset_cause, "?")))
    return checks


def board_of(info: BoardInfo) -> str | None:
    try:
        return str(json.loads(info.board_json)["board"])
    except (ValueError, KeyError, TypeError):
        return None


def verify(port: str, work: Path) -> tuple[BoardInfo, list[Check]]:
    """Read-back and self-test; the board is reset afterwards so its firmware runs again."""
    with Link(port) as link:
        info = link.probe()
        board = board_of(info)
        checks = []
        if board is None:
            checks.append(Check("board.json", False, _("missing: flash the board first")))
        else:
            checks += readback(link, info, board, work)
        checks += selftest(link, info)
        link.reset()
    return info, checks


__all__ = ["Check", "verify", "build"]
