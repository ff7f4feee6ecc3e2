"""Admin and provisioning endpoints (`Authorization: Bearer <admin key>`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.routing import APIRoute

from cloud.http import schemas as o
from cloud.http.deps import SF, AdminDep, require_admin
from cloud.http.inputs import (
    HEX_ID,
    AdminCampaignIn,
    AdminDeviceIn,
    AdminKeyIn,
    GatewayIn,
    MerchantIn,
    checked,
)
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, campaigns, merchants, provision


def _operation_id(route: APIRoute) -> str:
    return f"admin_{route.name}"


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   generate_unique_id_function=_operation_id)

GatewayIdPath = Annotated[str, Path(description="16 hex digits", json_schema_extra=checked(pattern=HEX_ID))]


@router.post("/merchants", status_code=201, response_model=o.MerchantCreated, responses=errors(*KEYED))
def create_merchant(body: MerchantIn, sf: SF) -> dict[str, Any]:
    """A new tenant and its first merchant key."""
    return merchants.create_merchant(sf, body.name)


@router.post("/campaigns", status_code=201, response_model=o.CampaignOut,
             responses=errors(*KEYED, 404, 409))
def create_campaign(body: AdminCampaignIn, sf: SF) -> dict[str, Any]:
    f = body.model_dump()
    return campaigns.create(sf, f.pop("merchant_id"), **f)


@router.post("/devices", status_code=201, response_model=o.DeviceConfig, response_model_exclude_unset=True,
             responses=errors(*KEYED, 404, 409))
def create_device(body: AdminDeviceIn, sf: SF, p: AdminDep) -> dict[str, Any]:
    """Registers a device (an admin may name its id) and returns its flashing config, device key
    included: the only time the key is shown."""
    return provision.create_device(sf, as_=p, **body.model_dump())


@router.post("/gateways", status_code=201, response_model=o.GatewayOut, responses=errors(*KEYED, 404, 409))
def create_gateway(body: GatewayIn, sf: SF) -> dict[str, Any]:
    """Registers a gateway's Ed25519 public key, optionally for one merchant's devices only."""
    return provision.create_gateway(sf, body.gateway_id, body.public_key, body.merchant_id, body.label)


@router.get("/gateways/{gateway_id}/devices", response_model=o.GatewayDevices, responses=errors(*KEYED, 404))
def get_gateway_devices(gateway_id: GatewayIdPath, sf: SF) -> dict[str, Any]:
    """The command keys of the devices a gateway serves."""
    return {"gateway_id": gateway_id.lower(), "devices": provision.gateway_device_keys(sf, gateway_id)}


@router.post("/keys", status_code=201, response_model=o.KeyIssued, responses=errors(*KEYED, 404))
def issue_key(body: AdminKeyIn, sf: SF) -> dict[str, Any]:
    """Any role's key; admin keys have no merchant."""
    return auth.issue_key(sf, body.role, body.merchant_id, body.label, body.gateway_id)
