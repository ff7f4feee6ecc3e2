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


# What a person types, brought to the form split_code reads. Phones type more than ASCII: Chinese
# keyboards give full-width digits (U+FF10..U+FF19) and dashes (U+FF0D, "——" for shift-minus), and
# people add spaces. No unicodedata (MicroPython has none): the characters are listed.
_DASHES = (0x2D, 0xFF0D, 0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE58, 0xFE63,
           0x30FC, 0xFF70, 0x4E00, 0x2E3A, 0x2E3B)  # 0x4E00 is 一, what pinyin "yi" types for a dash
_SPACES = (0x20, 0x09, 0xA0, 0x2007, 0x202F, 0x3000)
TYPED_MAX = 40  # longer input is not a code, whatever it holds


def normalize_code(text):
    """A typed code as BASE-SUFFIX ("4919-27") or, typed without a separator, as its digits
    ("491927", "4919"); None if it is not a code. Full-width digits count as digits; any run of
    dashes and spaces between two digit groups is one separator; spaces around are dropped; a
    dash at either end, a third group or any other character makes it no code."""
    if len(text) > TYPED_MAX:
        return None
    out = []
    groups = 0
    pending = 0  # 0: none, 1: spaces only, 2: a dash among them
    for ch in text:
        o = ord(ch)
        if 0x30 <= o <= 0x39:
            d = ch
        elif 0xFF10 <= o <= 0xFF19:
            d = chr(o - 0xFF10 + 0x30)
        elif o in _DASHES:
            if not out:
                return None
            pending = 2
            continue
        elif o in _SPACES:
            if out and pending == 0:
                pending = 1
            continue
        else:
            return None
        if pending:
            if groups == 2:
                return None
            out.append("-")
            groups = 2
            pending = 0
        elif not groups:
            groups = 1
        out.append(d)
    if pending == 2 or not out:
        return None
    return "".join(out)


def split_digits(digits, suffix_lengths):
    """A code typed as digits only ("491927"): (base, suffix) by the rented base codes.
    suffix_lengths(base) gives the suffix lengths that base takes (its display digits and the
    share code's 6), or None when no rented campaign has it. A rented base equal to the whole
    string is a bare base code (suffix ""); else the longest rented prefix whose rest has one of
    its lengths. None if no base fits."""
    if suffix_lengths(digits) is not None:
        return digits, ""
    for n in range(len(digits) - 1, 0, -1):
        lengths = suffix_lengths(digits[:n])
        if lengths is not None and len(digits) - n in lengths:
            return digits[:n], digits[n:]
    return None


def base_prefixes(digits):
    """Every base code that split_digits may ask about: the string and its proper prefixes."""
    return [digits[:n] for n in range(len(digits), 0, -1)]


def locate(value, slots, digits):
    """Inverse of the layout: (slot, r) for a suffix value, or None if no device could show it."""
    m = modulus(slots, digits)
    slot = value % slots
    r = value // slots
    if r >= m:
        return None
    return slot, r
