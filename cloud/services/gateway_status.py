"""The gateways' retained status (protocol.health on mcode/v0/gw/<gw>/status), stored: per
gateway its state (online with health figures, or offline) and per device what the gateway last saw
of it (pulled at, battery-low bit, firmware version, RSSI), for the dashboard's device health.

Trust: the status is not signed (docs/protocol.md, "Gateway status"); the broker lets only gateway
<gw> (its bound user and client id) publish on its own status topic, and gateway_trust.refusal turns
away unknown and revoked gateways as it does for batches. A gateway speaks only for devices of its
own merchant (a gateway of no merchant for any), as with batches; other device ids are ignored and
counted. A refused message never raises past `store_status`'s StatusRefused: the reason is logged
and kept on the gateway's row."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from cloud.services.gateway_trust import refusal
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Campaign, Device, DeviceHealth, Gateway, GatewayStatus
from protocol import health
from protocol.batch import TOPIC_ROOT
from protocol.errors import ReasonError

log = logging.getLogger(__name__)

SUBSCRIPTION = f"{TOPIC_ROOT}/+/status"
_TOPIC = re.compile(r"^" + re.escape(TOPIC_ROOT) + r"/([0-9a-f]{16})/status$")


class StatusRefused(ReasonError):
    """A status message that was not stored; `reason` is stable (bad_topic, malformed,
    unknown_gateway, gateway_revoked)."""


@dataclass(frozen=True)
class Stored:
    gateway_id: str
    state: str
    devices: int  # devices it spoke for (written when their figures changed)
    ignored: int  # device ids the gateway may not speak for (unknown or another merchant's)


def _ms(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * 1000


def _known(s: Session, g: Gateway, ids: list[str]) -> dict[str, tuple[Any, ...] | None]:
    """The devices among `ids` the gateway may speak for, each with its stored health row
    (gateway, seen, battery, firmware, rssi) or None: one query."""
    q = (select(Device.id, DeviceHealth.gateway_id, DeviceHealth.seen_at_ms, DeviceHealth.battery_low,
                DeviceHealth.firmware, DeviceHealth.rssi)
         .join(Campaign, Device.campaign_id == Campaign.id)
         .outerjoin(DeviceHealth, DeviceHealth.device_id == Device.id)
         .where(Device.id.in_(ids)))
    if g.merchant_id is not None:
        q = q.where(Campaign.merchant_id == g.merchant_id)
    return {r[0]: (tuple(r[1:]) if r[1] is not None else None) for r in s.execute(q)}


def _store_devices(s: Session, g: Gateway, devs: list[tuple[Any, ...]], ts_ms: int) -> tuple[int, int]:
    """(accepted, ignored): upsert what the status says of each device the gateway may speak for,
    writing only rows that changed (a fleet's statuses repeat mostly the same figures). A device
    pulled by two gateways keeps the report that saw it last."""
    known = _known(s, g, [d[0] for d in devs]) if devs else {}
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    accepted = 0
    for dev, seen_s, battery, fw, rssi in devs:
        if dev not in known:
            continue
        accepted += 1
        row = (g.id, _ms(seen_s), None if battery is None else bool(battery), fw, rssi)
        old = known[dev]
        if old is not None and (old == row or (old[0] != g.id and (row[1] or 0) < (old[1] or 0))):
            continue  # nothing new, or another gateway pulled it more recently
        values = dict(zip(("gateway_id", "seen_at_ms", "battery_low", "firmware", "rssi"), row, strict=True))
        (new if old is None else changed).append({"device_id": dev, **values, "reported_at_ms": ts_ms})
        known[dev] = row  # a device named twice in one status: the last entry wins
    if new:
        s.execute(insert(DeviceHealth), new)
    if changed:
        s.execute(update(DeviceHealth), changed)  # ORM bulk UPDATE by primary key
    return accepted, len(devs) - accepted


def _refuse(sf: SessionFactory, gw: str | None, reason: str, detail: str, t: int) -> StatusRefused:
    """Keep the reason on a known gateway's row (the dashboard shows it) and hand back the error."""
    if gw is not None:
        with sf.begin() as s:
            if s.get(Gateway, gw) is not None:
                row = s.get(GatewayStatus, gw) or GatewayStatus(gateway_id=gw, state="unknown",
                                                                received_at_ms=t)
                row.refused, row.refused_at_ms = f"{reason}: {detail}"[:200], t
                s.add(row)
    return StatusRefused(reason, detail)


def store_status(sf: SessionFactory, topic: str, payload: bytes, t: int | None = None) -> Stored:
    """Store one status message; StatusRefused (with the reason, also kept on the gateway's row
    when the gateway is known) for anything that cannot be accepted. The last one received wins:
    the broker keeps order on a topic, and a retained message received again is the same one."""
    t = now_ms() if t is None else t
    m = _TOPIC.match(topic)
    if m is None:
        raise StatusRefused("bad_topic", topic[:200])
    gw = m.group(1)
    try:
        st = health.decode(payload)
    except health.HealthError as e:
        raise _refuse(sf, gw, "malformed", str(e)[:180], t) from None
    with sf.begin() as s:
        g = s.get(Gateway, gw)
        why = refusal(g, gw)
        if why is not None or g is None:
            reason, detail = why or ("unknown_gateway", gw)
            raise StatusRefused(reason, detail)
        row = s.get(GatewayStatus, gw)
        if row is None:
            row = GatewayStatus(gateway_id=gw, figures_json="{}", refused="")
            s.add(row)
        row.state, row.received_at_ms = st["state"], t
        written = ignored = 0
        if st["state"] == health.ONLINE:
            devs = st.pop("devs")
            row.sent_at_ms = st["ts"] * 1000
            row.figures_json = json.dumps({k: v for k, v in st.items() if k != "state"}, sort_keys=True)
            written, ignored = _store_devices(s, g, devs, row.sent_at_ms)
    if ignored:
        log.warning("gateway %s: status named %d devices it may not speak for (ignored)", gw, ignored)
    return Stored(gw, st["state"], written, ignored)


def device_health(sf: SessionFactory, device_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the gateways' statuses say of these devices: battery-low bit, firmware, RSSI, when the
    gateway last pulled it, and that gateway's own state (online/offline, when heard, spool alarm).
    Devices no status has named yet are absent."""
    with sf() as s:
        rows = s.execute(select(DeviceHealth, GatewayStatus)
                         .outerjoin(GatewayStatus, GatewayStatus.gateway_id == DeviceHealth.gateway_id)
                         .where(DeviceHealth.device_id.in_(device_ids))).all()
        out = {}
        for d, g in rows:
            figures = json.loads(g.figures_json or "{}") if g is not None else {}
            out[d.device_id] = {
                "battery_low": d.battery_low, "firmware": d.firmware, "rssi": d.rssi,
                "pulled_at_ms": d.seen_at_ms, "gateway_id": d.gateway_id,
                "gateway_state": g.state if g is not None else None,
                "gateway_heard_ms": g.received_at_ms if g is not None else None,
                "spool_alarm": figures.get("spool_alarm")}
        return out

