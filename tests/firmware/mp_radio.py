# radio.BleRadio + main.serve under MicroPython, against a test double of the
# `bluetooth` module (tests/firmware/fakeble): IRQs in, notifications out.
import asyncio
import struct

import bluetooth
import config
import main
from device import Device
from display_host import HostDisplay
from protocol import command, gatt, record
from radio import BleRadio
from tests.firmware import fwtest as T

T0 = 1767225600 + 7


def _setup():
    ble = bluetooth.BLE()
    ble.reset()
    root = T.flashdir()
    radio = BleRadio("mc-0708")
    dev = Device(config.load(root), root, radio, HostDisplay(root))
    return ble, root, radio, dev


async def _settle():
    for _ in range(5):
        await asyncio.sleep_ms(1)


def test_advertising_info_and_connections():
    ble, root, radio, dev = _setup()
    try:
        assert ble.is_active and ble.cfg.get("mtu") == gatt.WANT_MTU
        assert ble.adverts == [(gatt.ADV_INTERVAL_US, gatt.advertising_payload("mc-0708"))]
        assert ble.read(gatt.INFO) == dev.info() and len(dev.info()) == gatt.INFO_LEN

        async def go():
            task = asyncio.create_task(main.serve(dev, radio))
            ble.connect(1)  # phone: still one slot free, so keep advertising
            assert len(ble.adverts) == 2
            ble.connect(2)  # gateway: full
            assert len(ble.adverts) == 2
            ble.exchange_mtu(2, 185)
            await _settle()
            assert dev._conns[2][0] == 185 and dev._conns[1][0] == 23
            ble.disconnect(1)
            assert len(ble.adverts) == 3
            await _settle()
            assert 1 not in dev._conns
            task.cancel()

        asyncio.run(go())
        dev.log.close()
    finally:
        T.wipe(root)


def test_tap_and_gateway_session_over_the_glue():
    ble, root, radio, dev = _setup()
    try:
        async def go():
            task = asyncio.create_task(main.serve(dev, radio))
            ble.connect(1)
            ble.connect(2)
            ble.exchange_mtu(2, gatt.WANT_MTU)
            ble.write(1, gatt.TAP, gatt.pack_tap(b"PHONE001"))
            await _settle()
            (conn, rec), = ble.take(gatt.TAP)
            assert conn == 1 and record.verify(T.REC_KEY, T.DEVICE_ID, rec)
            assert record.unpack(rec)[6] == b"PHONE001"
            assert rec in T.read(root + "log.bin")
            nonce = gatt.unpack_info(ble.read(gatt.INFO))[8]
            # 36 bytes: longer than the stack's default 20-byte attribute buffer.
            ble.write(2, gatt.CONTROL, T.frame(nonce, command.OP_TIME, 1, struct.pack(">IH", T0, 0)))
            await _settle()
            assert ble.take(gatt.CONTROL) == [(2, command.pack_reply(command.OP_TIME, command.OK, 1, 0))]
            ble.enomem = 2  # the stack is briefly out of buffers
            ble.write(2, gatt.CONTROL, T.frame(nonce, command.OP_READ, 2, struct.pack(">I", 0)))
            for _ in range(500):  # until the READ reply arrives (retries sleep a little)
                await asyncio.sleep_ms(1)
                if [n for n in ble.notified if n[1] == gatt.CONTROL]:
                    break
            frames = ble.take(gatt.LOG)
            recs = []
            for c, f in frames:
                assert c == 2
                recs.extend(f[1 + i * 40:41 + i * 40] for i in range(f[0]))
            assert [record.seq_of(r) for r in recs] == [1, 2, 3]  # BOOT, tap, CLOCK_SET
            assert ble.take(gatt.CONTROL) == [(2, command.pack_reply(command.OP_READ, command.OK, 2, 3))]
            ble.write(2, gatt.CONTROL, T.frame(nonce, command.OP_ACK, 3, struct.pack(">I", 3)))
            await _settle()
            assert ble.take(gatt.CONTROL) == [(2, command.pack_reply(command.OP_ACK, command.OK, 3, 3))]
            info = gatt.unpack_info(ble.read(gatt.INFO))
            assert info[3:8] == (3, 3, 0, gatt.STATUS_CLOCK_SET, 3)
            task.cancel()

        asyncio.run(go())
        dev.log.close()
    finally:
        T.wipe(root)


def test_full_queue_refuses_at_once():
    ble, root, radio, dev = _setup()
    try:
        async def go():
            task = asyncio.create_task(main.serve(dev, radio))
            ble.connect(1)
            await _settle()
            for i in range(10):  # a burst before the loop runs: the ring holds 7
                ble.write(1, gatt.TAP, gatt.pack_tap(bytes([i]) * 8))
            busy = ble.take(gatt.TAP)
            assert busy == [(1, bytes([gatt.RECEIPT_REFUSED, command.BUSY]))] * 3
            await _settle()
            got = ble.take(gatt.TAP)
            assert [record.unpack(r)[6][0] for c, r in got] == list(range(7))
            task.cancel()

        asyncio.run(go())
        dev.log.close()
    finally:
        T.wipe(root)


def test_main_run_boots_with_ble():
    ble = bluetooth.BLE()
    ble.reset()
    root = T.flashdir()
    try:
        dev = asyncio.run(main.run(root, seconds=0.05))
        assert ble.read(gatt.INFO) == dev.info()
        assert ble.adverts and T.read(root + "display.txt") == b"\n"
    finally:
        T.wipe(root)
