"""A shopper's phone: taps a display over the (virtual) radio through bleak's public API."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from bleak import BleakClient

from gateway.ble.factory import discover, make_client
from protocol import gatt, record


class TapRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class Receipt:
    """The device's signed record of this tap: proof the phone was there (verifiable by the cloud)."""

    raw: bytes
    epoch: int
    seq: int
    nonce: bytes


class Phone:
    def __init__(self, ble_spec: str | None) -> None:
        self.ble_spec = ble_spec

    async def find_displays(self, timeout: float = 2.0) -> dict[str, str]:
        """name (mc-XXXX) -> address of every display in range."""
        found = await discover(self.ble_spec, timeout, service_uuids=[gatt.SERVICE])
        return {adv.local_name or dev.name or "": dev.address for dev, adv in found.values()}

    async def tap(self, address: str, timeout: float = 10.0) -> Receipt:
        nonce = os.urandom(8)
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def on_receipt(_: object, data: bytearray) -> None:
            if not got.done():
                got.set_result(bytes(data))

        client: BleakClient = make_client(self.ble_spec, address, timeout=timeout)
        async with client:
            await client.start_notify(gatt.TAP, on_receipt)
            await client.write_gatt_char(gatt.TAP, gatt.pack_tap(nonce), response=True)
            raw = await asyncio.wait_for(got, timeout)
        if len(raw) != record.RECORD_LEN:
            raise TapRefused(f"display refused the tap: {raw.hex()}")
        _, kind, _, epoch, seq, _, data = record.unpack(raw)
        if kind != record.KIND_TAP or data != nonce:
            raise TapRefused("receipt is not for this tap")
        return Receipt(raw, epoch, seq, nonce)
