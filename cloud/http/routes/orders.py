"""Orders (sales attributed to entries), refunds, share chains, sharer accounts.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now
from cloud.http.inputs import AccountIn, OrderIn
from cloud.http.params import id_path
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, chain, orders, sharers

router = APIRouter()


_REPLAYED = {"Idempotent-Replayed": {"description": "true if this answer repeats an earlier one",
                                     "schema": {"type": "string", "enum": ["true", "false"]}}}


@router.post("/orders", status_code=201, tags=["orders"], response_model=o.OrderOut,
             responses={201: {"headers": _REPLAYED}, **errors(*KEYED, 404, 409)})
def place_order(body: OrderIn, sf: SF, p: Merchantish, now: Now,
                idempotency_key: Annotated[str, Header(description="1 to 200 characters; a repeat "
                                                       "returns the first answer")] = "") -> JSONResponse:
    """Records a sale; a repeat with the same Idempotency-Key returns the first answer."""
    answer, replayed = orders.place_order(sf, auth.tenant(p, chain.entry_tenant(sf, p, body.entry_id)),
                                          idempotency_key, body.entry_id, body.amount_minor,
                                          int(now() * 1000))
    return JSONResponse(answer, status_code=201,
                        headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.get("/orders/{order_id}", tags=["orders"], response_model=o.OrderDetail,
            responses=errors(*KEYED, 404))
def get_order(order_id: Annotated[int, id_path("order")], sf: SF, p: Merchantish) -> dict[str, Any]:
    """The order as placed, its status, and the chain the rule saw."""
    return orders.get_order(sf, p, order_id)


@router.post("/orders/{order_id}/refund", tags=["orders"], response_model=o.RefundOut,
             responses={200: {"headers": _REPLAYED}, **errors(*KEYED, 404)})
def refund_order(order_id: Annotated[int, id_path("order")], sf: SF, p: Merchantish,
                 now: Now) -> JSONResponse:
    """Reverses every payout of the order; refunding twice answers like the first time."""
    answer, replayed = orders.refund(sf, p, order_id, int(now() * 1000))
    return JSONResponse(answer, headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.get("/entries/{entry_id}/chain", tags=["orders"], response_model=o.ChainOut,
            responses=errors(*KEYED, 404))
def get_entry_chain(entry_id: str, sf: SF, p: Merchantish) -> dict[str, Any]:
    """Who brought whom: the display (and its location), each sharer, the shopper."""
    return chain.describe_entry(sf, p, entry_id)


@router.post("/sharers/{participant_id}/account", tags=["orders"], response_model=o.AccountLinked,
             responses=errors(*KEYED, 404, 409))
def link_sharer_account(participant_id: Annotated[int, id_path("participant")], body: AccountIn, sf: SF,
                        p: Merchantish) -> dict[str, Any]:
    """Says that a sharer holds an account the merchant verified: one person in every chain."""
    return sharers.link_account(sf, p, participant_id, body.account_ref)
