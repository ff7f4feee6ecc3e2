# device.Device under MicroPython, driven without BLE through a recording radio.
import asyncio
import struct

import config
from device import Device
from display_host import HostDisplay
from protocol import command, gatt, keys, record, rotation
from tests.firmware import fwtest as T

T0 = 1767225600 + 7  # 2026-01-01 00:00:07: a window start plus 7 s


def _boot(root):
    radio = T.FakeRadio(root)
    dev = Device(config.load(root), root, radio, HostDisplay(root))
    return dev, radio


def _ctl(dev, conn, fr):
    return command.unpack_reply(asyncio.run(dev.on_control(conn, fr)))


def _tap(dev, conn=1, nonce=b"phone-01"):
    return bytes(dev.on_tap(conn, gatt.pack_tap(nonce)))


def test_tap_receipt_is_valid_record_on_flash():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        r = _tap(dev, 3, b"ABCDEFGH")
        assert radio.take("tap") == [r]
        assert radio.receipt_on_flash == [True]
        assert record.verify(T.REC_KEY, T.DEVICE_ID, r)
        v, kind, flags, epoch, seq, t, data = record.unpack(r)
        assert (kind, flags, epoch, seq, data) == (record.KIND_TAP, 0, 1, 2, b"ABCDEFGH")
        info = gatt.unpack_info(radio.info)
        assert info[3] == 2 and info[8] == dev.nonce  # head_seq, nonce
        dev.log.close()
    finally:
        T.wipe(root)


def test_malformed_tap_refused_and_not_logged():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        for bad in (b"", b"\x01abc", b"\x02" + b"x" * 8, gatt.pack_tap(b"12345678") + b"!"):
            assert bytes(dev.on_tap(1, bad)) == bytes([gatt.RECEIPT_REFUSED, command.MALFORMED])
        assert dev.log.head == 1 and radio.receipt_on_flash == []
        dev.log.close()
    finally:
        T.wipe(root)


def test_ack_auth_replay_forgery():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        for _ in range(5):
            _tap(dev)
        ack = T.frame(dev.nonce, command.OP_ACK, 10, struct.pack(">I", 4))
        assert _ctl(dev, 7, ack) == (command.OP_ACK, command.OK, 10, 4)
        assert radio.take("ctrl") == [command.pack_reply(command.OP_ACK, command.OK, 10, 4)]
        assert _ctl(dev, 7, ack)[1] == command.REPLAY
        older = T.frame(dev.nonce, command.OP_ACK, 9, struct.pack(">I", 6))
        assert _ctl(dev, 7, older)[1] == command.REPLAY
        forged = bytearray(T.frame(dev.nonce, command.OP_ACK, 11, struct.pack(">I", 6)))
        forged[-1] ^= 1
        assert _ctl(dev, 7, bytes(forged))[1] == command.BAD_TAG
        # A frame for another boot's nonce is worthless.
        stale = T.frame(b"\0" * 8, command.OP_ACK, 12, struct.pack(">I", 6))
        assert _ctl(dev, 7, stale)[1] == command.BAD_TAG
        assert dev.log.acked == 4
        beyond = T.frame(dev.nonce, command.OP_ACK, 13, struct.pack(">I", 99))
        assert _ctl(dev, 7, beyond) == (command.OP_ACK, command.BAD_ARG, 13, 4)
        assert _ctl(dev, 7, T.frame(dev.nonce, 99, 14, b""))[1] == command.UNKNOWN_OP
        assert _ctl(dev, 7, T.frame(dev.nonce, command.OP_ACK, 15, b"\0\0"))[1] == command.MALFORMED
        assert gatt.unpack_info(radio.info)[4] == 4 and gatt.unpack_info(radio.info)[7] == 15
        dev.log.close()
        # The ack survives a reboot; the new boot's nonce kills every old frame.
        dev, radio = _boot(root)
        assert dev.log.acked == 4
        old = T.frame(b"\0" * 8, command.OP_ACK, 99, struct.pack(">I", 6))
        assert _ctl(dev, 7, old)[1] == command.BAD_TAG
        dev.log.close()
    finally:
        T.wipe(root)


def test_phone_cannot_ack_read_or_set_time():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        for _ in range(3):
            _tap(dev)
        nonce = dev.nonce  # INFO is readable by anyone, so a phone knows it
        phone_key = keys.gateway_key(b"\x55" * 32, T.GW)  # a guess: not derived from the device key
        from protocol.hmac256 import HmacKey
        hk = HmacKey(phone_key)
        tries = [
            b"",
            gatt.pack_tap(b"12345678"),
            b"\x01\x03" + T.GW + b"\0\0\0\x01" + b"\0\0\0\x04" + b"\0" * 16,
            T.frame(nonce, command.OP_ACK, 1, struct.pack(">I", 4), gw_key=hk),
            T.frame(nonce, command.OP_READ, 2, struct.pack(">I", 0), gw_key=hk),
            T.frame(nonce, command.OP_TIME, 3, struct.pack(">IH", T0, 0), gw_key=hk),
        ]
        for fr in tries:
            assert _ctl(dev, 2, fr)[1] in (command.BAD_TAG, command.MALFORMED)
        assert dev.log.acked == 0 and dev.last_ctr == 0 and not dev.clock.is_set()
        assert radio.take("log") == []
        assert dev.log.read_from(1, bytearray(40 * 8)) == 4  # nothing dropped
        dev.log.close()
    finally:
        T.wipe(root)


def _read(dev, radio, conn, ctr, start):
    reply = _ctl(dev, conn, T.frame(dev.nonce, command.OP_READ, ctr, struct.pack(">I", start)))
    frames = radio.take("log")
    recs = []
    for f in frames:
        n = f[0]
        assert len(f) == 1 + n * 40
        recs.extend(f[1 + i * 40:1 + (i + 1) * 40] for i in range(n))
    return reply, frames, recs


def test_read_streams_in_order_chunked_by_mtu():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        for i in range(20):
            _tap(dev, 1, bytes([i]) * 8)
        conn = 5
        dev.on_connect(conn)
        reply, frames, recs = _read(dev, radio, conn, 1, 0)
        assert reply == (command.OP_READ, command.BAD_ARG, 1, 21)  # MTU 23 fits no record
        assert frames == []
        dev.on_mtu(conn, 100)  # log_capacity(100) == 2
        reply, frames, recs = _read(dev, radio, conn, 2, 5)
        assert reply == (command.OP_READ, command.OK, 2, 21)
        assert [f[0] for f in frames] == [2] * 8 + [1], [f[0] for f in frames]
        assert [record.seq_of(r) for r in recs] == list(range(5, 22))
        assert all(record.verify(T.REC_KEY, T.DEVICE_ID, r) for r in recs)
        assert record.unpack(recs[3])[6] == bytes([6]) * 8  # seq 8: tap i is seq i + 2
        dev.on_mtu(conn, gatt.WANT_MTU)
        radio.congest = 3  # the stack runs out of buffers for a while
        reply, frames, recs = _read(dev, radio, conn, 3, 1)
        assert reply[1] == command.OK
        assert [f[0] for f in frames] == [6, 6, 6, 3]
        assert [record.seq_of(r) for r in recs] == list(range(1, 22))
        reply, frames, recs = _read(dev, radio, conn, 4, 22)  # nothing new
        assert reply == (command.OP_READ, command.OK, 4, 21) and frames == []
        dev.log.close()
    finally:
        T.wipe(root)


def test_time_sync_shows_the_rotation_code():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        dev.refresh()
        assert T.read(root + "display.txt") == b"\n"  # not synced: no code at all
        assert dev.code() is None
        r = _tap(dev)
        assert record.unpack(r)[2] == 0  # uptime stamp
        bad = T.frame(dev.nonce, command.OP_TIME, 1, struct.pack(">IH", T0, 1000))
        assert _ctl(dev, 4, bad)[1] == command.BAD_ARG and not dev.clock.is_set()
        ok = T.frame(dev.nonce, command.OP_TIME, 2, struct.pack(">IH", T0, 250))
        # The reply value is the old clock's offset; 0x80000000: it was unset.
        assert _ctl(dev, 4, ok) == (command.OP_TIME, command.OK, 2, 0x80000000)
        assert dev.clock_changed.is_set()
        wait = dev.refresh()
        rot = rotation.Rotor(keys.rotation_key(T.KEY), 1, 4, 2)
        want = rotation.format_code("4919", rot.value(rotation.window(T0, 60)), 2)
        assert T.read(root + "display.txt") == want.encode() + b"\n"
        assert 0 < wait <= (60 - 7) * 1000
        assert gatt.unpack_info(radio.info)[6] & gatt.STATUS_CLOCK_SET
        # The clock set is on the log, and later taps carry unix time.
        _, frames, recs = _read_all(dev, radio)
        cs = [record.unpack(x) for x in recs if record.unpack(x)[1] == record.KIND_CLOCK_SET]
        assert len(cs) == 1 and cs[0][5] == T0 and cs[0][2] == record.FLAG_CLOCK_SET
        v = record.unpack(_tap(dev))
        assert v[2] == record.FLAG_CLOCK_SET and T0 <= v[5] <= T0 + 5
        # Resyncing to the same time logs nothing new.
        again = T.frame(dev.nonce, command.OP_TIME, 9, struct.pack(">IH", dev.clock.now(), 0))
        head = dev.log.head
        r = _ctl(dev, 4, again)
        assert r[1] == command.OK and dev.log.head == head
        # Ahead of the whole second it was set to by its ms part (and a second more if the
        # clock ticked over while the frame was made).
        assert 0 <= r[3] < 2000
        # A clock 3 s behind the time set replies -3000 ms (two's complement) plus its ms
        # part; 3 s ahead, +3000.
        behind = T.frame(dev.nonce, command.OP_TIME, 10, struct.pack(">IH", dev.clock.now() + 3, 0))
        r = _ctl(dev, 4, behind)
        assert r[1] == command.OK and -3000 <= r[3] - (1 << 32) < -1000
        ahead = T.frame(dev.nonce, command.OP_TIME, 11, struct.pack(">IH", dev.clock.now() - 3, 0))
        r = _ctl(dev, 4, ahead)
        assert r[1] == command.OK and 3000 <= r[3] < 5000
        dev.log.close()
    finally:
        T.wipe(root)


def _read_all(dev, radio):
    dev.on_mtu(4, gatt.WANT_MTU)
    return _read(dev, radio, 4, dev.last_ctr + 1, 0)


def test_code_follows_windows():
    root = T.flashdir()
    try:
        dev, radio = _boot(root)
        rot = rotation.Rotor(keys.rotation_key(T.KEY), 1, 4, 2)
        for t in (T0, T0 + 60, T0 + 3600 * 24 * 365):
            dev.clock.set(t, 0)
            assert dev.code() == rotation.format_code("4919", rot.value(t // 60), 2)
        dev.log.close()
    finally:
        T.wipe(root)


def test_display_writes_pbm_and_sidecar():
    root = T.flashdir()
    try:
        d = HostDisplay(root)
        for code in ("4919-27", None):
            d.show(code, "Oat milk 1L", "mc-0708" if code else "not synced")
            pbm = T.read(root + "display.pbm")
            head = b"P4\n128 64\n"
            assert pbm[:len(head)] == head and len(pbm) == len(head) + 128 * 64 // 8
            ink = sum(bin(b).count("1") for b in pbm[len(head):])
            assert 200 < ink < 128 * 64 // 2, ink
            assert T.read(root + "display.txt") == (code or "").encode() + b"\n"
        d.show("4919-27", "Oat milk 1L", "mc-0708")
        big = T.read(root + "display.pbm")
        d.show("4919-28", "Oat milk 1L", "mc-0708")
        assert T.read(root + "display.pbm") != big
    finally:
        T.wipe(root)
