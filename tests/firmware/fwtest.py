# Shared bits for the firmware tests that run under MicroPython: a scratch
# flash directory with a config, a radio that records what the device sends
# (and checks each receipt is already on flash), and command-frame builders.
import json
import os
import struct

from protocol import command, keys, record
from protocol.hmac256 import HmacKey

DEVICE_ID = bytes.fromhex("0102030405060708")
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
GW = bytes.fromhex("a1a2a3a4a5a6a7a8")
CFG = {"device_id": "0102030405060708", "key": KEY.hex(), "base": "4919", "slot": 1,
       "slots": 4, "digits": 2, "period": 60, "label": "Oat milk 1L", "name": "mc-0708", "fw": 1}
REC_KEY = HmacKey(keys.record_key(KEY))
GW_KEY = HmacKey(keys.gateway_key(KEY, GW))


def flashdir():
    """A fresh empty directory standing in for the device's flash root; returns 'dir/'."""
    d = "/tmp/mcode-fw-" + os.urandom(6).hex()
    os.mkdir(d)
    with open(d + "/config.json", "w") as f:
        json.dump(CFG, f)
    return d + "/"


def wipe(root):
    for name in os.listdir(root):
        os.remove(root + name)
    os.rmdir(root[:-1])


def logsegs(root):
    """Paths of the scan log's segment files, oldest first."""
    nums = sorted(int(n[4:]) for n in os.listdir(root or ".") if n.startswith("log.") and n[4:].isdigit())
    return [root + "log." + str(n) for n in nums]


def logbytes(root):
    """All segment files of the scan log, oldest first, concatenated."""
    return b"".join(read(p) for p in logsegs(root))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def boot_causes(root):
    """The reset cause (record.RESET_*) of every BOOT record on flash, oldest first."""
    b = logbytes(root)
    out = []
    for i in range(0, len(b), record.RECORD_LEN):
        f = record.unpack(b[i:i + record.RECORD_LEN])
        if f[1] == record.KIND_BOOT:
            out.append(struct.unpack(record.BOOT_FMT, f[6])[1])
    return out


def advance(clock, s):
    """Let s seconds pass at once on a clock.Clock: uptime and wall time."""
    clock._up += s
    clock._sec += s


class RecDisplay:
    """A panel that records what it was asked to show."""

    def __init__(self):
        self.shows = []

    def show(self, code, face, status, left=0):
        self.shows.append((code, getattr(face, "label", face), status))


class FakeRadio:
    """The device's radio interface, recording every notification."""

    flag = None

    def __init__(self, root):
        self.root = root
        self.sent = []  # (channel, conn, bytes)
        self.info = None
        self.receipt_on_flash = []
        self.congest = 0  # refuse this many LOG notifications before accepting

    def tap_receipt(self, conn, data):
        data = bytes(data)
        if len(data) == record.RECORD_LEN:
            # Reopen the log as a reader would after a power cut: is it there?
            self.receipt_on_flash.append(any(data in read(p) for p in logsegs(self.root)))
        self.sent.append(("tap", conn, data))

    def control_reply(self, conn, data):
        self.sent.append(("ctrl", conn, bytes(data)))

    def log_frame(self, conn, data):
        if self.congest:
            self.congest -= 1
            return False
        self.sent.append(("log", conn, bytes(data)))
        return True

    def set_info(self, data):
        self.info = bytes(data)

    def take(self, channel):
        out = [s[2] for s in self.sent if s[0] == channel]
        self.sent = [s for s in self.sent if s[0] != channel]
        return out


def frame(nonce, op, ctr, payload, gw_key=GW_KEY, gw=GW):
    return command.build(gw_key, nonce, op, gw, ctr, payload)
