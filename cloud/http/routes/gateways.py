"""Gateways: the tenant's list, and a gateway key's own devices.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cloud.errors import not_found
from cloud.http import schemas as o
from cloud.http.deps import SF, GatewayKey, Merchantish
from cloud.http.params import AdminTenant, GatewayIdQuery
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, provision

router = APIRouter()


@router.get("/gateways", tags=["registry"], response_model=o.GatewayList, responses=errors(*KEYED))
def list_gateways(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"gateways": provision.list_gateways(sf, auth.tenant(p, merchant_id))}


@router.get("/gateway/devices", tags=["gateway"], response_model=o.GatewayDevices,
            responses=errors(*KEYED, 404))
def get_gateway_devices(sf: SF, p: GatewayKey,
                        gateway_id: GatewayIdQuery = None
                        ) -> dict[str, Any]:
    """A gateway key gets its own gateway's command keys (admins name the gateway)."""
    if p.gateway_id is not None and gateway_id not in (None, p.gateway_id):
        raise auth.forbidden("a gateway key reads only its own gateway", "网关密钥只能读取自己的网关")
    gw = p.gateway_id or gateway_id
    if gw is None:
        raise not_found("unknown_gateway", "name a gateway", "请指定网关")
    return {"gateway_id": gw, "devices": provision.gateway_device_keys(sf, gw)}
