"""One pull of one device's log over an already connected GATT client.

The client is anything with the part of bleak's `BleakClient` API used here (`GattClient`):
the collector hands in a real BleakClient; a test may hand in a fake device behind the same
methods. Steps, with a timeout on each:

1. read INFO (protocol.gatt.unpack_info); INFO's device_id is authoritative and must be in the
   allowlist; the command counter starts at INFO's last_ctr + 1 and rises by one per command;
2. subscribe CONTROL (replies) and LOG (record frames `bytes([n]) + n * 40`);
3. OP_TIME with the gateway's clock; the reply says how far off the device's clock was;
4. OP_READ from max(spool cursor, device acked_seq) + 1; LOG frames arrive until the READ reply;
   each record must parse and its seq must rise strictly from the requested start;
5. spool the records (one durable transaction) and only **then**
6. OP_ACK the highest seq durably spooled for the device (never above the device's head);
7. OP_CONFIG with a cloud-sealed config write, if one is pending for the device (deliver_config).

The gateway cannot check record MACs (it has no device key); the cloud does.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.config import BleConfig, Device
from gateway.spool import Spool
from protocol import command, devconfig, gatt
from protocol import record as precord
from protocol.hmac256 import HmacKey

log = logging.getLogger(__name__)

Notify = Callable[[Any, bytearray], None | Awaitable[None]]


class GattClient(Protocol):
    """The subset of bleak.BleakClient a session uses."""

    @property
    def mtu_size(self) -> int: ...

    async def read_gatt_char(self, char_specifier: Any, **kwargs: Any) -> bytearray: ...

    async def write_gatt_char(self, char_specifier: Any, data: Any, response: bool | None = None) -> None: ...

    async def start_notify(self, char_specifier: Any, callback: Notify, **kwargs: Any) -> None: ...

    async def stop_notify(self, char_specifier: Any) -> None: ...


class ConfigWrites(Protocol):
    """Where sessions get device configuration writes and report replies (gateway.remote_config)."""

    def pending(self, device_id: bytes) -> bytes | None: ...

    def record(self, device_id: bytes, blob: bytes, status: int, device_version: int) -> Any: ...

    def record_failure(self, device_id: bytes, blob: bytes, reason: str) -> Any: ...


class SessionError(Exception):
    """A pull that failed; `reason` is short and stable (for status and back-off)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Info:
    proto: int
    device_id: bytes
    epoch: int
    head_seq: int
    acked_seq: int
    dropped: int
    status: int
    last_ctr: int
    nonce: bytes
    fw: int

    @classmethod
    def parse(cls, b: bytes) -> Info:
        if len(b) < gatt.INFO_LEN:
            raise SessionError("bad_info", f"INFO is {len(b)} bytes")
        return cls(*gatt.unpack_info(b))


@dataclass
class PullResult:
    device_id: bytes
    info: Info
    read_from: int = 0
    received: int = 0  # records streamed by the device
    spooled: int = 0  # of which new to the spool
    head_seq: int = 0  # from the READ reply
    acked: int | None = None  # the device's acked seq after our ACK
    time_set: bool = False
    clock_offset_ms: int | None = None  # device clock minus ours when TIME arrived; None: it was unset
    gaps: list[tuple[int, int, int]] = field(default_factory=list)  # spooled (epoch, seq before, seq after)
    notes: list[str] = field(default_factory=list)
    config_write: tuple[int, int, int] | None = None  # (write version, reply status, device's version)

    @property
    def backlog(self) -> int:
        """Records on the device not yet acked by a gateway."""
        acked = self.acked if self.acked is not None else self.info.acked_seq
        return max(0, max(self.head_seq, self.info.head_seq) - acked)


# OP_TIME reply value (docs/protocol.md): the device's clock minus the time set, in ms, as a
# two's-complement i32 clamped to +-(2**31 - 1); this value says the clock was unset.
TIME_UNSET = 0x80000000


def time_offset_ms(value: int) -> int | None:
    """The OP_TIME reply value as a signed offset in ms; None when the device's clock was unset."""
    if value == TIME_UNSET:
        return None
    return value - (1 << 32) if value & 0x80000000 else value


def parse_log_frame(frame: bytes) -> list[bytes]:
    """`bytes([n]) + n * 40` -> n records; SessionError on a frame of the wrong size."""
    if not frame:
        raise SessionError("bad_log_frame", "empty")
    n = frame[0]
    if len(frame) != 1 + n * precord.RECORD_LEN:
        raise SessionError("bad_log_frame", f"count {n} but {len(frame)} bytes")
    return [bytes(frame[1 + i * precord.RECORD_LEN:1 + (i + 1) * precord.RECORD_LEN]) for i in range(n)]


class Session:
    def __init__(self, client: GattClient, allow: Mapping[bytes, Device], gateway_id: bytes,
                 spool: Spool, cfg: BleConfig, clock: Callable[[], float] = time.time,
                 config_writes: ConfigWrites | None = None) -> None:
        self.client = client
        self.config_writes = config_writes
        self.allow = allow
        self.gateway_id = gateway_id
        self.spool = spool
        self.cfg = cfg
        self.clock = clock
        self._replies: asyncio.Queue[tuple[int, int, int, int]] = asyncio.Queue()
        self._records: list[bytes] = []
        self._log_error: SessionError | None = None
        self._last_log = 0.0
        self._expect_after = 0  # every streamed seq must exceed this, rising strictly
        self._gaps: list[tuple[int, int, int]] = []  # seq jumps in the stream, not yet spooled
        self.result: PullResult | None = None  # as far as the pull got (read even if it failed)
        self._ctr = 0
        self._key: HmacKey | None = None
        self._nonce = b""

    async def _op(self, aw: Awaitable[Any], what: str) -> Any:
        try:
            return await asyncio.wait_for(aw, self.cfg.op_timeout_s)
        except TimeoutError:
            raise SessionError("timeout", what) from None

    # -- notifications ----------------------------------------------------------------------

    def _on_control(self, _sender: Any, data: bytearray) -> None:
        if len(data) < command.REPLY_LEN:
            log.warning("short CONTROL reply %s", bytes(data).hex())
            return
        self._replies.put_nowait(command.unpack_reply(bytes(data)))

    def _on_log(self, _sender: Any, data: bytearray) -> None:
        self._last_log = time.monotonic()
        if self._log_error is not None:
            return
        try:
            for r in parse_log_frame(bytes(data)):
                f = precord.unpack(r)  # version and size
                seq = f[4]
                if seq <= self._expect_after:
                    raise SessionError("seq_order", f"seq {seq} after {self._expect_after}")
                if seq > self._expect_after + 1:
                    self._gaps.append((f[3], self._expect_after, seq))
                self._expect_after = seq
                self._records.append(r)
        except SessionError as e:
            self._log_error = e
        except ValueError as e:
            self._log_error = SessionError("bad_record", str(e))

    # -- commands ---------------------------------------------------------------------------

    async def _command(self, op: int, payload: bytes, streaming: bool = False) -> tuple[int, int]:
        """Send one authenticated command; returns (status, value) of its reply."""
        assert self._key is not None
        ctr = self._ctr
        self._ctr += 1
        frame = command.build(self._key, self._nonce, op, self.gateway_id, ctr, payload)
        await self._op(self.client.write_gatt_char(gatt.CONTROL, frame, response=True),
                       f"write op {op}")
        while True:
            try:
                rop, status, rctr, value = await asyncio.wait_for(self._replies.get(),
                                                                  self.cfg.op_timeout_s)
            except TimeoutError:
                # A long READ keeps streaming: wait as long as LOG frames keep coming.
                if streaming and time.monotonic() - self._last_log < self.cfg.op_timeout_s:
                    continue
                raise SessionError("timeout", f"reply to op {op}") from None
            if rop == op and rctr == ctr:
                return status, value
            log.debug("stray CONTROL reply op=%d ctr=%d (want op=%d ctr=%d)", rop, rctr, op, ctr)

    def _check(self, op: str, status: int) -> None:
        if status != command.OK:
            raise SessionError(command.STATUS_NAMES.get(status, f"status_{status}"), op)

    # -- the pull ---------------------------------------------------------------------------

    async def run(self) -> PullResult:
        info = Info.parse(bytes(await self._op(self.client.read_gatt_char(gatt.INFO), "read INFO")))
        if info.proto != gatt.PROTO_VERSION:
            raise SessionError("proto", f"device speaks v{info.proto}")
        dev = self.allow.get(info.device_id)
        if dev is None:
            raise SessionError("not_allowed", info.device_id.hex())
        res = self.result = PullResult(info.device_id, info, head_seq=info.head_seq)
        self._key = HmacKey(dev.key)
        self._nonce = info.nonce
        self._ctr = info.last_ctr + 1
        mtu = self.client.mtu_size
        if mtu < gatt.MIN_MTU:
            raise SessionError("mtu", f"{mtu} < {gatt.MIN_MTU}")
        await self._op(self.client.start_notify(gatt.CONTROL, self._on_control), "subscribe CONTROL")
        await self._op(self.client.start_notify(gatt.LOG, self._on_log), "subscribe LOG")

        now = self.clock()
        secs = int(now)
        status, value = await self._command(command.OP_TIME,
                                        struct.pack(">IH", secs, min(999, int((now - secs) * 1000))))
        if status == command.OK:
            res.time_set = True
            res.clock_offset_ms = time_offset_ms(value)
        elif status in (command.BAD_TAG, command.REPLAY):
            self._check("time", status)  # the key or counter is wrong: nothing else will work
        else:
            res.notes.append(f"time: {command.STATUS_NAMES.get(status, status)}")

        cursor = await asyncio.to_thread(self.spool.cursor, info.device_id)
        if cursor is not None and cursor > info.head_seq:
            # seqs never go back on a healthy device: its log or state was wiped or reflashed.
            # Reading would spool nothing (the spool ignores seqs at or below its cursor) and an
            # ACK would release records never stored: stop, loudly, for an operator to look at.
            log.error("DEVICE %s LOG REGRESSED: head %d below our cursor %d; not reading or acking",
                      info.device_id.hex(), info.head_seq, cursor)
            raise SessionError("log_regressed", f"head {info.head_seq} < cursor {cursor}")
        start = max(cursor or 0, info.acked_seq) + 1
        res.read_from = start
        # At its size limit the spool takes nothing more: the records stay on the device (its
        # log is bounded and counts drops) until the cloud confirms batches. Acking goes on.
        full = start <= info.head_seq and await asyncio.to_thread(self.spool.full)
        if full:
            res.notes.append("spool full: not read")
        if start <= info.head_seq and not full:
            self._expect_after = start - 1
            self._last_log = time.monotonic()
            status, head = await self._command(command.OP_READ, struct.pack(">I", start), streaming=True)
            records, self._records = self._records, []
            res.received = len(records)
            # Spool what arrived intact even if the stream then failed: it is a valid prefix.
            if records:
                res.spooled = await asyncio.to_thread(self.spool.add_records, info.device_id, records)
                res.gaps, self._gaps = self._gaps, []
            if self._log_error is not None:
                raise self._log_error
            self._check("read", status)
            res.head_seq = head

        stored = await asyncio.to_thread(self.spool.cursor, info.device_id)
        if stored is not None:
            through = min(stored, res.head_seq)
            if through > info.acked_seq:
                status, acked = await self._command(command.OP_ACK, struct.pack(">I", through))
                self._check("ack", status)
                res.acked = acked
        await self.deliver_config(res)
        return res

    async def deliver_config(self, res: PullResult) -> None:
        """Send the device its pending config write, after its records are safe. INFO does not
        carry the config version, so a write goes until the device settles it (ok, or refused
        for good); the reply's value is its version. A failure here never fails the pull."""
        if self.config_writes is None:
            return
        blob = await asyncio.to_thread(self.config_writes.pending, res.device_id)
        if blob is None:
            return
        try:
            status, version = await self._command(command.OP_CONFIG, blob)
        except Exception as e:  # a timeout or a dropped link: the write stays pending
            res.notes.append(f"config: {e!r}"[:200])
            await asyncio.to_thread(self.config_writes.record_failure, res.device_id, blob,
                                    getattr(e, "reason", type(e).__name__))
            return
        res.config_write = (devconfig.version_of(blob), status, version)
        await asyncio.to_thread(self.config_writes.record, res.device_id, blob, status, version)
