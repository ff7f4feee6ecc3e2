"""The double-entry payout ledger: statements (JSON or CSV) and balances.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now
from cloud.http.params import AdminTenant, id_path
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, ledger

router = APIRouter()


def _maybe_csv(data: dict[str, Any], fmt: str, name: str) -> Response | dict[str, Any]:
    if fmt == "csv":
        return PlainTextResponse(ledger.to_csv(data["entries"]), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return data


Fmt = Annotated[str, Query(pattern="^(json|csv)$", description="json, or csv for the entries as CSV")]


@router.get("/ledger/campaigns/{campaign_id}", tags=["ledger"], response_model=o.CampaignStatement,
            responses={200: o.CSV_STATEMENT, **errors(*KEYED, 404)})
def get_campaign_statement(campaign_id: Annotated[int, id_path("campaign")], sf: SF, p: Merchantish, now: Now,
                           format: Fmt = "json") -> Response | dict[str, Any]:
    """Every ledger entry of the campaign's orders, with totals per account, held and due."""
    st = ledger.campaign_statement(sf, p, campaign_id, int(now() * 1000))
    return _maybe_csv(st, format, f"campaign-{campaign_id}")


@router.get("/ledger/sharers/{participant_id}", tags=["ledger"], response_model=o.SharerStatement,
            responses={200: o.CSV_STATEMENT, **errors(*KEYED, 404)})
def get_sharer_statement(participant_id: Annotated[int, id_path("participant")], sf: SF, p: Merchantish,
                         now: Now, format: Fmt = "json") -> Response | dict[str, Any]:
    """A sharer's ledger entries and totals, held and due."""
    st = ledger.sharer_statement(sf, p, participant_id, int(now() * 1000))
    return _maybe_csv(st, format, f"sharer-{participant_id}")


@router.get("/ledger/balances", tags=["ledger"], response_model=o.Balances, responses=errors(*KEYED))
def get_balances(sf: SF, p: Merchantish, merchant_id: AdminTenant = None) -> dict[str, Any]:
    """The balance of every account of the tenant (they sum to zero)."""
    return ledger.balances(sf, auth.tenant(p, merchant_id))
