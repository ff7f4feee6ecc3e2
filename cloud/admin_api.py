"""Admin and provisioning endpoints (`Authorization: Bearer <admin key>`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cloud import auth, campaigns, provision
from cloud.deps import SF, require_admin
from cloud.rules import RED_BALLOON_RULE

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


class MerchantIn(BaseModel):
    name: str


class CampaignIn(BaseModel):
    merchant_id: int
    base_code: str
    slots: int
    digits: int
    period_s: int
    pool_minor: int
    label_zh: str
    label_en: str
    rule: str = RED_BALLOON_RULE
    rule_params: dict[str, Any] = Field(default_factory=dict)
    budget_minor: int | None = None
    hold_s: int = 14 * 24 * 3600
    starts_at_ms: int | None = None
    ends_at_ms: int | None = None
    landing_zh: str = ""
    landing_en: str = ""


class DeviceIn(BaseModel):
    campaign_id: int
    slot: int | None = None
    label: str = ""
    location: str = ""
    location_id: int | None = None
    board: str = ""
    printed: bool = False  # a printed code (poster, sticker): fixed, never rotates
    device_id: str | None = None


class KeyIn(BaseModel):
    role: str
    merchant_id: int | None = None
    gateway_id: str | None = None
    label: str = ""


class GatewayIn(BaseModel):
    gateway_id: str
    public_key: str  # raw Ed25519, 32 bytes as hex
    merchant_id: int | None = None
    label: str = ""


@router.post("/merchants", status_code=201)
def create_merchant(body: MerchantIn, sf: SF) -> dict[str, Any]:
    return provision.create_merchant(sf, body.name)


@router.post("/campaigns", status_code=201)
def create_campaign(body: CampaignIn, sf: SF) -> dict[str, Any]:
    f = body.model_dump()
    return campaigns.create(sf, f.pop("merchant_id"), **f)


@router.post("/devices", status_code=201)
def create_device(body: DeviceIn, sf: SF) -> dict[str, Any]:
    return provision.create_device(sf, **body.model_dump())


@router.post("/gateways", status_code=201)
def create_gateway(body: GatewayIn, sf: SF) -> dict[str, Any]:
    return provision.create_gateway(sf, body.gateway_id, body.public_key, body.merchant_id, body.label)


@router.get("/gateways/{gateway_id}/devices")
def gateway_devices(gateway_id: str, sf: SF) -> dict[str, Any]:
    return {"gateway_id": gateway_id.lower(), "devices": provision.gateway_device_keys(sf, gateway_id)}


@router.post("/keys", status_code=201)
def issue_key(body: KeyIn, sf: SF) -> dict[str, Any]:
    """Any role's key; admin keys have no merchant."""
    return auth.issue_key(sf, body.role, body.merchant_id, body.label, body.gateway_id)
