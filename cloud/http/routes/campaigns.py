"""Campaigns: a merchant rents a base code (基础码) for each.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now, Techish
from cloud.http.inputs import CampaignIn, CampaignPatch
from cloud.http.params import AdminTenant, id_path
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, campaign_versions, campaigns

router = APIRouter()


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
def get_campaign(campaign_id: Annotated[int, id_path("campaign")], sf: SF, p: Techish) -> dict[str, Any]:
    return campaigns.get(sf, p, campaign_id)


@router.patch("/campaigns/{campaign_id}", tags=["registry"], response_model=o.CampaignOut,
              responses=errors(*KEYED, 404, 409))
def update_campaign(campaign_id: Annotated[int, id_path("campaign")], body: CampaignPatch, sf: SF,
                    p: Merchantish, now: Now) -> dict[str, Any]:
    """Changes the fields given, published at once as the campaign's next version (GET
    .../versions); orders placed before keep the rule and version they were paid by."""
    who = campaign_versions.actor(sf, None, p.key_id)
    return campaign_versions.patch(sf, p, campaign_id, body.model_dump(exclude_unset=True), who,
                                   int(now() * 1000))


@router.post("/campaigns/{campaign_id}/release", tags=["registry"], response_model=o.CampaignOut,
             responses=errors(*KEYED, 404))
def release_campaign(campaign_id: Annotated[int, id_path("campaign")], sf: SF,
                     p: Merchantish) -> dict[str, Any]:
    """Gives the base code back: its codes stop resolving; orders and ledger stay."""
    return campaigns.release(sf, p, campaign_id)
