"""A small in-test display behind the part of bleak's BleakClient API a gateway Session uses.

Not the firmware: just enough of the device side of protocol/ (INFO, authenticated commands
with counters, LOG streaming in MTU-sized frames, ACK bounds) to exercise the gateway's session
logic until the virtual radio and firmware run end to end. Notifications are delivered from the
event loop after the write returns, as bleak does.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from protocol import command, gatt, keys, record
from protocol.hmac256 import HmacKey

DEVICE_KEY = bytes(range(32))


class FakeDevice:
    def __init__(self, device_id: bytes, gateway_id: bytes, n_records: int = 0, mtu: int = 247,
                 device_key: bytes = DEVICE_KEY) -> None:
        self.device_id = device_id
        self.device_key = device_key
        self.rec_key = HmacKey(keys.record_key(device_key))
        self.gw_key = HmacKey(keys.gateway_key(device_key, gateway_id))
        self.nonce = b"nonce-01"
        self.epoch = 1
        self.last_ctr = 5
        self.acked = 0
        self.log: list[bytes] = []
        self.mtu_size = mtu
        self.connected = False
        self.clock: tuple[int, int] | None = None
        self.ops: list[tuple[int, int]] = []  # (op, status) as replied
        self.on_ack: Callable[[int], None] | None = None  # called before an ACK is applied
        self.stream_hook: Callable[[list[bytes]], list[bytes]] | None = None  # rewrite what is streamed
        self.busy_after: int | None = None  # stop streaming after this many records, reply BUSY
        self.hang_connect = False
        self._notify: dict[str, Callable[[Any, bytearray], Any]] = {}
        for _ in range(n_records):
            self.tap()

    def tap(self) -> bytes:
        seq = len(self.log) + 1 if not self.log else record.seq_of(self.log[-1]) + 1
        r = record.make(self.rec_key, self.device_id, record.KIND_TAP, 0, self.epoch, seq, seq,
                        seq.to_bytes(8, "big"))
        self.log.append(r)
        return r

    @property
    def head(self) -> int:
        return record.seq_of(self.log[-1]) if self.log else 0

    # -- the BleakClient surface ----------------------------------------------------------

    async def connect(self, **kw: Any) -> None:
        if self.hang_connect:
            await asyncio.Event().wait()  # a device that vanished: the connect never completes
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False
        self._notify.clear()

    async def read_gatt_char(self, char: Any, **kw: Any) -> bytearray:
        assert char == gatt.INFO
        return bytearray(gatt.pack_info(self.device_id, self.epoch, self.head, self.acked, 0, 0,
                                        self.last_ctr, self.nonce, 1))

    async def start_notify(self, char: Any, callback: Callable[[Any, bytearray], Any], **kw: Any) -> None:
        self._notify[char] = callback

    async def stop_notify(self, char: Any) -> None:
        self._notify.pop(char, None)

    async def write_gatt_char(self, char: Any, data: Any, response: bool | None = None) -> None:
        assert char == gatt.CONTROL
        asyncio.get_running_loop().create_task(self._control(bytes(data)))

    # -- device side ----------------------------------------------------------------------

    def _send(self, char: str, data: bytes) -> None:
        cb = self._notify.get(char)
        if cb is not None:
            cb(char, bytearray(data))

    def _reply(self, op: int, status: int, ctr: int, value: int) -> None:
        self.ops.append((op, status))
        self._send(gatt.CONTROL, command.pack_reply(op, status, ctr, value))

    async def _control(self, frame: bytes) -> None:
        h = command.header(frame)
        assert h is not None
        op, gw, ctr = h
        if not command.authentic(self.gw_key, self.nonce, frame):
            return self._reply(op, command.BAD_TAG, ctr, 0)
        if ctr <= self.last_ctr:
            return self._reply(op, command.REPLAY, ctr, 0)
        self.last_ctr = ctr
        args = struct.unpack(command.PAYLOAD_FMT[op], command.payload(frame))
        if op == command.OP_TIME:
            self.clock = (args[0], args[1])
            return self._reply(op, command.OK, ctr, 0)
        if op == command.OP_ACK:
            if args[0] > self.head:
                return self._reply(op, command.BAD_ARG, ctr, self.acked)
            if self.on_ack is not None:
                self.on_ack(args[0])
            self.acked = max(self.acked, args[0])
            return self._reply(op, command.OK, ctr, self.acked)
        out = [r for r in self.log if record.seq_of(r) >= args[0]]
        if self.stream_hook is not None:
            out = self.stream_hook(out)
        status = command.OK
        if self.busy_after is not None and len(out) > self.busy_after:
            out, status = out[:self.busy_after], command.BUSY
        n = gatt.log_capacity(self.mtu_size)
        for i in range(0, len(out), n):
            chunk = out[i:i + n]
            self._send(gatt.LOG, bytes([len(chunk)]) + b"".join(chunk))
            await asyncio.sleep(0)
        self._reply(op, status, ctr, self.head)


class FakeBle:
    """A factory with gateway.ble.factory's shape, handing out FakeDevices as clients."""

    def __init__(self, devices: dict[str, FakeDevice]) -> None:
        self.devices = devices  # address -> device

    def make_client(self, spec: str, target: Any, **kw: Any) -> FakeDevice:
        return self.devices[target if isinstance(target, str) else target.address]


class FakeScanner:
    def __init__(self, devices: dict[str, FakeDevice]) -> None:
        from types import SimpleNamespace

        self.discovered_devices_and_advertisement_data = {
            addr: (SimpleNamespace(address=addr, name=f"mc-{d.device_id.hex()[-4:]}"),
                   SimpleNamespace(service_uuids=[gatt.SERVICE], local_name=f"mc-{d.device_id.hex()[-4:]}"))
            for addr, d in devices.items()}

    async def __aenter__(self) -> FakeScanner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _make_scanner(self: FakeBle, spec: str, **kw: Any) -> FakeScanner:
    return FakeScanner(self.devices)


FakeBle.make_scanner = _make_scanner  # type: ignore[attr-defined]
