# The device event record: 24-byte body + 16-byte tag = 40 bytes, big-endian.
#  off len field
#   0   1  version (1)
#   1   1  kind (KIND_*)
#   2   2  flags (FLAG_*)
#   4   4  epoch: boot counter, persisted, +1 every boot
#   8   4  seq: log-wide sequence number, persisted, never reused
#  12   4  time: unix seconds if FLAG_CLOCK_SET, else seconds since boot
#  16   8  data: kind-specific (tap: the phone's 8-byte nonce)
#  24  16  tag = HMAC-SHA256(record_key, device_id || body)[0:16]
import struct

VERSION = 1
BODY_LEN = 24
TAG_LEN = 16
RECORD_LEN = BODY_LEN + TAG_LEN

KIND_TAP = 1
KIND_BOOT = 2
KIND_CLOCK_SET = 3
KIND_NAMES = {KIND_TAP: "tap", KIND_BOOT: "boot", KIND_CLOCK_SET: "clock_set"}

FLAG_CLOCK_SET = 1

# BOOT record data: u16 firmware version, u8 reset cause, 5 zero bytes.
BOOT_FMT = ">HB5x"
# Reset causes: why the boot before this one ended (docs/protocol.md, "Data by kind").
# 1-5 have the numbers MicroPython's machine.*_RESET constants have on the ESP32.
RESET_UNKNOWN = 0
RESET_POWER_ON = 1  # power applied (the host: stopped after the boot was stable)
RESET_HARD = 2  # the reset pin or button
RESET_WDT = 3  # the watchdog: the main loop stalled (on the ESP32 also a panic)
RESET_DEEPSLEEP = 4  # woke from deep sleep
RESET_SOFT = 5  # the firmware restarted on purpose (e.g. to leave safe mode)
RESET_CRASH = 6  # an unhandled error, or the boot died before it was stable

_FMT = ">BBHIII8s"


def pack_body_into(buf, kind, flags, epoch, seq, time, data, off=0):
    """Pack the body into buf; data is data[off:off + 8]. Copying by index
    rather than slicing keeps a device's tap path free of a temporary bytes."""
    if off:
        struct.pack_into(_FMT, buf, 0, VERSION, kind, flags, epoch, seq, time, b"")
        for i in range(8):
            buf[16 + i] = data[off + i]
    else:
        struct.pack_into(_FMT, buf, 0, VERSION, kind, flags, epoch, seq, time, data)


def seal_into(buf, rec_key, device_id, body=None):
    """buf is a 40-byte bytearray whose body is packed; writes the tag in place.
    body: a kept memoryview of buf[0:24] (saves two memoryviews per record)."""
    tag = rec_key.mac(device_id, memoryview(buf)[0:BODY_LEN] if body is None else body)
    for i in range(TAG_LEN):  # no slice of the digest
        buf[BODY_LEN + i] = tag[i]


def make(rec_key, device_id, kind, flags, epoch, seq, time, data):
    buf = bytearray(RECORD_LEN)
    pack_body_into(buf, kind, flags, epoch, seq, time, data)
    seal_into(buf, rec_key, device_id)
    return bytes(buf)


def unpack(rec):
    """(version, kind, flags, epoch, seq, time, data); raises ValueError on a wrong size or version."""
    if len(rec) != RECORD_LEN:
        raise ValueError("record must be 40 bytes")
    f = struct.unpack(_FMT, rec[0:BODY_LEN])
    if f[0] != VERSION:
        raise ValueError("unknown record version")
    return f


def verify(rec_key, device_id, rec):
    from protocol.hmac256 import equal

    if len(rec) != RECORD_LEN:
        return False
    tag = rec_key.mac(device_id, rec[0:BODY_LEN])
    return equal(tag[0:TAG_LEN], rec[BODY_LEN:RECORD_LEN])


def seq_of(rec):
    return struct.unpack(">I", rec[8:12])[0]
