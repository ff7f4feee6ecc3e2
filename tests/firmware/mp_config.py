# Authenticated configuration (OP_CONFIG) and the per-connection tap rate limit,
# on device.Device under MicroPython, driven through a recording radio.
import asyncio
import os

import config
from device import Device
from display_host import HostDisplay
from protocol import command, devconfig, gatt, keys, rotation
from protocol.hmac256 import HmacKey
from tests.firmware import fwtest as T

T0 = 1767225600 + 7
CKEY = HmacKey(keys.config_key(T.KEY))


class TxRadio(T.FakeRadio):
    tx = None

    def set_tx_power(self, dbm):
        self.tx = dbm


class _Quiet:
    def tap_receipt(self, conn, data):
        pass

    def set_info(self, data):
        pass


def _boot(root):
    radio = TxRadio(root)
    dev = Device(config.load(root), root, radio, HostDisplay(root))
    dev.clock.set(T0, 0)
    return dev, radio


def _settings(version, **kw):
    s = devconfig.Settings(version, "7311", 2, 5, 3, 120, "Rye bread", -4)
    for k in kw:
        setattr(s, k, kw[k])
    return s


def _blob(version, **kw):
    return devconfig.seal(CKEY, T.DEVICE_ID, _settings(version, **kw))


def _cfg(dev, ctr, blob, gw_key=T.GW_KEY, conn=7):
    fr = T.frame(dev.nonce, command.OP_CONFIG, ctr, blob, gw_key=gw_key)
    return command.unpack_reply(asyncio.run(dev.on_control(conn, fr)))


def _code(version=1, **kw):
    s = _settings(version, **kw)
    rot = rotation.Rotor(keys.rotation_key(T.KEY), s.slot, s.slots, s.digits)
    return rotation.format_code(s.base, rot.value(rotation.window(T0, s.period)), s.digits)


def test_config_applied_shown_and_persisted_across_reboot():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        dev.refresh()
        before = T.read(root + "display.txt")
        assert _cfg(dev, 1, _blob(1)) == (command.OP_CONFIG, command.OK, 1, 1)
        assert dev.cfg.version == 1 and dev.cfg.label == "Rye bread" and radio.tx == -4
        assert dev.clock_changed.is_set()
        dev.refresh()
        assert T.read(root + "display.txt") == _code().encode() + b"\n" != before
        assert T.read(root + config.OVERLAY) == _blob(1)
        assert "devconfig.tmp" not in os.listdir(root[:-1])
        # A label alone changes: the screen is redrawn with the same code.
        assert _cfg(dev, 2, _blob(2, label="Spelt"))[1] == command.OK
        assert dev.cfg.label == "Spelt" and dev.code() == _code()
        dev.log.close()
        # Reboot: config.json is untouched, the overlay wins, the version floor stays.
        dev, radio = _boot(root)
        c = dev.cfg
        assert (c.version, c.base, c.slot, c.slots, c.digits, c.period, c.label, c.tx_power) == (
            2, "7311", 2, 5, 3, 120, "Spelt", -4)
        assert dev.code() == _code()
        assert _cfg(dev, 1, _blob(2, label="Old"))[1:] == (command.STALE_VERSION, 1, 2)
        dev.log.close()
    finally:
        T.wipe(root)


def test_replayed_and_stale_configs_refused():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        b5 = _blob(5)
        assert _cfg(dev, 1, b5)[1] == command.OK
        # The same blob in a fresh frame (the gateway replays it): stale.
        assert _cfg(dev, 2, b5) == (command.OP_CONFIG, command.STALE_VERSION, 2, 5)
        assert _cfg(dev, 3, _blob(4, label="Older")) == (command.OP_CONFIG, command.STALE_VERSION, 3, 5)
        # The same frame again: the command counter stops it first.
        fr = T.frame(dev.nonce, command.OP_CONFIG, 4, _blob(6))
        assert asyncio.run(dev.on_control(7, fr))[1] == command.OK
        assert command.unpack_reply(asyncio.run(dev.on_control(7, fr)))[1] == command.REPLAY
        assert dev.cfg.version == 6 and dev.cfg.label == "Rye bread"
        dev.log.close()
    finally:
        T.wipe(root)


def test_forged_and_bad_configs_refused_with_reason():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        code0 = dev.code()
        good = _blob(1)
        forged = bytearray(good)
        forged[8] ^= 1  # slots changed in flight
        gw_sealed = devconfig.seal(T.GW_KEY, T.DEVICE_ID, _settings(1))  # a gateway's own key
        other = devconfig.seal(HmacKey(keys.config_key(os.urandom(32))), T.DEVICE_ID, _settings(1))
        for blob in (bytes(forged), gw_sealed, other, devconfig.seal(CKEY, b"\0" * 8, _settings(1))):
            assert _cfg(dev, dev.last_ctr + 1, blob)[1:] == (command.BAD_CONFIG_TAG, dev.last_ctr, 0)
        for kw in (dict(slot=5), dict(slots=600), dict(period=0), dict(label="L" * 33),
                   dict(tx_power=20), dict(base="12x4")):
            blob = devconfig.seal(CKEY, T.DEVICE_ID, _settings(1, **kw), check=False)
            assert _cfg(dev, dev.last_ctr + 1, blob)[1] == command.BAD_VALUE, kw
        for blob in (b"", good[:-1], good + b"!", b"\x09" + good[1:]):
            assert _cfg(dev, dev.last_ctr + 1, blob)[1] == command.MALFORMED
        assert dev.cfg.version == 0 and dev.code() == code0
        assert config.OVERLAY not in os.listdir(root[:-1])
        # None of this burned the version: the real config still goes in.
        assert _cfg(dev, dev.last_ctr + 1, good)[1] == command.OK
        dev.log.close()
    finally:
        T.wipe(root)


def test_phone_or_unknown_gateway_cannot_reconfigure():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        good = _blob(1)  # even holding a genuine cloud blob
        for k in (HmacKey(os.urandom(32)), HmacKey(keys.gateway_key(os.urandom(32), T.GW))):
            assert _cfg(dev, 1, good, gw_key=k)[1] == command.BAD_TAG
        unknown = bytes(8)  # a gateway id the cloud never keyed: its frame cannot verify
        fr = command.build(T.GW_KEY, dev.nonce, command.OP_CONFIG, unknown, 1, good)
        assert command.unpack_reply(asyncio.run(dev.on_control(2, fr)))[1] == command.BAD_TAG
        assert dev.on_tap(2, good[:9]) is not None  # a TAP write is a tap, never a config
        assert dev.cfg.version == 0 and dev.last_ctr == 0
        dev.log.close()
    finally:
        T.wipe(root)


def test_tap_rate_limit_per_connection():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        for c in (1, 2, 3):
            dev.on_connect(c)
        head = dev.log.head
        got = [bytes(dev.on_tap(1, gatt.pack_tap(bytes([i]) * 8))) for i in range(12)]
        ok = [g for g in got if len(g) == 40]
        limited = bytes([gatt.RECEIPT_REFUSED, command.RATE_LIMITED])
        assert len(ok) >= 4 and limited in got
        assert got[len(ok):] == [limited] * (12 - len(ok))  # once refused, refused until refilled
        assert dev.log.head == head + len(ok)  # refused taps never reach the flash
        # Other phones, on their own connections, are not affected.
        for c in (2, 3):
            assert len(bytes(dev.on_tap(c, gatt.pack_tap(b"other-ph")))) == 40
        # A reconnect is a new connection with a fresh bucket.
        dev.on_disconnect(1)
        dev.on_connect(1)
        assert len(bytes(dev.on_tap(1, gatt.pack_tap(b"back-aga")))) == 40
        dev.log.close()
    finally:
        T.wipe(root)


def test_rate_limit_refills_and_allocates_nothing():
    import gc
    import time

    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        dev.on_connect(4)
        tap = gatt.pack_tap(b"12345678")
        while len(dev.on_tap(4, tap)) == 40:
            pass
        time.sleep_ms(1100)  # two tokens' worth of time (this test waits; it measures nothing)
        assert len(dev.on_tap(4, tap)) == 40
        st = dev._conns[4]
        dev._radio = _Quiet()  # the recording radio allocates; measure the device alone
        for _ in range(3):
            dev.on_tap(4, tap)
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for _ in range(50):
            r = dev.on_tap(4, tap)
        b = gc.mem_alloc()
        gc.enable()
        assert r[1] == command.RATE_LIMITED and st[1] == 0  # device._TOKENS
        assert b - a == 0, b - a  # a refused tap allocates nothing
        dev.log.close()
    finally:
        T.wipe(root)
