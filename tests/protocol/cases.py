# Protocol checks that run unchanged under CPython and MicroPython: the
# vectors in vectors.json (also printed in docs/protocol.md) and RFC 4231.
import json

from protocol import command, devconfig, gatt, keys, record, rotation
from protocol.hmac256 import HmacKey, equal, hmac_sha256

_V = None


def _v():
    global _V
    if _V is None:

        here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
        with open(here + "/vectors.json") as f:
            _V = json.load(f)
    return _V


def _h(s):
    return bytes.fromhex(s)


# RFC 4231 test cases 1, 2, 3, 4, 6, 7 (5 is a truncated-output case).
RFC4231 = [
    ("0b" * 20, b"Hi There".hex(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe".hex(), b"what do ya want for nothing?".hex(),
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 20, "dd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    ("0102030405060708090a0b0c0d0e0f10111213141516171819", "cd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ("aa" * 131, (b"This is a test using a larger than block-size key and a larger than block-size data. "
                  b"The key needs to be hashed before being used by the HMAC algorithm.").hex(),
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


def test_hmac_rfc4231():
    for key, msg, want in RFC4231:
        assert hmac_sha256(_h(key), _h(msg)) == _h(want), want


def test_hmac_key_reuse_and_parts():
    k = HmacKey(b"Jefe")
    a = k.mac(b"what do ya ", b"want for nothing?")
    b = k.mac(b"what do ya want for nothing?")
    assert a == b == _h(RFC4231[1][2])


def test_equal():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")


def test_derived_keys():
    v = _v()
    dk = _h(v["device_key"])
    assert keys.rotation_key(dk) == _h(v["rotation_key"])
    assert keys.record_key(dk) == _h(v["record_key"])
    assert keys.gateway_key(dk, _h(v["gateway_id"])) == _h(v["gateway_key"])
    assert keys.config_key(dk) == _h(v["config_key"])


def test_rotation_vectors():
    v = _v()
    rv = v["rotation"]
    rot = rotation.Rotor(_h(v["rotation_key"]), rv["slot"], rv["slots"], rv["digits"])
    for w in rv["windows"]:
        assert rot.secret(w["window"]) == w["secret"]
        assert rot.value(w["window"]) == w["value"]
        assert rotation.format_code(rv["base"], rot.value(w["window"]), rv["digits"]) == w["code"]
        base, suf = rotation.split_code(w["code"])
        assert rotation.locate(int(suf), rv["slots"], rv["digits"]) == (rv["slot"], w["secret"])


def test_rotation_distinct_slots_never_collide():
    slots, digits = 4, 2
    rotors = [rotation.Rotor(keys.rotation_key(bytes([i]) * 32), i, slots, digits) for i in range(slots)]
    for w in range(200):
        vals = [r.value(w) for r in rotors]
        assert len(set(vals)) == slots
        for v in vals:
            assert v < 10 ** digits


def test_split_code():
    assert rotation.split_code("4919-27") == ("4919", "27")
    assert rotation.split_code(" 4919-27 ") == ("4919", "27")
    assert rotation.split_code("491927") is None
    assert rotation.split_code("4919-") is None
    assert rotation.split_code("49a9-27") is None
    assert rotation.locate(99, 4, 2) == (3, 24)


def test_record_vector():
    v = _v()
    r = v["record"]
    rk = HmacKey(_h(v["record_key"]))
    dev = _h(v["device_id"])
    rec = record.make(rk, dev, r["kind"], r["flags"], r["epoch"], r["seq"], r["time"], _h(r["data"]))
    assert rec == _h(r["hex"])
    assert record.verify(rk, dev, rec)
    f = record.unpack(rec)
    assert f[1] == r["kind"] and f[3] == r["epoch"] and f[4] == r["seq"] and f[5] == r["time"]
    assert record.seq_of(rec) == r["seq"]


def test_record_tamper_and_other_device_fail():
    v = _v()
    rk = HmacKey(_h(v["record_key"]))
    dev = _h(v["device_id"])
    rec = bytearray(_h(v["record"]["hex"]))
    rec[9] ^= 1
    assert not record.verify(rk, dev, bytes(rec))
    assert not record.verify(rk, b"\x00" * 8, _h(v["record"]["hex"]))
    assert not record.verify(rk, dev, _h(v["record"]["hex"])[:39])


def test_command_vector():
    v = _v()
    c = v["ack_command"]
    gk = HmacKey(_h(v["gateway_key"]))
    import struct

    frame = command.build(gk, _h(c["nonce"]), command.OP_ACK, _h(v["gateway_id"]), c["ctr"],
                          struct.pack(">I", c["through"]))
    assert frame == _h(c["hex"])
    assert command.header(frame) == (command.OP_ACK, _h(v["gateway_id"]), c["ctr"])
    assert command.authentic(gk, _h(c["nonce"]), frame)
    assert not command.authentic(gk, b"\x00" * 8, frame)
    assert struct.unpack(">I", command.payload(frame))[0] == c["through"]
    assert command.header(frame[:20]) is None


def test_info_and_advertising():
    info = gatt.pack_info(b"12345678", 3, 10, 8, 0, 1, 4, b"abcdefgh", 1)
    assert len(info) == gatt.INFO_LEN
    assert gatt.unpack_info(info)[1] == b"12345678"
    adv = gatt.advertising_payload("mc-0708")
    assert len(adv) <= 31
    assert gatt.log_capacity(247) == 6


def test_status_bits_and_reset_causes():
    bits = [gatt.STATUS_CLOCK_SET, gatt.STATUS_SAFE_MODE, gatt.STATUS_CLOCK_STALE, gatt.STATUS_BATTERY_LOW]
    assert bits == [1, 2, 4, 8]  # one bit each, in the INFO status byte
    info = gatt.pack_info(b"12345678", 1, 1, 0, 0, sum(bits), 0, b"abcdefgh", 1)
    assert gatt.unpack_info(info)[6] == 15
    causes = [record.RESET_UNKNOWN, record.RESET_POWER_ON, record.RESET_HARD, record.RESET_WDT,
              record.RESET_DEEPSLEEP, record.RESET_SOFT, record.RESET_CRASH]
    assert causes == list(range(7))  # 1-5 as MicroPython's machine.*_RESET on the ESP32
    import struct

    data = struct.pack(record.BOOT_FMT, 0x0102, record.RESET_WDT)
    assert data == b"\x01\x02\x03" + b"\x00" * 5  # BOOT data fills the record's 8 bytes
    assert struct.unpack(record.BOOT_FMT, data) == (0x0102, record.RESET_WDT)


def _settings(c, **kw):
    art = [(a[0], a[1], a[2], _h(a[3])) for a in c["art"]]
    s = devconfig.Settings(c["version"], c["base"], c["slot"], c["slots"], c["digits"], c["period"],
                           c["label"], c["tx_power"], c["host"], art)
    for k in kw:
        setattr(s, k, kw[k])
    return s


def test_config_vector():
    v = _v()
    c = v["config"]
    ck = HmacKey(_h(v["config_key"]))
    dev = _h(v["device_id"])
    blob = devconfig.seal(ck, dev, _settings(c))
    assert blob == _h(c["hex"])
    assert devconfig.version_of(blob) == c["version"]
    st, s = devconfig.unseal(ck, dev, blob)
    assert st == command.OK
    got = (s.version, s.base, s.slot, s.slots, s.digits, s.period, s.label, s.tx_power)
    assert got == (c["version"], c["base"], c["slot"], c["slots"], c["digits"], c["period"], c["label"],
                   c["tx_power"])
    assert s.host == c["host"] and len(s.art) == 1
    a = s.find(devconfig.ART_LABEL)
    assert a[0:3] == (1, 10, 2) and devconfig.art_bits(blob, a) == _h(c["art"][0][3])
    assert s.find(devconfig.ART_QR) is None
    # Format 1 (no host, no art) is still read.
    st, s1 = devconfig.unseal(ck, dev, _h(c["hex_v1"]))
    assert st == command.OK and (s1.label, s1.host, s1.art) == (c["label"], "", ())
    # Another device, another key (the gateway's), a flipped bit: not the cloud's seal.
    assert devconfig.unseal(ck, b"\0" * 8, blob)[0] == command.BAD_CONFIG_TAG
    assert devconfig.unseal(HmacKey(_h(v["gateway_key"])), dev, blob)[0] == command.BAD_CONFIG_TAG
    bad = bytearray(blob)
    bad[5] ^= 1
    assert devconfig.unseal(ck, dev, bytes(bad))[0] == command.BAD_CONFIG_TAG
    for cut in (blob[:-1], blob[:20], b"", b"\x03" + blob[1:], blob + b"\0", b"\x01" + blob[1:]):
        assert devconfig.unseal(ck, dev, cut)[0] == command.MALFORMED


def test_config_values_checked():
    v = _v()
    c = v["config"]
    ck = HmacKey(_h(v["config_key"]))
    dev = _h(v["device_id"])
    bad = [dict(slot=4), dict(slots=51), dict(digits=0), dict(period=0), dict(base="49a9"), dict(base=""),
           dict(label="x" * 33), dict(tx_power=10), dict(tx_power=-13), dict(host="M.MCODE.CN"),
           dict(host="a/b"), dict(host="x" * 25), dict(art=[(1, 0, 2, b"")]),
           dict(art=[(1, 513, 1, bytes(65))])]
    for kw in bad:
        s = _settings(c, **kw)
        assert not devconfig.valid(s), kw
        try:
            devconfig.seal(ck, dev, s)
            raise AssertionError("sealed a bad config %r" % (kw,))
        except ValueError:
            pass
        assert devconfig.unseal(ck, dev, devconfig.seal(ck, dev, s, check=False))[0] == command.BAD_VALUE, kw
    # Edges that work: M = 2, a full-length label, the TX range ends.
    for kw in (dict(slots=50, slot=49), dict(label="\u00e9" * 16), dict(tx_power=9), dict(tx_power=-12),
               dict(host="shop.example.cn:8443"), dict(art=[])):
        assert devconfig.unseal(ck, dev, devconfig.seal(ck, dev, _settings(c, **kw)))[0] == command.OK, kw
