"""The tenant API: what merchant, technician and gateway keys may do, each inside its own tenant
(cloud/auth.py). Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud import auth, campaigns, chain, ledger, orders, provision, sharers
from cloud.auth import Principal
from cloud.codes import VISITOR_COOKIE, valid_visitor
from cloud.deps import SF, GatewayKey, Merchantish, Techish, clock
from cloud.errors import not_found
from cloud.models import Campaign, Entry
from cloud.ratelimit import limit_client
from cloud.rules import RED_BALLOON_RULE

router = APIRouter()


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped (a typo must not look like a change)."""
    model_config = ConfigDict(extra="forbid")
Now = Annotated[Callable[[], float], Depends(clock)]
AdminTenant = Annotated[int | None, Query(description="the tenant, for admin keys only")]


class CampaignIn(Strict):
    merchant_id: int | None = Field(None, description="admin keys only: the tenant")
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


class CampaignPatch(Strict):
    pool_minor: int | None = None
    rule: str | None = None
    rule_params: dict[str, Any] | None = None
    budget_minor: int | None = None
    hold_s: int | None = None
    starts_at_ms: int | None = None
    ends_at_ms: int | None = None
    label_zh: str | None = None
    label_en: str | None = None
    landing_zh: str | None = None
    landing_en: str | None = None


class LocationIn(Strict):
    merchant_id: int | None = None
    name: str
    address: str = ""


class DeviceIn(Strict):
    campaign_id: int
    slot: int | None = None
    label: str = ""
    location: str = ""
    location_id: int | None = None
    board: str = ""
    printed: bool = False  # a printed code (poster, sticker): fixed, never rotates
    device_id: str | None = None


class KeyIn(Strict):
    merchant_id: int | None = None
    role: str = Field(description="merchant, technician or gateway")
    label: str = ""
    gateway_id: str | None = None


class OrderIn(Strict):
    entry_id: str
    amount_minor: int


class AccountIn(Strict):
    account_ref: str = Field(description="the merchant's verified reference: member number, phone")


# registry ----------------------------------------------------------------------------------------

@router.get("/campaigns", tags=["registry"])
def list_campaigns(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"campaigns": campaigns.list_for(sf, auth.tenant(p, merchant_id))}


@router.post("/campaigns", status_code=201, tags=["registry"])
def create_campaign(body: CampaignIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    f = body.model_dump()
    return campaigns.create(sf, auth.tenant(p, f.pop("merchant_id")), **f)


@router.get("/campaigns/{campaign_id}", tags=["registry"])
def get_campaign(campaign_id: int, sf: SF, p: Techish) -> dict[str, Any]:
    return campaigns.get(sf, p, campaign_id)


@router.patch("/campaigns/{campaign_id}", tags=["registry"])
def update_campaign(campaign_id: int, body: CampaignPatch, sf: SF, p: Merchantish) -> dict[str, Any]:
    return campaigns.update(sf, p, campaign_id, body.model_dump(exclude_unset=True))


@router.post("/campaigns/{campaign_id}/release", tags=["registry"])
def release_campaign(campaign_id: int, sf: SF, p: Merchantish) -> dict[str, Any]:
    return campaigns.release(sf, p, campaign_id)


@router.get("/locations", tags=["registry"])
def list_locations(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"locations": campaigns.list_locations(sf, auth.tenant(p, merchant_id))}


@router.post("/locations", status_code=201, tags=["registry"])
def create_location(body: LocationIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    return campaigns.create_location(sf, auth.tenant(p, body.merchant_id), body.name, body.address)


@router.get("/locations/{location_id}", tags=["registry"])
def get_location(location_id: int, sf: SF, p: Techish) -> dict[str, Any]:
    return campaigns.get_location(sf, p, location_id)


@router.get("/devices", tags=["registry"])
def list_devices(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"devices": provision.list_devices(sf, auth.tenant(p, merchant_id))}


@router.post("/devices", status_code=201, tags=["registry"])
def create_device(body: DeviceIn, sf: SF, p: Techish) -> dict[str, Any]:
    """Registers a device and returns its flashing config, device key included."""
    return provision.create_device(sf, as_=p, **body.model_dump())


@router.get("/devices/{device_id}", tags=["registry"])
def get_device(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    return provision.get_device(sf, p, device_id)


@router.get("/devices/{device_id}/config", tags=["registry"])
def device_config(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    """The flashing config with the device key: for the technician at the device."""
    return provision.get_device(sf, p, device_id, with_key=True)


@router.get("/gateways", tags=["registry"])
def list_gateways(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"gateways": provision.list_gateways(sf, auth.tenant(p, merchant_id))}


@router.get("/gateway/devices", tags=["gateway"])
def gateway_devices(sf: SF, p: GatewayKey,
                    gateway_id: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    """A gateway key gets its own gateway's command keys (admins name the gateway)."""
    if p.gateway_id is not None and gateway_id not in (None, p.gateway_id):
        raise auth.forbidden("a gateway key reads only its own gateway", "网关密钥只能读取自己的网关")
    gw = p.gateway_id or gateway_id
    if gw is None:
        raise not_found("unknown_gateway", "name a gateway", "请指定网关")
    return {"gateway_id": gw, "devices": provision.gateway_device_keys(sf, gw)}


@router.get("/keys", tags=["keys"])
def list_keys(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"keys": auth.list_keys(sf, auth.tenant(p, merchant_id))}


@router.post("/keys", status_code=201, tags=["keys"])
def create_key(body: KeyIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    """A merchant issues keys for its own tenant: more merchant keys, technicians, gateways."""
    if body.role == auth.ADMIN:
        raise auth.forbidden("admin keys come from the admin API", "管理员密钥须通过管理接口签发")
    return auth.issue_key(sf, body.role, auth.tenant(p, body.merchant_id), body.label, body.gateway_id)


@router.delete("/keys/{key_id}", tags=["keys"])
def revoke_key(key_id: int, sf: SF, p: Merchantish) -> dict[str, Any]:
    return auth.revoke_key(sf, p, key_id)


# orders and chains -------------------------------------------------------------------------------

@router.post("/orders", status_code=201, tags=["orders"])
def place_order(body: OrderIn, sf: SF, p: Merchantish, now: Now,
                idempotency_key: Annotated[str, Header()] = "") -> JSONResponse:
    """Records a sale; a repeat with the same Idempotency-Key returns the first answer."""
    answer, replayed = orders.place_order(sf, auth.tenant(p, _entry_tenant(sf, p, body.entry_id)),
                                          idempotency_key, body.entry_id, body.amount_minor,
                                          int(now() * 1000))
    return JSONResponse(answer, status_code=201,
                        headers={"Idempotent-Replayed": "true" if replayed else "false"})


def _entry_tenant(sf: SF, p: Principal, entry_id: str) -> int | None:
    """For admin keys: the tenant of the entry (merchants use their own)."""
    if not p.is_admin:
        return None
    with sf() as s:
        e = s.get(Entry, entry_id)
        c = s.get(Campaign, e.campaign_id) if e is not None else None
        if c is None:
            raise not_found("unknown_entry", "no such entry", "进店记录不存在")
        return c.merchant_id


@router.get("/orders/{order_id}", tags=["orders"])
def get_order(order_id: int, sf: SF, p: Merchantish) -> dict[str, Any]:
    return orders.get_order(sf, p, order_id)


@router.post("/orders/{order_id}/refund", tags=["orders"])
def refund_order(order_id: int, sf: SF, p: Merchantish, now: Now) -> JSONResponse:
    answer, replayed = orders.refund(sf, p, order_id, int(now() * 1000))
    return JSONResponse(answer, headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.get("/entries/{entry_id}/chain", tags=["orders"])
def entry_chain(entry_id: str, sf: SF, p: Merchantish) -> dict[str, Any]:
    """Who brought whom: the display (and its location), each sharer, the shopper."""
    with sf() as s:
        e = s.get(Entry, entry_id)
        c = s.get(Campaign, e.campaign_id) if e is not None else None
        if e is None or c is None or not auth.sees(p, c.merchant_id):
            raise not_found("unknown_entry", "no such entry in your campaigns", "您的活动中没有该进店记录")
        return chain.describe(s, e)


@router.post("/sharers/{participant_id}/account", tags=["orders"])
def link_account(participant_id: int, body: AccountIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    return sharers.link_account(sf, p, participant_id, body.account_ref)


# ledger --------------------------------------------------------------------------------------------

def _maybe_csv(data: dict[str, Any], fmt: str, name: str) -> Response | dict[str, Any]:
    if fmt == "csv":
        return PlainTextResponse(ledger.to_csv(data["entries"]), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return data


Fmt = Annotated[str, Query(pattern="^(json|csv)$")]


@router.get("/ledger/campaigns/{campaign_id}", tags=["ledger"], response_model=None)
def campaign_statement(campaign_id: int, sf: SF, p: Merchantish, now: Now,
                       format: Fmt = "json") -> Response | dict[str, Any]:
    st = ledger.campaign_statement(sf, p, campaign_id, int(now() * 1000))
    return _maybe_csv(st, format, f"campaign-{campaign_id}")


@router.get("/ledger/sharers/{participant_id}", tags=["ledger"], response_model=None)
def sharer_statement(participant_id: int, sf: SF, p: Merchantish, now: Now,
                     format: Fmt = "json") -> Response | dict[str, Any]:
    st = ledger.sharer_statement(sf, p, participant_id, int(now() * 1000))
    return _maybe_csv(st, format, f"sharer-{participant_id}")


@router.get("/ledger/balances", tags=["ledger"])
def balances(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    with sf() as s:
        b = ledger.trial_balance(s, auth.tenant(p, merchant_id))
    return {"accounts": b, "sum_minor": sum(b.values())}


@router.get("/me/earnings", tags=["sharer"], dependencies=[Depends(limit_client)])
def my_earnings(request: Request, sf: SF, now: Now) -> dict[str, Any]:
    """A sharer's own statement, by the visitor cookie their phone got at their first code."""
    visitor = request.cookies.get(VISITOR_COOKIE, "")
    if not valid_visitor(visitor):
        raise not_found("no_visitor", "this browser has no share codes yet", "此浏览器还没有分享码")
    return sharers.my_earnings(sf, visitor, int(now() * 1000))
