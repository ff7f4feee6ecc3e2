"""A "phone": a second bleak central in its own process, through gateway.ble.factory.

Usage: python tests/sim/phone.py SPEC ADDRESS  — scans for ADDRESS by the mcode service,
connects, writes b"PHONE" to TAP and waits for the echo; prints OK and exits 0.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.ble.factory import ble_session, make_client, make_scanner
from protocol import gatt


async def main(spec: str, address: str) -> None:
    async with ble_session():
        found = asyncio.Event()

        def seen(device: object, adv: object) -> None:
            if getattr(device, "address", None) == address:
                found.set()

        async with make_scanner(spec, detection_callback=seen, service_uuids=[gatt.SERVICE]):
            await asyncio.wait_for(found.wait(), 20)
        async with make_client(spec, address, timeout=10) as client:
            got: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(gatt.TAP, lambda _c, d: got.put_nowait(bytes(d)))
            await client.write_gatt_char(gatt.TAP, b"PHONE", response=True)
            reply = await asyncio.wait_for(got.get(), 10)
            assert reply == b"PHONE", reply
            assert client.mtu_size == gatt.WANT_MTU
    print("OK", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
