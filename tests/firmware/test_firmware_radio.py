"""The real firmware (firmware/main.py in MicroPython, sim.devices.VirtualDevice) on a real
radio hub, driven through bleak (gateway.ble.factory) and sim.phone: advertising, INFO, taps,
gateway commands, two centrals at once. No stand-in for BLE anywhere."""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import pytest
from bleak import BleakClient

from gateway.ble.factory import make_client
from protocol import command, gatt, keys, record, rotation
from protocol.hmac256 import HmacKey
from sim.radio import RadioHub
from tests.ble import run
from tests.vdev import WAIT, Dev, in_own_loop, tap, wait_advertising

pytestmark = pytest.mark.timeout(90)

GW = bytes.fromhex("a1a2a3a4a5a6a7a8")
PERIOD = 3600
T0 = 1767225600 + 7  # early in a window, so the code cannot roll over during the test


class Gateway:
    """A gateway's side of CONTROL and LOG, on one bleak client."""

    def __init__(self, client: BleakClient, d: Dev) -> None:
        self.client = client
        self.key = HmacKey(keys.gateway_key(d.key, GW))
        self.replies: asyncio.Queue[tuple[int, int, int, int]] = asyncio.Queue()
        self.frames: list[bytes] = []
        self.nonce = b""

    async def start(self) -> Gateway:
        self.nonce = (await self.info())[8]
        await self.client.start_notify(gatt.CONTROL, lambda _c, b: self.replies.put_nowait(
            command.unpack_reply(bytes(b))))
        await self.client.start_notify(gatt.LOG, lambda _c, b: self.frames.append(bytes(b)))
        return self

    async def info(self) -> tuple[Any, ...]:
        return gatt.unpack_info(bytes(await self.client.read_gatt_char(gatt.INFO)))

    def frame(self, op: int, ctr: int, payload: bytes) -> bytes:
        return command.build(self.key, self.nonce, op, GW, ctr, payload)

    async def send(self, frame: bytes) -> tuple[int, int, int, int]:
        await self.client.write_gatt_char(gatt.CONTROL, frame, response=True)
        return await asyncio.wait_for(self.replies.get(), WAIT)

    def records(self) -> list[bytes]:
        out = []
        for f in self.frames:
            out += [f[1 + i * record.RECORD_LEN:1 + (i + 1) * record.RECORD_LEN] for i in range(f[0])]
        self.frames = []
        return out


def expected_code(d: Dev, t: int) -> str:
    cfg = d.vd.config
    rotor = rotation.Rotor(keys.rotation_key(d.key), cfg["slot"], cfg["slots"], cfg["digits"])
    value = rotor.value(rotation.window(t, cfg["period"]))
    return str(rotation.format_code(cfg["base"], value, cfg["digits"]))


async def shown(d: Dev, code: str) -> None:
    async with asyncio.timeout(WAIT):
        while d.vd.shown_code() != code:
            await asyncio.sleep(0.05)


def test_advertising_info_and_a_phone_tap(hub: RadioHub, dev: Dev) -> None:
    spec = "bumble:" + hub.hci_spec

    async def main() -> None:
        seen = await wait_advertising(spec, [dev.address])
        _, adv = seen[dev.address]
        assert adv.local_name == "mc-" + dev.device_id.hex()[-4:]
        assert gatt.SERVICE in adv.service_uuids

        async with make_client(spec, dev.address, timeout=WAIT) as client:
            info = gatt.unpack_info(bytes(await client.read_gatt_char(gatt.INFO)))
        proto, did, epoch, head, acked, dropped, status, last_ctr, nonce, fw = info
        assert (proto, did, epoch, head, acked, dropped, status, last_ctr, fw) == (
            gatt.PROTO_VERSION, dev.device_id, 1, 1, 0, 0, 0, 0, 1)  # head 1: the BOOT record
        assert len(nonce) == 8

        receipt = await tap(spec, dev.address)
        assert record.verify(dev.rec_key, dev.device_id, receipt.raw)
        assert receipt.seq == 2 and receipt.epoch == 1
        assert receipt.raw in dev.log_records()

        async with make_client(spec, dev.address, timeout=WAIT) as client:
            info = gatt.unpack_info(bytes(await client.read_gatt_char(gatt.INFO)))
        assert info[3] == 2 and info[8] == nonce  # INFO follows the log; same boot, same nonce

    run(main())


def test_gateway_commands(hub: RadioHub, dev: Dev) -> None:
    spec = "bumble:" + hub.hci_spec

    async def main() -> None:
        await wait_advertising(spec, [dev.address])
        for _ in range(7):
            await tap(spec, dev.address)
        async with make_client(spec, dev.address, timeout=WAIT) as client:
            gw = await Gateway(client, dev).start()
            assert dev.vd.shown_code() is None  # not synced yet

            # TIME: the display shows the rotating code of that window.
            r = await gw.send(gw.frame(command.OP_TIME, 1, struct.pack(">IH", T0, 0)))
            assert r == (command.OP_TIME, command.OK, 1, 0x80000000)  # value: the clock was unset
            await shown(dev, expected_code(dev, T0))
            head = (await gw.info())[3]
            assert head == 1 + 7 + 1  # BOOT, the taps, CLOCK_SET

            # READ: every record, in order, in frames as full as the MTU allows.
            r = await gw.send(gw.frame(command.OP_READ, 2, struct.pack(">I", 1)))
            assert r == (command.OP_READ, command.OK, 2, head)
            counts = [f[0] for f in gw.frames]
            got = gw.records()
            assert got == dev.log_records()
            assert [record.seq_of(x) for x in got] == list(range(1, head + 1))
            assert all(record.verify(dev.rec_key, dev.device_id, x) for x in got)
            assert counts[0] == gatt.log_capacity(client.mtu_size) > 1  # the MTU reached the device

            # READ from the middle.
            r = await gw.send(gw.frame(command.OP_READ, 3, struct.pack(">I", 5)))
            assert r == (command.OP_READ, command.OK, 3, head)
            assert [record.seq_of(x) for x in gw.records()] == list(range(5, head + 1))

            # ACK.
            ack = gw.frame(command.OP_ACK, 4, struct.pack(">I", head - 2))
            assert await gw.send(ack) == (command.OP_ACK, command.OK, 4, head - 2)
            info = await gw.info()
            assert (info[4], info[7]) == (head - 2, 4)
            assert dev.flash_acked() == head - 2

            # The same frame again: a replay.
            assert await gw.send(ack) == (command.OP_ACK, command.REPLAY, 4, 0)
            # A fresh counter but a forged tag.
            forged = bytearray(gw.frame(command.OP_ACK, 5, struct.pack(">I", head)))
            forged[-1] ^= 1
            assert await gw.send(bytes(forged)) == (command.OP_ACK, command.BAD_TAG, 5, 0)
            # Acking past the head.
            r = await gw.send(gw.frame(command.OP_ACK, 6, struct.pack(">I", head + 1)))
            assert r == (command.OP_ACK, command.BAD_ARG, 6, head - 2)
            info = await gw.info()
            assert (info[4], info[7]) == (head - 2, 6)

            # A phone (another central, connected alongside the gateway) without the gateway key.
            async def phone_acks() -> list[tuple[int, int, int, int]]:
                async with make_client(spec, dev.address, timeout=WAIT) as phone:
                    replies: asyncio.Queue[tuple[int, int, int, int]] = asyncio.Queue()
                    await phone.start_notify(gatt.CONTROL, lambda _c, b: replies.put_nowait(
                        command.unpack_reply(bytes(b))))
                    nonce = gatt.unpack_info(bytes(await phone.read_gatt_char(gatt.INFO)))[8]
                    out = []
                    for guess in (HmacKey(os.urandom(32)), HmacKey(keys.gateway_key(os.urandom(32), GW)),
                                  HmacKey(keys.record_key(dev.key))):
                        f = command.build(guess, nonce, command.OP_ACK, GW, 100, struct.pack(">I", head))
                        await phone.write_gatt_char(gatt.CONTROL, f, response=True)
                        out.append(await asyncio.wait_for(replies.get(), WAIT))
                    return out

            got_phone = await asyncio.to_thread(in_own_loop, phone_acks())
            assert got_phone == [(command.OP_ACK, command.BAD_TAG, 100, 0)] * 3
            info = await gw.info()
            assert (info[4], info[7]) == (head - 2, 6)
            assert dev.flash_acked() == head - 2
            assert gw.replies.empty()  # replies go only to the central that wrote

    run(main())


def test_tap_while_a_gateway_is_connected(hub: RadioHub, dev: Dev) -> None:
    spec = "bumble:" + hub.hci_spec

    async def main() -> None:
        await wait_advertising(spec, [dev.address])
        async with make_client(spec, dev.address, timeout=WAIT) as client:
            gw = await Gateway(client, dev).start()
            assert (await gw.send(gw.frame(command.OP_TIME, 1, struct.pack(">IH", T0, 0))))[1] == command.OK
            # Taps from a second central while the gateway holds its connection; the firmware
            # keeps advertising because it has a free connection slot.
            receipts = [await tap(spec, dev.address) for _ in range(3)]
            for rc in receipts:
                assert record.verify(dev.rec_key, dev.device_id, rc.raw)
                assert record.unpack(rc.raw)[2] & record.FLAG_CLOCK_SET  # stamped with the set clock
            assert [rc.seq for rc in receipts] == [3, 4, 5]  # after BOOT and CLOCK_SET
            # A phone tapping during a READ stream: both get served.
            read = asyncio.create_task(gw.send(gw.frame(command.OP_READ, 2, struct.pack(">I", 1))))
            extra = await tap(spec, dev.address)
            r = await read
            assert r[:3] == (command.OP_READ, command.OK, 2)
            got = gw.records()
            assert [record.seq_of(x) for x in got] == list(range(1, r[3] + 1))
            assert {rc.raw for rc in receipts} <= set(got)
            assert extra.raw in dev.log_records()
            assert (await gw.info())[3] == extra.seq

    run(main())
