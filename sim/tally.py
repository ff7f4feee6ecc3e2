"""The demo's self-check: compare what the devices logged with what the cloud stored, and
every order's payouts with its pool. Reads device flash and the cloud database directly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import create_engine, text

from protocol import record
from sim.devices import VirtualDevice


def device_records(dev: VirtualDevice) -> list[bytes]:
    return dev.log_records()


@dataclass
class Tally:
    devices: int
    records_logged: int
    scans_logged: int
    events_in_cloud: int
    lost: int
    duplicates: int
    orders: int
    payouts_total_minor: int
    pool_total_minor: int
    orders_unbalanced: int
    receipts: int
    receipts_in_cloud: int

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicates == 0 and self.orders_unbalanced == 0
                and self.payouts_total_minor == self.pool_total_minor
                and self.receipts_in_cloud == self.receipts)


def tally(devices: list[VirtualDevice], db_url: str, receipts: list[tuple[str, bytes]]) -> Tally:
    logged: set[tuple[str, int, int]] = set()
    scans = 0
    for dev in devices:
        for rec in device_records(dev):
            _, kind, _, epoch, seq, _, _ = record.unpack(rec)
            logged.add((dev.device_id, epoch, seq))
            scans += kind == record.KIND_TAP
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT device_id, epoch, seq, kind, data FROM events")).all()
            per_order = c.execute(text(
                "SELECT o.id, o.pool_minor, COALESCE(SUM(p.amount_minor), 0) FROM orders o "
                "LEFT JOIN payouts p ON p.order_id = o.id GROUP BY o.id, o.pool_minor")).all()
    finally:
        engine.dispose()
    ids = {d.device_id for d in devices}
    keys = Counter((r[0], int(r[1]), int(r[2])) for r in rows if r[0] in ids)
    # The same physical tap (device, phone nonce) stored under two keys would also be a duplicate.
    taps = Counter((r[0], bytes(r[4])) for r in rows if r[0] in ids and r[3] == record.KIND_TAP)
    duplicates = sum(n - 1 for n in keys.values()) + sum(n - 1 for n in taps.values())
    in_cloud = set(keys)
    return Tally(
        devices=len(devices), records_logged=len(logged), scans_logged=scans,
        events_in_cloud=sum(keys.values()), lost=len(logged - in_cloud), duplicates=duplicates,
        orders=len(per_order), payouts_total_minor=sum(int(r[2]) for r in per_order),
        pool_total_minor=sum(int(r[1]) for r in per_order),
        orders_unbalanced=sum(1 for r in per_order if int(r[1]) != int(r[2])),
        receipts=len(receipts),
        receipts_in_cloud=sum(1 for dev_id, raw in receipts
                              if (dev_id, *record.unpack(raw)[3:5]) in in_cloud),
    )
