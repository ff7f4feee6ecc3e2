# Device configuration sealed by the cloud (docs/protocol.md, "Configuration").
#   blob = fmt(1)=1 | version(u32) | slot(u16) | slots(u16) | digits(u8) | period(u32)
#          | tx_power(i8, dBm) | base_len(u8) | base (ASCII digits) | label_len(u8)
#          | label (UTF-8) | tag(16)
#   tag  = HMAC(config_key, device_id || blob[:-16])[0:16]
# The gateway carries the blob inside an OP_CONFIG command frame but cannot make
# one: the config key is derived from the device key. `version` must exceed the
# device's persisted version, so an old blob cannot be replayed, even after a
# reboot. One implementation for the firmware, the gateway and the cloud.
import struct

from protocol import command
from protocol.hmac256 import equal

FMT = 1
FIXED = ">BIHHBIbB"
FIXED_LEN = 16
TAG_LEN = 16
MAX_BASE = 8
MAX_LABEL = 32
MAX_DIGITS = 9
MAX_PERIOD = 86400
TX_MIN = -12  # dBm, the ESP32 family's range
TX_MAX = 9
MIN_LEN = FIXED_LEN + 1 + 1 + TAG_LEN
MAX_LEN = FIXED_LEN + MAX_BASE + 1 + MAX_LABEL + TAG_LEN


class Settings:
    """What a blob sets. Campaign (base, slot, slots, digits, period), label, TX power."""

    def __init__(self, version, base, slot, slots, digits, period, label, tx_power):
        self.version = version
        self.base = base
        self.slot = slot
        self.slots = slots
        self.digits = digits
        self.period = period
        self.label = label
        self.tx_power = tx_power


def valid(s):
    """True if the values make a working display: a decimal base, slot < slots,
    at least 2 values per slot (M = 10**digits // slots), a period, a short label,
    a TX power the radio has."""
    if not (0 < len(s.base) <= MAX_BASE and s.base.isdigit()):
        return False
    if not (1 <= s.digits <= MAX_DIGITS and 1 <= s.slots and 0 <= s.slot < s.slots):
        return False
    if (10 ** s.digits) // s.slots < 2:
        return False
    if not (1 <= s.period <= MAX_PERIOD and TX_MIN <= s.tx_power <= TX_MAX):
        return False
    return len(s.label.encode()) <= MAX_LABEL


def seal(ckey, device_id, s, check=True):
    """The cloud's side: the sealed blob for Settings s. ckey is an HmacKey of
    keys.config_key(device_key). check=False only to build refused blobs in tests."""
    if check and not valid(s):
        raise ValueError("bad config values")
    base = s.base.encode()
    label = s.label.encode()
    body = (struct.pack(FIXED, FMT, s.version, s.slot, s.slots, s.digits, s.period, s.tx_power,
                        len(base)) + base + bytes([len(label)]) + label)
    return body + ckey.mac(device_id, body)[0:TAG_LEN]


def version_of(blob):
    return struct.unpack(">I", blob[1:5])[0]


def unseal(ckey, device_id, blob):
    """(status, Settings or None). Status is command.OK, MALFORMED (layout),
    BAD_CONFIG_TAG (not sealed for this device by its cloud) or BAD_VALUE. Nothing
    is interpreted before the tag is checked, beyond the lengths."""
    n = len(blob)
    if n < MIN_LEN or n > MAX_LEN or blob[0] != FMT:
        return command.MALFORMED, None
    bl = blob[FIXED_LEN - 1]
    i = FIXED_LEN + bl
    if i >= n - TAG_LEN or i + 1 + blob[i] != n - TAG_LEN:
        return command.MALFORMED, None
    if not equal(ckey.mac(device_id, blob[0:n - TAG_LEN])[0:TAG_LEN], blob[n - TAG_LEN:]):
        return command.BAD_CONFIG_TAG, None
    f, ver, slot, slots, digits, period, tx, _ = struct.unpack(FIXED, blob[0:FIXED_LEN])
    try:
        base = str(blob[FIXED_LEN:i], "ascii")
        label = str(blob[i + 1:n - TAG_LEN], "utf-8")
    except (UnicodeError, ValueError):
        return command.BAD_VALUE, None
    s = Settings(ver, base, slot, slots, digits, period, label, tx)
    if not valid(s):
        return command.BAD_VALUE, None
    return command.OK, s
