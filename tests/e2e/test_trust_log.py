"""The trust log against a real cloud: `mcode cloud run` in its own process (on a SQLite file and on
PostgreSQL), the witness (`mcode witness run`) and the verifier (`mcode verify`) as their CLIs.

- A sharer's journey: taps, a display code, a share, a friend's order; the sharer downloads the
  payout's bundle from their earnings page (/me in Chromium at phone size) and `mcode verify` says
  VERIFIED, with the witness's key.
- SIGKILL of the API during a burst of orders: after a restart the leaves are contiguous, every
  committed order has its order and posting leaves, and the witness finds the next checkpoint
  consistent with the one it cosigned before the kill.
- A forger with the database and the log's key rewrites an order in the log and re-signs: the
  witness raises ALARM: FORK, and the bundle no longer verifies with the witness's key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, insert, select, update

from cloud.services import ingest
from cloud.store.engine import SessionFactory
from cloud.store.models import LogCheckpoint, LogCosignature, LogLeaf, LogNode, LogState, Order, Payout
from protocol import batch as pbatch
from protocol import leaves, merkle, record
from protocol.hmac256 import HmacKey
from protocol.keys import record_key
from protocol.rotation import window
from tests.cloud.conftest import (  # noqa: F401 (fixtures: both databases)
    ADMIN_KEY,
    MASTER_KEY,
    VISITOR_SECRET,
    World,
    db_url,
    engine,
    pg,
    provision_world,
    sf,
)
from tests.cloud.test_ratelimit_processes import _free_port, _wait_ready
from tests.cloud.test_resolve_orders import PERIOD, code_at

ROOT = Path(__file__).resolve().parents[2]
MCODE = [sys.executable, "-m", "mcode.cli"]


@dataclass
class Cloud:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([*MCODE, "cloud", "run", "--no-ingest"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_ready(self.proc, self.url)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCODE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def cloud(db_url: str, sf: SessionFactory, tmp_path: Path) -> Iterator[Cloud]:  # noqa: F811
    port = _free_port()
    wkey = tmp_path / "w1.key"
    env = {**os.environ, "LANG": "en_US.UTF-8", "MCODE_CLOUD_DB_URL": db_url,
           "MCODE_CLOUD_ADMIN_KEY": ADMIN_KEY,
           "MCODE_CLOUD_MASTER_KEY": MASTER_KEY, "MCODE_CLOUD_VISITOR_SECRET": VISITOR_SECRET,
           "MCODE_CLOUD_HTTP_PORT": str(port), "MCODE_CLOUD_INSECURE_HTTP": "1",
           "MCODE_CLOUD_LOG_CHECKPOINT_INTERVAL_S": "0.3"}
    keygen = run(["witness", "keygen", "witness.test/w1", "--out", str(wkey)], env)
    assert keygen.returncode == 0, keygen.stderr
    env["MCODE_CLOUD_WITNESS_KEYS"] = keygen.stdout.strip().splitlines()[-1]
    c = Cloud(f"http://127.0.0.1:{port}", env)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def taps(sf: SessionFactory, world: World, bseq: int, n: int = 3) -> None:  # noqa: F811
    start = window(time.time(), PERIOD) * PERIOD
    d = world.devices[0]
    key, dev = HmacKey(record_key(bytes.fromhex(d["key"]))), bytes.fromhex(d["device_id"])
    recs = [(dev, record.make(key, dev, record.KIND_TAP, record.FLAG_CLOCK_SET, 1, bseq * 100 + i, start + i,
                              bytes(8))) for i in range(n)]
    env = pbatch.sign(pbatch.Batch(bytes.fromhex(world.gateway_id), bseq, int(time.time() * 1000), recs),
                      world.gw_key)
    assert ingest.ingest(sf, pbatch.batch_topic(world.gateway_id), env).stored == n


def witness(c: Cloud, tmp_path: Path, log_key: str) -> subprocess.CompletedProcess[str]:
    return run(["witness", "run", c.url, "--log-key", log_key, "--key", str(tmp_path / "w1.key"),
                "--state", str(tmp_path / "w1.json")], c.env)


def wait_checkpoint(c: Cloud, size: int) -> None:
    for _ in range(100):
        if int(httpx.get(f"{c.url}/log/checkpoint").text.split("\n")[1]) >= size:
            return
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of size {size}")


def leaf_count(sf: SessionFactory) -> int:  # noqa: F811
    with sf() as s:
        idx = list(s.scalars(select(LogLeaf.idx).order_by(LogLeaf.idx)))
    assert idx == list(range(len(idx))), "leaf indexes are contiguous from 0"
    return len(idx)


def test_sharer_journey_kill_and_forgery(cloud: Cloud, sf: SessionFactory, tmp_path: Path) -> None:  # noqa: F811
    world = provision_world(sf)
    log_key = run(["cloud", "log", "key"], cloud.env).stdout.strip()
    taps(sf, world, 1)
    sharer = httpx.Client(base_url=cloud.url, timeout=30)
    a = sharer.get(f"/r/{code_at(world, window(time.time(), PERIOD))}").json()
    code_a = sharer.post(f"/entries/{a['entry_id']}/share").json()["share_code"]
    friend = httpx.Client(base_url=cloud.url, timeout=30)
    b = friend.get(f"/r/{code_a}").json()
    merchant = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    placed = httpx.post(f"{cloud.url}/orders", json={"entry_id": b["entry_id"], "amount_minor": 5000},
                        headers={**merchant, "Idempotency-Key": "journey"}).json()
    wait_checkpoint(cloud, leaf_count(sf))
    w = witness(cloud, tmp_path, log_key)
    assert w.returncode == 0 and "cosigned" in w.stdout, w.stderr
    with sf() as s:
        pid = s.scalar(select(Payout.id).where(Payout.order_id == placed["order_id"], Payout.level == 1))
    # the sharer downloads it from their earnings page (Chromium, phone size, their cookie); the
    # friend's cookie gets nothing
    assert friend.get(f"/me/payouts/{pid}/proof").status_code == 404
    download_from_earnings_page(cloud.url, sharer.cookies["mcode_visitor"], tmp_path / "payout.json")
    wvkey = cloud.env["MCODE_CLOUD_WITNESS_KEYS"]
    dkey = f"{world.devices[0]['device_id']}={world.devices[0]['key']}"
    v = run(["verify", str(tmp_path / "payout.json"), "--log-key", log_key, "--witness-key", wvkey,
             "--device-key", dkey], cloud.env)
    assert v.returncode == 0 and v.stdout.strip().endswith("VERIFIED"), v.stdout + v.stderr

    # SIGKILL during a burst of orders, then a restart
    def buy(i: int) -> int:
        try:
            return httpx.post(f"{cloud.url}/orders", json={"entry_id": b["entry_id"], "amount_minor": i + 1},
                              headers={**merchant, "Idempotency-Key": f"burst-{i}"}, timeout=10).status_code
        except httpx.HTTPError:
            return 0

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(buy, i) for i in range(400)]
        time.sleep(1.0)
        cloud.kill()
        answered = [f.result() for f in futures]
    assert 201 in answered and 0 in answered, "the kill landed mid-burst"
    cloud.start()
    n = leaf_count(sf)
    with sf() as s:
        orders = set(s.scalars(select(Order.id)))
        logged = [leaves.decode(bytes(x)) for x in s.scalars(select(LogLeaf.leaf))]
    assert {m["order"] for m in logged if m["k"] == "order"} == orders
    assert {m["order"] for m in logged if m["k"] == "posting"} == orders
    wait_checkpoint(cloud, n)
    w = witness(cloud, tmp_path, log_key)
    assert w.returncode == 0 and "cosigned" in w.stdout, w.stdout + w.stderr

    # a forger rewrites the first order's amount in the log, rebuilds the tree and signs again
    forge(sf, placed["order_id"])
    cloud.kill()
    cloud.start()
    r = sharer.get(f"/me/payouts/{pid}/proof")
    (tmp_path / "forged.json").write_bytes(r.content)
    w = witness(cloud, tmp_path, log_key)
    assert w.returncode == 3 and "ALARM: FORK" in w.stdout + w.stderr, w.stdout + w.stderr
    v = run(["verify", str(tmp_path / "forged.json"), "--log-key", log_key, "--witness-key", wvkey],
            cloud.env)
    assert v.returncode == 1 and "missing_cosignature" in v.stderr, v.stdout + v.stderr


def download_from_earnings_page(url: str, cookie: str, out: Path) -> None:
    from tests.pw import PHONE, chromium, context

    with chromium() as browser, context(browser, PHONE, "zh-CN") as ctx:
        ctx.add_cookies([{"name": "mcode_visitor", "value": cookie, "url": url}])
        page = ctx.new_page()
        page.goto(f"{url}/me")
        with page.expect_download() as got:
            page.click("a.proof")
        got.value.save_as(out)


def forge(sf: SessionFactory, order_id: int) -> None:  # noqa: F811
    """Everything a database owner can do: a new leaf, every node and the state recomputed, the
    checkpoints and cosignatures of the old history deleted (the cloud then signs the new one)."""
    with sf.begin() as s:
        row = s.scalars(select(LogLeaf).where(LogLeaf.ref == f"order:{order_id}")).one()
        m = leaves.decode(bytes(row.leaf))
        m["amount"] += 1
        row.leaf = leaves.encode("order", {k: v for k, v in m.items() if k not in ("k", "v")})
        row.hash = merkle.leaf_hash(row.leaf)
        s.flush()
        f = merkle.Frontier()
        nodes = []
        for h in s.scalars(select(LogLeaf.hash).order_by(LogLeaf.idx)):
            nodes += [{"level": lv, "idx": i, "hash": x} for lv, i, x in f.append(bytes(h))[1:]]
        s.execute(delete(LogNode))
        s.execute(insert(LogNode), nodes)
        s.execute(update(LogState).values(size=f.size, frontier=b"".join(f.hashes)))
        s.execute(delete(LogCosignature))
        s.execute(delete(LogCheckpoint))
