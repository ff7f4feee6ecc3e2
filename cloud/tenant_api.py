"""The tenant API: what merchant, technician and gateway keys may do, each inside its own tenant
(cloud/auth.py). Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Header, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from cloud import auth, campaigns, chain, ledger, orders, provision, sharers
from cloud import schemas as o
from cloud.auth import Principal
from cloud.codes import VISITOR_COOKIE, valid_visitor
from cloud.deps import SF, GatewayKey, Merchantish, Techish, clock
from cloud.errors import not_found
from cloud.inputs import (
    HEX_ID,
    AccountIn,
    CampaignIn,
    CampaignPatch,
    DeviceIn,
    KeyIn,
    LocationIn,
    OrderIn,
    checked,
)
from cloud.ratelimit import limit_client
from cloud.schemas import I32_MAX, KEYED, errors

router = APIRouter()

Now = Annotated[Callable[[], float], Depends(clock)]
VisitorCookie = Annotated[str, Cookie(alias=VISITOR_COOKIE, description="the shopper's visitor token")]
GatewayIdQuery = Annotated[str | None, Query(description="admin keys only: the gateway",
                                             json_schema_extra=checked(pattern=HEX_ID))]
AdminTenant = Annotated[int | None, Query(ge=1, le=I32_MAX, description="the tenant, for admin keys only")]


def _id(what: str) -> Any:
    return Path(ge=1, le=I32_MAX, description=f"the {what}'s id")


# registry ----------------------------------------------------------------------------------------

@router.get("/campaigns", tags=["registry"], response_model=o.CampaignList, responses=errors(*KEYED))
def list_campaigns(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"campaigns": campaigns.list_for(sf, auth.tenant(p, merchant_id))}


@router.post("/campaigns", status_code=201, tags=["registry"], response_model=o.CampaignOut,
             responses=errors(*KEYED, 404, 409))
def create_campaign(body: CampaignIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    """Rents a base code for a new campaign (409 base_code_taken while another campaign holds it)."""
    f = body.model_dump()
    return campaigns.create(sf, auth.tenant(p, f.pop("merchant_id")), **f)


@router.get("/campaigns/{campaign_id}", tags=["registry"], response_model=o.CampaignOut,
            responses=errors(*KEYED, 404))
def get_campaign(campaign_id: Annotated[int, _id("campaign")], sf: SF, p: Techish) -> dict[str, Any]:
    return campaigns.get(sf, p, campaign_id)


@router.patch("/campaigns/{campaign_id}", tags=["registry"], response_model=o.CampaignOut,
              responses=errors(*KEYED, 404, 409))
def update_campaign(campaign_id: Annotated[int, _id("campaign")], body: CampaignPatch, sf: SF,
                    p: Merchantish) -> dict[str, Any]:
    """Changes the fields given; orders placed before keep the rule they were paid by."""
    return campaigns.update(sf, p, campaign_id, body.model_dump(exclude_unset=True))


@router.post("/campaigns/{campaign_id}/release", tags=["registry"], response_model=o.CampaignOut,
             responses=errors(*KEYED, 404))
def release_campaign(campaign_id: Annotated[int, _id("campaign")], sf: SF, p: Merchantish) -> dict[str, Any]:
    """Gives the base code back: its codes stop resolving; orders and ledger stay."""
    return campaigns.release(sf, p, campaign_id)


@router.get("/locations", tags=["registry"], response_model=o.LocationList, responses=errors(*KEYED))
def list_locations(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"locations": campaigns.list_locations(sf, auth.tenant(p, merchant_id))}


@router.post("/locations", status_code=201, tags=["registry"], response_model=o.LocationOut,
             responses=errors(*KEYED, 404))
def create_location(body: LocationIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    return campaigns.create_location(sf, auth.tenant(p, body.merchant_id), body.name, body.address)


@router.get("/locations/{location_id}", tags=["registry"], response_model=o.LocationOut,
            responses=errors(*KEYED, 404))
def get_location(location_id: Annotated[int, _id("location")], sf: SF, p: Techish) -> dict[str, Any]:
    return campaigns.get_location(sf, p, location_id)


@router.get("/devices", tags=["registry"], response_model=o.DeviceList, responses=errors(*KEYED))
def list_devices(sf: SF, p: Techish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"devices": provision.list_devices(sf, auth.tenant(p, merchant_id))}


@router.post("/devices", status_code=201, tags=["registry"], response_model=o.DeviceConfig,
             response_model_exclude_unset=True, responses=errors(*KEYED, 404, 409))
def create_device(body: DeviceIn, sf: SF, p: Techish) -> dict[str, Any]:
    """Registers a device and returns its flashing config, device key included."""
    return provision.create_device(sf, as_=p, **body.model_dump())


@router.get("/devices/{device_id}", tags=["registry"], response_model=o.DeviceOut,
            responses=errors(*KEYED, 404))
def get_device(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    return provision.get_device(sf, p, device_id)


@router.get("/devices/{device_id}/config", tags=["registry"], response_model=o.DeviceConfig,
            response_model_exclude_unset=True, responses=errors(*KEYED, 404))
def get_device_config(device_id: str, sf: SF, p: Techish) -> dict[str, Any]:
    """The flashing config with the device key: for the technician at the device."""
    return provision.get_device(sf, p, device_id, with_key=True)


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


@router.get("/keys", tags=["keys"], response_model=o.KeyList, responses=errors(*KEYED))
def list_keys(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    return {"keys": auth.list_keys(sf, auth.tenant(p, merchant_id))}


@router.post("/keys", status_code=201, tags=["keys"], response_model=o.KeyIssued,
             responses=errors(*KEYED, 404))
def create_key(body: KeyIn, sf: SF, p: Merchantish) -> dict[str, Any]:
    """A merchant issues keys for its own tenant: more merchant keys, technicians, gateways."""
    if body.role == auth.ADMIN:
        raise auth.forbidden("admin keys come from the admin API", "管理员密钥须通过管理接口签发")
    return auth.issue_key(sf, body.role, auth.tenant(p, body.merchant_id), body.label, body.gateway_id)


@router.delete("/keys/{key_id}", tags=["keys"], response_model=o.KeyRevoked, responses=errors(*KEYED, 404))
def revoke_key(key_id: Annotated[int, _id("key")], sf: SF, p: Merchantish) -> dict[str, Any]:
    """Revokes a key at once; revoking twice answers like the first time."""
    return auth.revoke_key(sf, p, key_id)


# orders and chains -------------------------------------------------------------------------------

_REPLAYED = {"Idempotent-Replayed": {"description": "true if this answer repeats an earlier one",
                                     "schema": {"type": "string", "enum": ["true", "false"]}}}


@router.post("/orders", status_code=201, tags=["orders"], response_model=o.OrderOut,
             responses={201: {"headers": _REPLAYED}, **errors(*KEYED, 404, 409)})
def place_order(body: OrderIn, sf: SF, p: Merchantish, now: Now,
                idempotency_key: Annotated[str, Header(description="1 to 200 characters; a repeat "
                                                       "returns the first answer")] = "") -> JSONResponse:
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
        return chain.entry_for(s, p, entry_id)[1].merchant_id


@router.get("/orders/{order_id}", tags=["orders"], response_model=o.OrderDetail,
            responses=errors(*KEYED, 404))
def get_order(order_id: Annotated[int, _id("order")], sf: SF, p: Merchantish) -> dict[str, Any]:
    """The order as placed, its status, and the chain the rule saw."""
    return orders.get_order(sf, p, order_id)


@router.post("/orders/{order_id}/refund", tags=["orders"], response_model=o.RefundOut,
             responses={200: {"headers": _REPLAYED}, **errors(*KEYED, 404)})
def refund_order(order_id: Annotated[int, _id("order")], sf: SF, p: Merchantish, now: Now) -> JSONResponse:
    """Reverses every payout of the order; refunding twice answers like the first time."""
    answer, replayed = orders.refund(sf, p, order_id, int(now() * 1000))
    return JSONResponse(answer, headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.get("/entries/{entry_id}/chain", tags=["orders"], response_model=o.ChainOut,
            responses=errors(*KEYED, 404))
def get_entry_chain(entry_id: str, sf: SF, p: Merchantish) -> dict[str, Any]:
    """Who brought whom: the display (and its location), each sharer, the shopper."""
    with sf() as s:
        return chain.describe(s, chain.entry_for(s, p, entry_id)[0])


@router.post("/sharers/{participant_id}/account", tags=["orders"], response_model=o.AccountLinked,
             responses=errors(*KEYED, 404, 409))
def link_sharer_account(participant_id: Annotated[int, _id("participant")], body: AccountIn, sf: SF,
                        p: Merchantish) -> dict[str, Any]:
    """Says that a sharer holds an account the merchant verified: one person in every chain."""
    return sharers.link_account(sf, p, participant_id, body.account_ref)


# ledger --------------------------------------------------------------------------------------------

def _maybe_csv(data: dict[str, Any], fmt: str, name: str) -> Response | dict[str, Any]:
    if fmt == "csv":
        return PlainTextResponse(ledger.to_csv(data["entries"]), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return data


Fmt = Annotated[str, Query(pattern="^(json|csv)$", description="json, or csv for the entries as CSV")]


@router.get("/ledger/campaigns/{campaign_id}", tags=["ledger"], response_model=o.CampaignStatement,
            responses={200: o.CSV_STATEMENT, **errors(*KEYED, 404)})
def get_campaign_statement(campaign_id: Annotated[int, _id("campaign")], sf: SF, p: Merchantish, now: Now,
                           format: Fmt = "json") -> Response | dict[str, Any]:
    """Every ledger entry of the campaign's orders, with totals per account, held and due."""
    st = ledger.campaign_statement(sf, p, campaign_id, int(now() * 1000))
    return _maybe_csv(st, format, f"campaign-{campaign_id}")


@router.get("/ledger/sharers/{participant_id}", tags=["ledger"], response_model=o.SharerStatement,
            responses={200: o.CSV_STATEMENT, **errors(*KEYED, 404)})
def get_sharer_statement(participant_id: Annotated[int, _id("participant")], sf: SF, p: Merchantish,
                         now: Now, format: Fmt = "json") -> Response | dict[str, Any]:
    """A sharer's ledger entries and totals, held and due."""
    st = ledger.sharer_statement(sf, p, participant_id, int(now() * 1000))
    return _maybe_csv(st, format, f"sharer-{participant_id}")


@router.get("/ledger/balances", tags=["ledger"], response_model=o.Balances, responses=errors(*KEYED))
def get_balances(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    """The balance of every account of the tenant (they sum to zero)."""
    with sf() as s:
        b = ledger.trial_balance(s, auth.tenant(p, merchant_id))
    return {"accounts": b, "sum_minor": sum(b.values())}


@router.get("/me/earnings", tags=["sharer"], dependencies=[Depends(limit_client)],
            response_model=o.MyEarnings, responses=errors(404, 429))
def get_my_earnings(sf: SF, now: Now, visitor: VisitorCookie = "") -> dict[str, Any]:
    """A sharer's own statement, by the visitor cookie their phone got at their first code (no key)."""
    if not valid_visitor(visitor):
        raise not_found("no_visitor", "this browser has no share codes yet", "此浏览器还没有分享码")
    return sharers.my_earnings(sf, visitor, int(now() * 1000))
