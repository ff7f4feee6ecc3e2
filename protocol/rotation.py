# Rotating M-codes. A display code is BASE-SUFFIX, e.g. 4919-27. The suffix is
# `digits` decimal digits encoding v = slot + slots * r(w), where slot is the
# device's place in its campaign (distinct per device), and
# r(w) = u32(HMAC(rotation_key, "rot" || u32be(w))[0:4]) mod M, M = 10**digits // slots.
# Distinct slots give distinct codes in every window; r is unpredictable without
# the device's key.
import struct

from protocol.hmac256 import HmacKey

_ROT = b"rot"


def window(t, period):
    return int(t) // period


def modulus(slots, digits):
    if slots < 1:
        raise ValueError("slots must be >= 1")
    m = (10 ** digits) // slots
    if m < 2:
        raise ValueError("too many slots for the digits")
    return m


class Rotor:
    """Computes one device's rotating values; allocation is a few small bytes per call."""

    def __init__(self, rot_key, slot, slots, digits):
        if not 0 <= slot < slots:
            raise ValueError("slot out of range")
        self._key = HmacKey(rot_key)
        self.slot = slot
        self.slots = slots
        self.digits = digits
        self.m = modulus(slots, digits)

    def secret(self, w):
        d = self._key.mac(_ROT, struct.pack(">I", w & 0xFFFFFFFF))
        return struct.unpack(">I", d[0:4])[0] % self.m

    def value(self, w):
        return self.slot + self.slots * self.secret(w)


def suffix(value, digits):
    s = str(value)
    return "0" * (digits - len(s)) + s


def format_code(base, value, digits):
    return base + "-" + suffix(value, digits)


def split_code(code):
    """'4919-27' or '491927'? Only the dashed form is unambiguous: returns (base, suffix) or None."""
    code = code.strip()
    i = code.find("-")
    if i <= 0 or i == len(code) - 1:
        return None
    base = code[:i]
    rest = code[i + 1:]
    if not (base.isdigit() and rest.isdigit()):
        return None
    return base, rest


def locate(value, slots, digits):
    """Inverse of the layout: (slot, r) for a suffix value, or None if no device could show it."""
    m = modulus(slots, digits)
    slot = value % slots
    r = value // slots
    if r >= m:
        return None
    return slot, r
