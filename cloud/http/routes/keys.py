"""A merchant's API keys: issue, list, revoke.
Another tenant's object answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish
from cloud.http.inputs import KeyIn
from cloud.http.params import AdminTenant, id_path
from cloud.http.schemas import KEYED, errors
from cloud.services import auth

router = APIRouter()


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
def revoke_key(key_id: Annotated[int, id_path("key")], sf: SF, p: Merchantish) -> dict[str, Any]:
    """Revokes a key at once; revoking twice answers like the first time."""
    return auth.revoke_key(sf, p, key_id)
