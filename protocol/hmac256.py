# HMAC-SHA256 (RFC 2104) on hashlib alone: MicroPython has no hmac module.
# Pads are computed once per key so the hot path is two hashes and no XOR loop.
import hashlib

_BLOCK = 64


def _pads(key):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    return bytes(ipad), bytes(opad)


class HmacKey:
    """A key with its pads precomputed; mac() may be called any number of times."""

    def __init__(self, key):
        self._ipad, self._opad = _pads(key)

    def mac(self, *parts):
        h = hashlib.sha256(self._ipad)
        for p in parts:
            h.update(p)
        outer = hashlib.sha256(self._opad)
        outer.update(h.digest())
        return outer.digest()


def hmac_sha256(key, msg):
    return HmacKey(key).mac(msg)


def equal(a, b):
    # Constant-time comparison: the time taken does not depend on where they differ.
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0
