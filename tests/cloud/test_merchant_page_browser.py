"""The merchant page as headless Chromium renders it: each device with its scans, both languages,
tenant isolation by key, and a screenshot a person can read."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine

from cloud.http.app import create_app
from cloud.services.ingest import ingest
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol import batch as pbatch
from protocol import record
from tests.browser import dump_dom, screenshot, serve
from tests.cloud.conftest import ADMIN_KEY, Clock, World, provision_world
from tests.cloud.mqtt_helpers import records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def store(sf: SessionFactory, world: World, bseq: int, recs: list[tuple[bytes, bytes]]) -> None:
    payload = pbatch.sign(pbatch.Batch(bytes.fromhex(world.gateway_id), bseq, 0, recs), world.gw_key)
    res = ingest(sf, pbatch.batch_topic(world.gateway_id), payload)
    assert res.status == pbatch.ACK_STORED and res.rejected == 0


@pytest.fixture
def base_url(engine: Engine, clock: Clock) -> Iterator[str]:
    app = create_app(Settings(db_url="unused", admin_key=ADMIN_KEY), engine=engine, clock_=clock)
    with serve(app) as url:
        yield url


def row(dom: str, device_id: str) -> str:
    m = re.search(rf'<tr data-device="{device_id}">(.*?)</tr>', dom, re.S)
    assert m, f"no row for device {device_id}"
    return m.group(1)


def cell(html: str, cls: str) -> str:
    m = re.search(rf'<td class="{cls}">\s*(\d+)\s*</td>', html)
    assert m, f"no {cls} cell in {html!r}"
    return m.group(1)


def test_merchant_page_in_chromium(base_url: str, sf: SessionFactory, tmp_path: Path) -> None:
    a = provision_world(sf, base="4919", name="Shop A", n_devices=2)
    b = provision_world(sf, base="5151", name="Shop B", n_devices=1, gateway_id="b1b2b3b4b5b6b7b8")
    a0, a1 = a.devices
    # a0: taps 1..5 and 8 (6, 7 lost: 2 gaps) and a boot record; a1: 3 taps; B's device: 4 taps
    store(sf, a, 1, records(a0, [1, 2, 3, 4, 5, 8]) + records(a0, [9], kind=record.KIND_BOOT))
    store(sf, a, 2, records(a1, [1, 2, 3]))
    store(sf, b, 1, records(b.devices[0], [1, 2, 3, 4]))
    url_a = f"{base_url}/merchant?key={quote(a.merchant['api_key'])}"
    url_b = f"{base_url}/merchant?key={quote(b.merchant['api_key'])}"

    dom = dump_dom(url_a)
    assert "<h1" in dom and "Shop A" in dom
    for zh, en in (("商户数据", "Merchant data"), ("扫码", "Scans"), ("事件", "Events"),
                   ("缺失", "Gaps"), ("合计", "Total")):
        assert zh in dom and en in dom, (zh, en)
    for dev, scans, events, gaps in ((a0, 6, 7, 2), (a1, 3, 3, 0)):
        r = row(dom, dev["device_id"])
        assert dev["device_id"] in r
        assert (cell(r, "scans"), cell(r, "events"), cell(r, "gaps")) == (str(scans), str(events), str(gaps))
    assert re.search(r'id="total-scans"[^>]*>\s*9\s*<', dom)
    assert re.search(r'id="total-events"[^>]*>\s*10\s*<', dom)
    assert b.devices[0]["device_id"] not in dom and "Shop B" not in dom

    dom_b = dump_dom(url_b)
    assert "Shop B" in dom_b and b.devices[0]["device_id"] in dom_b
    assert cell(row(dom_b, b.devices[0]["device_id"]), "scans") == "4"
    for dev in (a0, a1):
        assert dev["device_id"] not in dom_b
    assert "Shop A" not in dom_b

    dom_anon = dump_dom(f"{base_url}/merchant")  # no key: the JSON 401, no device at all
    assert "unauthorized" in dom_anon
    assert not any(d["device_id"] in dom_anon for d in (a0, a1, b.devices[0]))

    png = screenshot(url_a, tmp_path / "merchant.png", width=1024, height=768).read_bytes()
    assert png[:8] == PNG_MAGIC and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 0 and height > 0
    assert len(png) > 8 * 1024  # a blank or failed page compresses to far less
