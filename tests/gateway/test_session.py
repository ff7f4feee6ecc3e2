"""The collector's device protocol (gateway.session) against an in-test fake display.

The end-to-end pull over the virtual bumble radio with the real firmware is the lead's
integration test; this checks command building, LOG parsing, the cursor and ack-after-commit.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.collector import Candidate, Collector
from gateway.config import BleConfig, Device, GatewayConfig
from gateway.session import Session, SessionError, parse_log_frame
from gateway.spool import Spool
from protocol import command, keys, record
from tests.gateway.fake_device import DEVICE_KEY, FakeBle, FakeDevice
from tests.gateway.helpers import DEV_A, DEV_B, GW_ID

BLE = BleConfig(op_timeout_s=2.0, connect_timeout_s=0.3, session_timeout_s=10.0)
ALLOW = {DEV_A: Device(DEV_A, keys.gateway_key(DEVICE_KEY, GW_ID))}


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "s.db", GW_ID, Ed25519PrivateKey.generate())


def _pull(dev: FakeDevice, spool: Spool, allow: dict[bytes, Device] = ALLOW):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        return await Session(dev, allow, GW_ID, spool, BLE).run()
    return asyncio.run(go())


def test_pull_spools_then_acks(spool: Spool, tmp_path: Path) -> None:
    dev = FakeDevice(DEV_A, GW_ID, n_records=23, mtu=100)  # 2 records per LOG frame
    seen_at_ack: list[int | None] = []

    def check_committed(through: int) -> None:
        # A second connection sees only committed data: the records are durably spooled before the ACK.
        with Spool(tmp_path / "s.db") as other:
            seen_at_ack.append(other.cursor(DEV_A))

    dev.on_ack = check_committed
    res = _pull(dev, spool)
    assert (res.read_from, res.received, res.spooled, res.head_seq, res.acked) == (1, 23, 23, 23, 23)
    assert seen_at_ack == [23]
    assert dev.acked == 23 and res.time_set and dev.clock is not None
    assert abs(dev.clock[0] - time.time()) < 60
    assert [r["raw"] for r in spool.iter_records()] == [r.hex() for r in dev.log]
    assert dev.last_ctr == 5 + 3  # TIME, READ, ACK: one counter each from INFO's last_ctr + 1
    assert [op for op, _ in dev.ops] == [command.OP_TIME, command.OP_READ, command.OP_ACK]

    # Nothing new: no READ, no ACK.
    dev.ops.clear()
    res = _pull(dev, spool)
    assert res.received == 0 and res.acked is None and [op for op, _ in dev.ops] == [command.OP_TIME]

    # New taps: read from the cursor.
    for _ in range(4):
        dev.tap()
    res = _pull(dev, spool)
    assert (res.read_from, res.received, res.acked) == (24, 4, 27)
    assert spool.counts().records == 27


def test_lost_ack_is_resent_without_rereading(spool: Spool) -> None:
    dev = FakeDevice(DEV_A, GW_ID, n_records=10)
    spool.add_records(DEV_A, dev.log)  # spooled by an earlier pull whose ACK never arrived
    res = _pull(dev, spool)
    assert res.read_from == 11 and res.received == 0 and res.acked == 10 and dev.acked == 10


def test_read_starts_after_device_acked(spool: Spool) -> None:
    dev = FakeDevice(DEV_A, GW_ID, n_records=10)
    dev.acked = 6  # another gateway stored up to 6
    res = _pull(dev, spool)
    assert res.read_from == 7 and res.received == 4 and dev.acked == 10


def test_wrong_key_fails_and_spools_nothing(spool: Spool) -> None:
    dev = FakeDevice(DEV_A, GW_ID, n_records=5, device_key=b"x" * 32)
    with pytest.raises(SessionError) as e:
        _pull(dev, spool)
    assert e.value.reason == "bad_tag" and spool.counts().records == 0 and dev.acked == 0


def test_not_allowlisted(spool: Spool) -> None:
    with pytest.raises(SessionError) as e:
        _pull(FakeDevice(DEV_B, GW_ID, n_records=3), spool)
    assert e.value.reason == "not_allowed"


def test_out_of_order_stream_keeps_prefix_and_does_not_ack(spool: Spool) -> None:
    dev = FakeDevice(DEV_A, GW_ID, n_records=10)
    dev.stream_hook = lambda rs: rs[:5] + [rs[2]] + rs[5:]
    with pytest.raises(SessionError) as e:
        _pull(dev, spool)
    assert e.value.reason == "seq_order"
    assert spool.cursor(DEV_A) == 5 and dev.acked == 0


def test_busy_mid_stream_resumes_from_cursor(spool: Spool) -> None:
    dev = FakeDevice(DEV_A, GW_ID, n_records=20)
    dev.busy_after = 8
    with pytest.raises(SessionError) as e:
        _pull(dev, spool)
    assert e.value.reason == "busy" and spool.cursor(DEV_A) == 8 and dev.acked == 0
    dev.busy_after = None
    res = _pull(dev, spool)
    assert res.read_from == 9 and res.received == 12 and dev.acked == 20
    assert spool.counts().records == 20


def test_regressed_log_is_neither_read_nor_acked(spool: Spool) -> None:
    spool.add_records(DEV_A, FakeDevice(DEV_A, GW_ID, n_records=50).log)
    dev = FakeDevice(DEV_A, GW_ID, n_records=5)  # wiped and restarted at seq 1
    with pytest.raises(SessionError) as e:
        _pull(dev, spool)
    assert e.value.reason == "log_regressed" and dev.acked == 0


def test_log_frame_parsing() -> None:
    r = FakeDevice(DEV_A, GW_ID, n_records=2).log
    assert parse_log_frame(bytes([2]) + r[0] + r[1]) == r
    assert parse_log_frame(bytes([0])) == []
    for bad in (b"", bytes([2]) + r[0], bytes([1]) + r[0] + b"x"):
        with pytest.raises(SessionError):
            parse_log_frame(bad)
    assert record.seq_of(r[1]) == 2


def test_collector_backs_off_a_vanished_device(spool: Spool, tmp_path: Path) -> None:
    cfg = GatewayConfig(GW_ID, tmp_path / "k", tmp_path / "s.db", ble=BLE,
                        devices=(ALLOW[DEV_A],))
    gone = FakeDevice(DEV_A, GW_ID, n_records=3)
    gone.hang_connect = True
    col = Collector(cfg, spool, ble=FakeBle({"AA": gone}))
    cand = Candidate("AA", "AA", "mc-0708", DEV_A.hex())

    async def go() -> None:
        with pytest.raises(SessionError) as e:
            await col.pull(cand)
        assert e.value.reason == "connect_timeout"
        assert not col.due(cand)  # backing off
        st = col.devices[DEV_A.hex()]
        assert st.failures == 1 and st.last_error
        # it comes back: a pull succeeds and resets the failure count
        gone.hang_connect = False
        res = await col.pull(cand)
        assert res.acked == 3 and st.failures == 0 and st.backlog == 0

    asyncio.run(go())
    assert spool.device_status()[DEV_A.hex()]["acked_seq"] == 3
