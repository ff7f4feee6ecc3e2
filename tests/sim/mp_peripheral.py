# A small MicroPython peripheral for the radio tests, using only the real
# `bluetooth` API (served by sim/micropython/bluetooth.py under the unix port).
#
# Service protocol.gatt.SERVICE (or MCODE_TEST_SERVICE) with:
#   INFO  read: 200 bytes 0..199
#   TAP   write + notify: each write is answered on the writer's connection with
#         "MTU?" -> b"mtu=<n>", "WHO?" -> addr_type byte + peer address,
#         "BURST <n>" -> n log notifications (count byte + 6 records of 40 bytes) then b"END",
#         anything else -> echoed back.
#   SMALL write, default 20-byte buffer: each write is answered on TAP with what the
#         device read back (so a longer write shows the real module's truncation).
# It advertises with protocol.gatt.advertising_payload and keeps advertising while
# connected, so several centrals (gateway, phone) can use it at once.
import asyncio
import os

import bluetooth
from micropython import const

from protocol import gatt

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

SERVICE = os.getenv("MCODE_TEST_SERVICE") or gatt.SERVICE
NAME = os.getenv("MCODE_TEST_NAME") or "mp-test"

ble = bluetooth.BLE()
ble.active(True)
ble.config(gap_name=NAME, mtu=gatt.WANT_MTU)
SMALL = "4d43ff01-2f8b-4c1e-9a57-6d636f646500"
((h_info, h_tap, h_small),) = ble.gatts_register_services((
    (bluetooth.UUID(SERVICE), (
        (bluetooth.UUID(gatt.INFO), bluetooth.FLAG_READ),
        (bluetooth.UUID(gatt.TAP), bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE
         | bluetooth.FLAG_NOTIFY),
        (bluetooth.UUID(SMALL), bluetooth.FLAG_WRITE),
    )),
))
ble.gatts_write(h_info, bytes(range(200)))
ble.gatts_set_buffer(h_tap, 256)

mtus = {}
peers = {}
work = []  # (conn, request) handled in the main loop, as firmware would


def adv_data():
    if SERVICE == gatt.SERVICE:
        return gatt.advertising_payload(NAME)
    svc = bytes(reversed(bytes.fromhex(SERVICE.replace("-", ""))))
    return b"\x02\x01\x06" + bytes([17, 0x07]) + svc + bytes([len(NAME) + 1, 0x09]) + NAME.encode()


def advertise():
    ble.gap_advertise(gatt.ADV_INTERVAL_US, adv_data())


def irq(event, data):
    if event == _IRQ_CENTRAL_CONNECT:
        conn, addr_type, addr = data
        peers[conn] = bytes([addr_type]) + bytes(addr)
        mtus[conn] = 23
        advertise()  # stay visible for other centrals
    elif event == _IRQ_CENTRAL_DISCONNECT:
        conn = data[0]
        peers.pop(conn, None)
        mtus.pop(conn, None)
        advertise()
    elif event == _IRQ_GATTS_WRITE:
        conn, handle = data
        if handle == h_tap:
            work.append((conn, ble.gatts_read(h_tap)))
        elif handle == h_small:
            work.append((conn, b"SMALL:" + ble.gatts_read(h_small)))
    elif event == _IRQ_MTU_EXCHANGED:
        mtus[data[0]] = data[1]


ble.irq(irq)


def burst(conn, n):
    cap = gatt.log_capacity(mtus[conn])
    frame = bytearray(1 + 40 * cap)
    frame[0] = cap
    for i in range(n):
        frame[1] = i & 0xFF
        ble.gatts_notify(conn, h_tap, frame)
    ble.gatts_notify(conn, h_tap, b"END")


async def main():
    advertise()
    print("READY")
    while True:
        while work:
            conn, req = work.pop(0)
            if conn not in peers:
                continue
            if req == b"MTU?":
                ble.gatts_notify(conn, h_tap, b"mtu=%d" % mtus[conn])
            elif req == b"WHO?":
                ble.gatts_notify(conn, h_tap, peers[conn])
            elif req.startswith(b"SMALL:"):
                ble.gatts_notify(conn, h_tap, req[6:])
            elif req.startswith(b"BURST "):
                burst(conn, int(req[6:]))
            else:
                ble.gatts_notify(conn, h_tap, req)
        await asyncio.sleep_ms(1)


asyncio.run(main())
