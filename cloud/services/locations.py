"""Locations (M店): the shops and spots where a merchant mounts displays."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.errors import bad_request, not_found
from cloud.services.auth import Principal, sees
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Location, Merchant


def location_dict(loc: Location) -> dict[str, Any]:
    return {"location_id": loc.id, "merchant_id": loc.merchant_id, "name": loc.name, "address": loc.address}


def create_location(sf: SessionFactory, merchant_id: int, name: str, address: str = "") -> dict[str, Any]:
    if not name.strip() or len(name) > 200 or len(address) > 400:
        raise bad_request("bad_location",
                          "a location needs a name (1-200 chars) and an address of at most 400",
                   "位置须有名称（1 至 200 个字符），地址不超过 400 个字符")
    with sf.begin() as s:
        if s.get(Merchant, merchant_id) is None:
            raise not_found("unknown_merchant", "no such merchant", "商户不存在")
        loc = Location(merchant_id=merchant_id, name=name.strip(), address=address, created_at_ms=now_ms())
        s.add(loc)
        s.flush()
        return location_dict(loc)


def get_location(sf: SessionFactory, p: Principal, location_id: int) -> dict[str, Any]:
    with sf() as s:
        loc = s.get(Location, location_id)
        if loc is None or not sees(p, loc.merchant_id):
            raise not_found("unknown_location", "no such location", "位置不存在")
        return location_dict(loc)


def list_locations(sf: SessionFactory, merchant_id: int) -> list[dict[str, Any]]:
    with sf() as s:
        return [location_dict(loc) for loc in s.scalars(
            select(Location).where(Location.merchant_id == merchant_id).order_by(Location.id))]
