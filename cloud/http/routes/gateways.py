"""Gateways: the tenant's list, a gateway key's own devices, revocation and key rotation.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from cloud.errors import not_found
from cloud.http import schemas as o
from cloud.http.deps import SF, GatewayKey, Merchantish
from cloud.http.inputs import HEX_ID, GatewayRotateIn, checked
from cloud.http.params import AdminTenant, GatewayIdQuery
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, gateway_trust, provision

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


GatewayPath = Annotated[str, Path(description="the gateway's id, 16 hex",
                                  json_schema_extra=checked(pattern=HEX_ID))]


@router.post("/gateways/{gateway_id}/revoke", tags=["registry"], response_model=o.GatewayTrust,
             responses=errors(*KEYED, 404))
def revoke_gateway(sf: SF, p: Merchantish, gateway_id: GatewayPath) -> dict[str, Any]:
    """Revoke a gateway for good: its later batches are quarantined as gateway_revoked and its
    gateway keys are revoked. Admins, and the merchant the gateway serves."""
    return gateway_trust.revoke(sf, gateway_id, as_=p)


@router.post("/gateways/{gateway_id}/rotate", tags=["registry"], response_model=o.GatewayTrust,
             responses=errors(*KEYED, 404, 409))
def rotate_gateway(sf: SF, p: Merchantish, gateway_id: GatewayPath, body: GatewayRotateIn) -> dict[str, Any]:
    """Install the gateway's new public key; the previous one still verifies what was in flight
    (received within grace_s, and below until_bseq if given)."""
    return gateway_trust.rotate(sf, gateway_id, body.public_key, as_=p, grace_s=body.grace_s,
                                until_bseq=body.until_bseq)
