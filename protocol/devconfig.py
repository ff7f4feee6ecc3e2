# Device configuration sealed by the cloud (docs/protocol.md, "Configuration").
#   blob = fmt(1)=2 | version(u32) | slot(u16) | slots(u16) | digits(u8) | period(u32)
#          | tx_power(i8, dBm) | base_len(u8) | base (ASCII digits) | label_len(u8)
#          | label (UTF-8) | host_len(u8) | host (ASCII) | n_art(u8) | art * n_art | tag(16)
#   art  = kind(u8) | w(u16) | h(u16) | bits: h rows of ceil(w/8) bytes, MSB first, 1 = ink
#   tag  = HMAC(config_key, device_id || blob[:-16])[0:16]
# Format 1 is the same up to the label, with no host and no art; it is still read.
# The art is the campaign's label and the shopper page's QR, rendered by the
# cloud for the device's panel (protocol/screen.py sizes them); the device only
# blits them, reading their rows from the stored blob at the offsets unseal gives.
# The gateway carries the blob inside an OP_CONFIG command frame but cannot make
# one: the config key is derived from the device key. `version` must exceed the
# device's persisted version, so an old blob cannot be replayed, even after a
# reboot. One implementation for the firmware, the gateway and the cloud.
import struct

from protocol import command
from protocol.hmac256 import equal

FMT = 2
FMT_V1 = 1  # no host, no art
FIXED = ">BIHHBIbB"
FIXED_LEN = 16
TAG_LEN = 16
MAX_BASE = 8
MAX_LABEL = 32
MAX_HOST = 24
MAX_ART = 4
ART_HEAD = ">BHH"
ART_HEAD_LEN = 5
ART_LABEL = 1  # the campaign's label text, label_w x label_h of protocol/screen.py
ART_QR = 2  # the shopper page's QR at the panel's scale, quiet zone included
MAX_ART_W = 512  # bounds on one bitmap, whatever the panel
MAX_ART_H = 256
MAX_DIGITS = 9
MAX_PERIOD = 86400
TX_MIN = -12  # dBm, the ESP32 family's range
TX_MAX = 9
MIN_LEN = FIXED_LEN + 1 + 1 + TAG_LEN
# The longest blob one OP_CONFIG write carries over BLE (the device's 112-byte
# CONTROL slot less the frame's 30), and so what a gateway config may hold: a
# long label and a long host do not both fit. A blob with art (up to MAX_SEALED)
# is written to the device's flash at provisioning (devconfig.bin), not sent
# over the radio.
MAX_LEN = 82
MAX_SEALED = 4096


def art_len(w, h):
    return (w + 7) // 8 * h


class Settings:
    """What a blob sets. Campaign (base, slot, slots, digits, period), label, TX
    power, the shopper URL's host, and art. For seal, art is a list of
    (kind, w, h, bits); unseal gives (kind, w, h, offset of the bits in the blob)
    so a device can read rows from its stored copy instead of holding them."""

    def __init__(self, version, base, slot, slots, digits, period, label, tx_power, host="", art=()):
        self.version = version
        self.base = base
        self.slot = slot
        self.slots = slots
        self.digits = digits
        self.period = period
        self.label = label
        self.tx_power = tx_power
        self.host = host
        self.art = art

    def find(self, kind):
        """The first art item of this kind, or None."""
        for a in self.art:
            if a[0] == kind:
                return a
        return None


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
    if len(s.host) > MAX_HOST or len(s.art) > MAX_ART:
        return False
    for c in s.host:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c in ".-:"):
            return False  # a lower-case host[:port]: the panel draws it in ASCII
    for a in s.art:
        if not (0 < a[1] <= MAX_ART_W and 0 < a[2] <= MAX_ART_H):
            return False
    return len(s.label.encode()) <= MAX_LABEL


def seal(ckey, device_id, s, check=True):
    """The cloud's side: the sealed blob for Settings s. ckey is an HmacKey of
    keys.config_key(device_key). check=False only to build refused blobs in tests."""
    if check and not valid(s):
        raise ValueError("bad config values")
    base = s.base.encode()
    label = s.label.encode()
    host = s.host.encode()
    parts = [struct.pack(FIXED, FMT, s.version, s.slot, s.slots, s.digits, s.period, s.tx_power,
                         len(base)), base, bytes([len(label)]), label, bytes([len(host)]), host,
             bytes([len(s.art)])]
    for kind, w, h, bits in s.art:
        if len(bits) != art_len(w, h):
            raise ValueError("art bits do not match its size")
        parts.append(struct.pack(ART_HEAD, kind, w, h))
        parts.append(bytes(bits))
    body = b"".join(parts)
    if len(body) + TAG_LEN > MAX_SEALED:
        raise ValueError("config too long")
    return body + ckey.mac(device_id, body)[0:TAG_LEN]


def version_of(blob):
    return struct.unpack(">I", blob[1:5])[0]


def _tail(blob, i, end):
    """(host span, art list) of a format 2 blob from offset i (just past the
    label) to end (the tag), or None if the layout is wrong."""
    if i >= end:
        return None
    hs = i + 1
    i = hs + blob[i]
    if i >= end:
        return None
    n = blob[i]
    i += 1
    art = []
    for _ in range(n):
        if i + ART_HEAD_LEN > end:
            return None
        kind, w, h = struct.unpack(ART_HEAD, blob[i:i + ART_HEAD_LEN])
        i += ART_HEAD_LEN
        art.append((kind, w, h, i))
        i += art_len(w, h)
    if i != end:
        return None
    return (hs, hs + blob[hs - 1]), art


def unseal(ckey, device_id, blob):
    """(status, Settings or None). Status is command.OK, MALFORMED (layout),
    BAD_CONFIG_TAG (not sealed for this device by its cloud) or BAD_VALUE. Nothing
    is interpreted before the tag is checked, beyond the lengths."""
    n = len(blob)
    if n < MIN_LEN or n > MAX_SEALED or blob[0] not in (FMT, FMT_V1):
        return command.MALFORMED, None
    end = n - TAG_LEN
    bl = blob[FIXED_LEN - 1]
    i = FIXED_LEN + bl
    if i >= end:
        return command.MALFORMED, None
    li = i + 1 + blob[i]  # just past the label
    host, art = (li, li), ()
    if blob[0] == FMT_V1:
        if li != end:
            return command.MALFORMED, None
    else:
        t = _tail(blob, li, end)
        if t is None:
            return command.MALFORMED, None
        host, art = t
    if not equal(ckey.mac(device_id, blob[0:end])[0:TAG_LEN], blob[end:]):
        return command.BAD_CONFIG_TAG, None
    f, ver, slot, slots, digits, period, tx, _ = struct.unpack(FIXED, blob[0:FIXED_LEN])
    try:
        base = str(blob[FIXED_LEN:i], "ascii")
        label = str(blob[i + 1:li], "utf-8")
        hoststr = str(blob[host[0]:host[1]], "ascii")
    except (UnicodeError, ValueError):
        return command.BAD_VALUE, None
    s = Settings(ver, base, slot, slots, digits, period, label, tx, hoststr, art)
    if not valid(s):
        return command.BAD_VALUE, None
    return command.OK, s


def art_bits(blob, item):
    """The bits of an art item unseal gave (kind, w, h, offset), from the blob."""
    return bytes(blob[item[3]:item[3] + art_len(item[1], item[2])])
