"""Authenticated configuration and taps under load, on the real firmware (sim.devices.VirtualDevice)
over the real virtual radio, driven through bleak: a gateway delivers a cloud-sealed config and the
display changes; several phones tap in quick succession; a flooding phone is rate-limited while a
gateway's READ on another connection completes."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from gateway.ble.factory import make_client
from protocol import command, devconfig, gatt, keys, record, rotation
from protocol.hmac256 import HmacKey
from sim.phone import Receipt
from sim.radio import RadioHub
from tests.firmware.test_firmware_radio import T0, Gateway, run, shown
from tests.vdev import WAIT, Dev, in_own_loop, tap, wait_advertising

pytestmark = pytest.mark.timeout(120)


def sealed(d: Dev, version: int, label: str, base: str = "7311", slot: int = 2) -> bytes:
    """The cloud's side: only it (and the device) holds the config key."""
    s = devconfig.Settings(version, base, slot, 5, 3, 3600, label, -4)
    return devconfig.seal(HmacKey(keys.config_key(d.key)), d.device_id, s)


def code_for(d: Dev, base: str, slot: int, t: int) -> str:
    rotor = rotation.Rotor(keys.rotation_key(d.key), slot, 5, 3)
    return str(rotation.format_code(base, rotor.value(rotation.window(t, 3600)), 3))


def test_gateway_delivers_a_sealed_config(hub: RadioHub, dev: Dev) -> None:
    spec = "bumble:" + hub.hci_spec

    async def main() -> None:
        await wait_advertising(spec, [dev.address])
        async with make_client(spec, dev.address, timeout=WAIT) as client:
            gw = await Gateway(client, dev).start()
            assert (await gw.send(gw.frame(command.OP_TIME, 1, struct.pack(">IH", T0, 0))))[1] == command.OK
            old_code = dev.vd.shown_code()
            await shown(dev, old_code or "")
            pbm0 = (dev.flash / "display.pbm").read_bytes()

            blob = sealed(dev, 1, "Rye bread")
            r = await gw.send(gw.frame(command.OP_CONFIG, 2, blob))
            assert r == (command.OP_CONFIG, command.OK, 2, 1)
            new_code = code_for(dev, "7311", 2, T0)
            assert new_code != old_code
            await shown(dev, new_code)
            assert (dev.flash / "devconfig.bin").read_bytes() == blob
            pbm1 = (dev.flash / "display.pbm").read_bytes()
            assert pbm1 != pbm0

            # Only the label changes: same code, a redraw.
            r = await gw.send(gw.frame(command.OP_CONFIG, 3, sealed(dev, 2, "Spelt")))
            assert r == (command.OP_CONFIG, command.OK, 3, 2)
            async with asyncio.timeout(WAIT):
                while (dev.flash / "display.pbm").read_bytes() == pbm1:
                    await asyncio.sleep(0.05)
            assert dev.vd.shown_code() == new_code

            # The gateway replays the old blob in a fresh frame; it forges one with its own key.
            r = await gw.send(gw.frame(command.OP_CONFIG, 4, blob))
            assert r == (command.OP_CONFIG, command.STALE_VERSION, 4, 2)
            s = devconfig.Settings(9, "1111", 0, 5, 3, 3600, "Forged", 0)
            forged = devconfig.seal(gw.key, dev.device_id, s)
            r = await gw.send(gw.frame(command.OP_CONFIG, 5, forged))
            assert r == (command.OP_CONFIG, command.BAD_CONFIG_TAG, 5, 2)
            bad = devconfig.seal(HmacKey(keys.config_key(dev.key)), dev.device_id,
                                 devconfig.Settings(9, "7311", 7, 5, 3, 3600, "x", 0), check=False)
            r = await gw.send(gw.frame(command.OP_CONFIG, 6, bad))
            assert r == (command.OP_CONFIG, command.BAD_VALUE, 6, 2)

            # A phone carrying a genuine cloud blob, without the gateway command key.
            async def phone() -> tuple[int, int, int, int]:
                async with make_client(spec, dev.address, timeout=WAIT) as p:
                    replies: asyncio.Queue[tuple[int, int, int, int]] = asyncio.Queue()
                    await p.start_notify(gatt.CONTROL, lambda _c, b: replies.put_nowait(
                        command.unpack_reply(bytes(b))))
                    nonce = gatt.unpack_info(bytes(await p.read_gatt_char(gatt.INFO)))[8]
                    f = command.build(HmacKey(os.urandom(32)), nonce, command.OP_CONFIG, os.urandom(8), 100,
                                      sealed(dev, 50, "Phone"))
                    await p.write_gatt_char(gatt.CONTROL, f, response=True)
                    return await asyncio.wait_for(replies.get(), WAIT)

            assert await asyncio.to_thread(in_own_loop, phone()) == (
                command.OP_CONFIG, command.BAD_TAG, 100, 0)
            assert dev.vd.shown_code() == new_code
            assert (dev.flash / "devconfig.bin").read_bytes() == sealed(dev, 2, "Spelt")

    run(main())


def test_phones_in_quick_succession_all_get_receipts(hub: RadioHub, dev: Dev) -> None:
    spec = "bumble:" + hub.hci_spec

    async def main() -> None:
        await wait_advertising(spec, [dev.address])
        # Six phones, each starting 250 ms after the last, so their sessions overlap. Not all at
        # once: bumble's virtual controller completes a second central's connect locally even
        # though the advertiser (already connected, advertising off) never saw it, and that
        # phone then waits 30 s on its first ATT request; on air the connect would just fail.
        async def phone(i: int) -> Receipt:
            await asyncio.sleep(0.25 * i)
            return await tap(spec, dev.address)

        receipts = await asyncio.gather(*(phone(i) for i in range(6)))
        assert all(record.verify(dev.rec_key, dev.device_id, r.raw) for r in receipts)
        assert sorted(r.seq for r in receipts) == list(range(2, 8))  # after BOOT, none lost
        assert {r.raw for r in receipts} <= set(dev.log_records())

    run(main())


def test_flooding_phone_is_rate_limited_while_a_gateway_reads(hub: RadioHub, dev: Dev) -> None:
    spec = "bumble:" + hub.hci_spec
    n = 40

    async def flood() -> list[bytes]:
        async with make_client(spec, dev.address, timeout=WAIT) as p:
            got: list[bytes] = []
            await p.start_notify(gatt.TAP, lambda _c, b: got.append(bytes(b)))
            for i in range(n):
                await p.write_gatt_char(gatt.TAP, gatt.pack_tap(struct.pack(">Q", i)), response=False)
            async with asyncio.timeout(WAIT):
                while len(got) < n:
                    await asyncio.sleep(0.05)
            return got

    async def main() -> None:
        await wait_advertising(spec, [dev.address])
        for _ in range(5):
            await tap(spec, dev.address)
        async with make_client(spec, dev.address, timeout=WAIT) as client:
            gw = await Gateway(client, dev).start()
            flooding = asyncio.create_task(asyncio.to_thread(in_own_loop, flood()))
            ctr = 0
            while not flooding.done():  # READ after READ while the flood goes on
                ctr += 1
                r = await gw.send(gw.frame(command.OP_READ, ctr, struct.pack(">I", 1)))
                assert r[:2] == (command.OP_READ, command.OK)
                assert [record.seq_of(x) for x in gw.records()] == list(range(1, r[3] + 1))
            got = await flooding
            ok = [g for g in got if len(g) == record.RECORD_LEN]
            refused = [g for g in got if len(g) != record.RECORD_LEN]
            assert bytes([gatt.RECEIPT_REFUSED, command.RATE_LIMITED]) in refused
            assert set(refused) <= {bytes([gatt.RECEIPT_REFUSED, command.RATE_LIMITED]),
                                    bytes([gatt.RECEIPT_REFUSED, command.BUSY])}
            assert all(record.verify(dev.rec_key, dev.device_id, g) for g in ok)
            # Every receipt is on the log, and only those: a refused tap never reached the flash.
            info = await gw.info()
            assert info[3] == 1 + 5 + len(ok)
            r = await gw.send(gw.frame(command.OP_READ, ctr + 1, struct.pack(">I", 1)))
            assert r == (command.OP_READ, command.OK, ctr + 1, info[3])
            assert set(ok) <= set(gw.records())
            # The flood is over and another phone's tap is served as usual.
            extra = await tap(spec, dev.address)
            assert extra.seq == info[3] + 1

    run(main())
