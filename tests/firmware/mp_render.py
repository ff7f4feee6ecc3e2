# Renders every board profile's screen on the host display (MicroPython): run
# with the cwd holding one folder per board, each with its board.json; writes
# <scenario>.pbm next to it. Goes through board.load and hw.make_display.
import os

import board
import config
import hw
from display import NOT_SYNCED, ST_BATTERY_LOW, ST_CLOCK_STALE, ST_CLOCK_UNSET, ST_NO_GATEWAY
from protocol import devconfig, keys
from protocol.hmac256 import HmacKey

# (name, code, status, config blob: the cloud's art in en or zh; None: config.json's text label)
SCENARIOS = (
    ("synced", "4919-27", 0, "en"),
    ("unsynced", None, NOT_SYNCED, "en"),
    ("no_gateway", "4919-27", ST_NO_GATEWAY, "en"),
    ("battery_low", "4919-27", ST_BATTERY_LOW, "en"),
    ("clock_unset", None, ST_CLOCK_UNSET, "en"),
    ("clock_stale", "4919-27", ST_CLOCK_STALE, "en"),
    ("all_marks", "4919-27", ST_NO_GATEWAY | ST_BATTERY_LOW | ST_CLOCK_UNSET, "en"),
    ("zh", "4919-27", 0, "zh"),
    ("text_label", "4919-27", "mc-0708", None),
)


def face(root, blob):
    """The config as the device has it: config.json, then the sealed blob (with art) as its overlay."""
    cfg = config.load(root)
    if blob is not None:
        path = root + blob + ".bin"
        with open(path, "rb") as f:
            st, s = devconfig.unseal(HmacKey(keys.config_key(cfg.key)), cfg.device_id, f.read())
        assert st == 0, st
        cfg.apply(s, path)
    return cfg


class Cfg:
    display = None
    i2c = None


def test_render_every_board():
    n = 0
    for name in sorted(os.listdir(".")):
        root = name + "/"
        try:
            os.stat(root + board.FILE)
        except OSError:
            continue
        b = board.load(root)
        d = hw.make_display(Cfg(), root)
        assert (d.w, d.h) == (b.width, b.height)
        for scen, code, status, blob in SCENARIOS:
            d.show(code, face(root, blob), status, 3 if code else 0)
            os.rename(root + "display.pbm", root + scen + ".pbm")
        n += 1
    assert n >= 2, n


def test_boot_takes_the_art_from_devconfig_bin():
    """config.load finds the cloud's blob as the overlay and hands its art to the display."""
    n = 0
    for name in sorted(os.listdir(".")):
        root = name + "/"
        try:
            os.stat(root + board.FILE)
        except OSError:
            continue
        with open(root + "zh.bin", "rb") as f:
            blob = f.read()
        config.save_overlay(root, blob)
        cfg = config.load(root)
        os.remove(root + config.OVERLAY)
        assert cfg.host == "m.mcode.cn" and cfg.label == "\u626b\u7801\u6709\u793c"
        a, qr, path = cfg.art
        assert path == root + config.OVERLAY
        assert a[0] == devconfig.ART_LABEL and blob[a[3]:a[3] + (a[1] + 7) // 8 * a[2]] != bytes(a[2])
        # The 296-wide label has room for the QR; the 128x64 kiosk does not.
        assert (qr is not None) == (board.load(root).width >= 296), name
        n += 1
    assert n >= 2, n
