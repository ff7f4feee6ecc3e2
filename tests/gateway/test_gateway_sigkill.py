"""SIGKILL torture: the real gateway process, killed at random moments while it collects and
publishes, restarted each time; every record the devices logged reaches the cloud, none twice.

Everything is real: `mcode gateway run` as a process, bleak on the bumble radio hub, devices
running the firmware in MicroPython (their taps made by phones over the radio), Mosquitto with
auth and ACLs. The cloud is a stand-in (CloudRecorder, on sim/cloud_acker.py) that verifies batch
signatures and record MACs, "commits" each record once by (device, epoch, seq), then acks, like
cloud/ingest.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway import config as gconfig
from gateway.spool import Spool
from protocol import batch as pbatch
from protocol import keys, record
from protocol.hmac256 import HmacKey
from sim.broker import Broker
from sim.cloud_acker import CloudAcker
from sim.phone import Phone
from sim.process import stop_process
from sim.radio import RadioHub
from tests.conftest import GATEWAY_ID
from tests.vdev import WAIT, Dev, in_own_loop, wait_advertising
from tests.wait import wait_for

pytestmark = pytest.mark.timeout(900)

SEED = 20240601
KILLS = 12
DEVICES = 3
GW = bytes.fromhex(GATEWAY_ID)
Key = tuple[str, int, int]  # device hex, epoch, seq


class CloudRecorder(CloudAcker):
    """sim/cloud_acker.py's stand-in that also verifies record MACs and "commits" each record once
    by (device, epoch, seq), as cloud/ingest does, then acks with the counts.

    Acks go out `ack_delay_s` after the commit, like a busy cloud: a kill then often falls
    between the cloud's commit and the gateway's confirm, the window where a gateway that
    forgot a batch's ack state would send it twice or lose it."""

    def __init__(self, broker: Broker, public_key: Ed25519PublicKey, rec_keys: dict[bytes, HmacKey],
                 ack_delay_s: float = 1.0) -> None:
        super().__init__(broker.host, broker.port, public_key, client_id="sigkill-cloud",
                         ack_delay_s=ack_delay_s)
        self.rec_keys = rec_keys
        self.stored: dict[Key, tuple[bytes, int]] = {}  # key -> (raw, bseq it was first stored from)
        self.commits: Counter[Key] = Counter()  # must stay at 1 per key
        self.dup_records = 0  # records delivered again after their commit (resends)
        self.respooled: list[tuple[Key, int, int]] = []  # a record in two different batches
        self.bad: list[str] = []  # records whose MAC does not verify

    def commit(self, b: pbatch.Batch) -> tuple[int, int]:
        new = dup = 0
        for dev, raw in b.records:
            key_ = self.rec_keys.get(dev)
            if key_ is None or not record.verify(key_, dev, raw):
                self.bad.append(f"record MAC in batch {b.bseq}")
                continue
            f = record.unpack(raw)
            k = (dev.hex(), f[3], f[4])
            if k in self.stored:
                dup += 1
                first_bseq = self.stored[k][1]
                if first_bseq != b.bseq:
                    self.respooled.append((k, first_bseq, b.bseq))
                continue
            self.stored[k] = (raw, b.bseq)
            self.commits[k] += 1
            new += 1
        self.dup_records += dup
        return new, dup

    def keys(self) -> set[Key]:
        with self.lock:
            return set(self.stored)


class Producer:
    """Phones tapping one display over the radio until stopped (one per display, so a tap that
    hangs stalls only its own display). A tap may fail; the device's flash is the truth."""

    def __init__(self, spec: str, dev: Dev) -> None:
        self.spec = spec
        self.dev = dev
        self.receipts: list[tuple[str, int, int]] = []
        self.failed = 0
        self.trace: list[tuple[float, float, str]] = []
        self.t_start = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"taps-{dev.address}", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            d = self.dev
            t0 = time.monotonic()
            at = round(t0 - self.t_start, 2)
            try:
                r = in_own_loop(asyncio.wait_for(Phone(self.spec).tap(d.address, timeout=10.0), 12.0))
            except Exception as e:
                self.failed += 1
                self.trace.append((at, round(time.monotonic() - t0, 2), repr(e)[:80]))
                time.sleep(0.1)
                continue
            self.trace.append((at, round(time.monotonic() - t0, 2), "ok"))
            self.receipts.append((d.device_id.hex(), r.epoch, r.seq))


def _config(tmp: Path, broker: Broker, spec: str, devs: list[Dev]) -> Path:
    gconfig.generate_key(tmp / "gw.key")
    lines = [f'gateway_id = "{GATEWAY_ID}"', 'private_key = "gw.key"', 'spool = "spool.sqlite"', "",
             "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", f'username = "{GATEWAY_ID}"',
             'password = "gw-pw"', "republish_after_s = 3.0", "",
             "[ble]", f'backend = "{spec}"', "scan_s = 0.5", "sweep_interval_s = 0.5",
             "connect_timeout_s = 5.0", "op_timeout_s = 5.0", "session_timeout_s = 30.0",
             "backoff_base_s = 0.3", "backoff_max_s = 2.0", "",
             # Small, young batches: many batches in flight when the kill comes.
             "[batch]", "max_records = 4", "max_age_s = 0.2", ""]
    for d in devs:
        lines += ["[[devices]]", f'id = "{d.device_id.hex()}"',
                  f'key = "{keys.gateway_key(d.key, GW).hex()}"', ""]
    p = tmp / "gateway.toml"
    p.write_text("\n".join(lines))
    return p


def _spawn(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "mcode.cli", "gateway", "run", "--config", str(cfg),
                                 "--log-format", "json"], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    finally:
        out.close()


def _running(log: Path) -> bool:
    """The run's JSON log says the service loops are up."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("logger") == "gateway.service" and " running" in str(o.get("msg")):
            return True
    return False


def _produced(devs: list[Dev], seen: dict[Key, bytes]) -> None:
    """Add every record now on the devices' flash (snapshots: compaction may delete acked ones)."""
    for d in devs:
        for raw in d.log_records():
            f = record.unpack(raw)
            seen[(d.device_id.hex(), f[3], f[4])] = raw


@pytest.fixture
def hub() -> Iterator[RadioHub]:
    with RadioHub() as h:
        yield h


def test_sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice(
        tmp_path: Path, broker: Broker, hub: RadioHub) -> None:
    rng = random.Random(SEED)
    spec = "bumble:" + hub.hci_spec
    devs = [Dev(tmp_path / f"dev{i}", hub.dev_addr).start() for i in range(DEVICES)]
    cfg_path = _config(tmp_path, broker, spec, devs)
    cfg = gconfig.load(cfg_path)
    cloud = CloudRecorder(broker, cfg.load_private_key().public_key(),
                          {d.device_id: d.rec_key for d in devs}).start(WAIT)
    producers = [Producer(spec, d) for d in devs]
    produced: dict[Key, bytes] = {}
    proc: subprocess.Popen[bytes] | None = None
    kills: list[tuple[float, int]] = []  # (seconds after "running", records at the cloud then)
    try:
        in_own_loop(wait_advertising(spec, [d.address for d in devs]))
        for pr in producers:
            pr.thread.start()
        for i in range(KILLS):
            log = tmp_path / f"gateway-{i}.log"
            proc = _spawn(cfg_path, log)
            wait_for(lambda log=log: _running(log), timeout=60, what=f"gateway run {i} up")  # type: ignore[misc]
            delay = rng.uniform(0.0, 4.0)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills.append((round(delay, 2), len(cloud.keys())))
            _produced(devs, produced)
        for pr in producers:
            pr.stop.set()
        for pr in producers:
            pr.thread.join(60)
            assert not pr.thread.is_alive(), "a phone's tap never returned"

        # A last run, left to drain: every record on flash reaches the cloud, every device is acked.
        final_log = tmp_path / "gateway-final.log"
        proc = _spawn(cfg_path, final_log)
        wait_for(lambda: _running(final_log), timeout=60, what="last gateway run up")

        def drained() -> bool:
            time.sleep(0.3)
            _produced(devs, produced)
            if not (set(produced) <= cloud.keys() and all(
                    d.flash_acked() == max(record.seq_of(r) for r in d.log_records()) for d in devs)):
                return False
            with Spool(cfg.spool_path, create=False) as s:  # and every ack back at the gateway
                return s.counts().records == 0

        wait_for(drained, timeout=240, what="every record at the cloud, acked on its device and confirmed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, final_log.read_text()[-3000:]
    finally:
        for pr in producers:
            pr.stop.set()
        stop_process(proc, signal.SIGKILL)
        cloud.stop()
        for d in devs:
            d.vd.stop()

    stored = cloud.keys()
    receipts = {r for pr in producers for r in pr.receipts}
    failed = sum(pr.failed for pr in producers)
    slow = [t for pr in producers for t in pr.trace if t[1] > 5 or t[2] != "ok"]
    print(f"\nsigkill torture: {len(kills)} kills (delay s, records at cloud): {kills}; "
          f"{len(produced)} records on flash ({len(receipts)} tap receipts, {failed} taps "
          f"failed: {slow[:5]}), {cloud.stats.deliveries} batch deliveries, {cloud.dup_records} records "
          f"resent after their commit")
    assert cloud.bad == [] and (cloud.stats.malformed, cloud.stats.bad_signatures) == (0, 0)
    assert len(kills) >= 10
    assert len(receipts) >= 20, "too few taps to say anything"
    # Nothing lost: every seq of every device, 1 to its head, is at the cloud (the device's seqs
    # have no gaps); flash is read in snapshots, as compaction deletes acked segments.
    for d in devs:
        head = max(record.seq_of(r) for r in d.log_records())
        assert sorted(k[2] for k in stored if k[0] == d.device_id.hex()) == list(range(1, head + 1))
    assert set(produced) <= stored
    assert all(cloud.stored[k][0] == raw for k, raw in produced.items())  # byte for byte
    assert receipts <= stored  # every tap a phone got a receipt for
    # Nothing invented: every stored record carries its device's MAC (cloud.bad is empty).
    assert set(cloud.commits.values()) == {1} and len(cloud.commits) == len(stored)  # once each
    # Resends are of the same batch (its ack was lost with the process); a record is never
    # spooled again into another batch.
    assert cloud.respooled == []
    assert cloud.dup_records > 0, "no kill fell between a commit and its ack: the test proved less"
    with Spool(cfg.spool_path) as s:
        assert s.counts().records == 0 and s.pending_batches() == []
        assert s.confirmed_batches(), "the confirmed-batches log is empty"
