"""The trust log (docs/trust.md): its latest checkpoint (cosigned), inclusion and consistency
proofs, witnesses' cosignatures, and payouts' proof bundles. The log routes are keyless and
rate-limited per client address, like the shopper's: they reveal hashes and signed sizes only. A
payout's bundle goes to the merchant of its order (key) or to the sharer it pays (visitor cookie)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.errors import ApiError, not_found
from cloud.http.deps import SF, Merchantish, SettingsDep
from cloud.http.params import VisitorCookie, id_path
from cloud.http.ratelimit import limit_client
from cloud.http.schemas import KEYED, errors
from cloud.services import auth, codes, tlog, tlog_bundle
from cloud.settings import Settings
from protocol import note
from protocol.bundle import FORMAT

router = APIRouter()

MAX_SIZE = tlog.MAX_PROOF_SIZE
NOTE = {"text/plain": {"schema": {"type": "string"},
                       "example": "mcode.local/log\n5\nNBUV...=\n\n— mcode.local/log ...\n"}}
BUNDLE = {"content": {"application/json": {"schema": {"type": "object"}}},
          "description": f"A proof bundle ({FORMAT}) to check with `mcode verify`"}


class ProofOut(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    proof: list[str] = Field(description="base64 SHA-256 hashes, from the leaf's level upward (RFC 9162)")


class InclusionOut(ProofOut):
    index: int
    size: int


class ConsistencyOut(ProofOut):
    from_: int = Field(alias="from", serialization_alias="from")
    to: int


def _b64(hashes: list[bytes]) -> list[str]:
    import base64

    return [base64.b64encode(h).decode() for h in hashes]


def signer(request: Request) -> note.Signer:
    """The log's signer, loaded (or made) on first use and kept on the app."""
    found: note.Signer | None = getattr(request.app.state, "log_signer", None)
    if found is None:
        st: Settings = request.app.state.settings
        try:
            found = tlog.settings_signer(st)
        except (OSError, ValueError) as e:
            raise ApiError(500, "log_key_unusable", f"the log's key file cannot be used: {e}",
                           f"日志密钥文件无法使用：{e}") from None
        request.app.state.log_signer = found
    return found


Signer = Annotated[note.Signer, Depends(signer)]


@router.get("/log/checkpoint", tags=["public"], dependencies=[Depends(limit_client)],
            response_class=PlainTextResponse, responses={200: {"content": NOTE}, **errors(429)})
def get_checkpoint(sf: SF, log_key: Signer) -> PlainTextResponse:
    """The latest checkpoint (C2SP tlog-checkpoint in a signed note), with the cosignatures of
    witnesses the cloud holds for it."""
    return PlainTextResponse(tlog.latest(sf, log_key))


@router.get("/log/proof/inclusion", tags=["public"], dependencies=[Depends(limit_client)],
            response_model=InclusionOut, responses=errors(400, 429))
def get_inclusion_proof(sf: SF, index: Annotated[int, Query(ge=0, lt=MAX_SIZE)],
                        size: Annotated[int, Query(ge=1, le=MAX_SIZE)]) -> InclusionOut:
    """RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
    return InclusionOut(index=index, size=size, proof=_b64(tlog.inclusion(sf, index, size)))


@router.get("/log/proof/consistency", tags=["public"], dependencies=[Depends(limit_client)],
            response_model=ConsistencyOut, response_model_by_alias=True, responses=errors(400, 429))
def get_consistency_proof(sf: SF, old: Annotated[int, Query(alias="from", ge=0, le=MAX_SIZE)],
                          to: Annotated[int, Query(ge=0, le=MAX_SIZE)]) -> ConsistencyOut:
    """RFC 9162 consistency proof from the tree of `from` leaves to the tree of `to` leaves."""
    proof = _b64(tlog.consistency(sf, old, to))
    return ConsistencyOut.model_validate({"from": old, "to": to, "proof": proof})


@router.post("/log/cosignatures", status_code=204, tags=["public"], dependencies=[Depends(limit_client)],
             responses=errors(400, 409, 429),
             openapi_extra={"requestBody": {"required": True, "content": NOTE}})
async def post_cosignature(request: Request, sf: SF, st: SettingsDep) -> Response:
    """A witness's cosignature (tlog-cosignature v1): the checkpoint text, a blank line and its
    signature line. Kept if it verifies against a witness key of the settings (witness_keys) and
    the checkpoint is one this log signed."""
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    try:
        witnesses = tlog.witness_keys(st.witness_keys)
    except note.NoteError as e:
        raise ApiError(500, "witness_keys_unusable", f"the witness_keys setting: {e}",
                       f"witness_keys 设置有误：{e}") from None
    await run_in_threadpool(tlog.add_cosignature, sf, body, witnesses)
    return Response(status_code=204)


@router.get("/ledger/payouts/{payout_id}/proof", tags=["ledger"], response_class=Response,
            responses={200: BUNDLE, **errors(*KEYED, 404, 409)})
def get_payout_proof(payout_id: Annotated[int, id_path("payout")], sf: SF, p: Merchantish,
                     log_key: Signer) -> Response:
    """The payout's proof bundle: its posting, order, share chain, display code and the device's
    taps as batched, each with its inclusion proof in one checkpoint (docs/trust.md)."""
    merchant = None if p.role == auth.ADMIN else p.merchant_id
    text = tlog_bundle.payout_bundle(sf, payout_id, tlog_bundle.merchant_may_see(merchant),
                                     lambda: tlog.publish(sf, log_key))
    return _bundle(text, payout_id)


@router.get("/me/payouts/{payout_id}/proof", tags=["sharer"], dependencies=[Depends(limit_client)],
            response_class=Response, responses={200: BUNDLE, **errors(404, 409, 429)})
def get_my_payout_proof(payout_id: Annotated[int, id_path("payout")], sf: SF, st: SettingsDep,
                        log_key: Signer, visitor: VisitorCookie = None) -> Response:
    """A sharer's own payout's proof bundle, by the visitor cookie of any of their phones (no key)."""
    vid = codes.visitor_from_token(codes.visitor_key(st.visitor_secret, st.admin_key), visitor)
    if vid is None:
        raise not_found("unknown_payout", "no such payout", "该收益不存在")
    text = tlog_bundle.payout_bundle(sf, payout_id, tlog_bundle.sharer_may_see(vid),
                                     lambda: tlog.publish(sf, log_key))
    return _bundle(text, payout_id)


def _bundle(text: str, payout_id: int) -> Response:
    return Response(text, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="payout-{payout_id}.json"'})
