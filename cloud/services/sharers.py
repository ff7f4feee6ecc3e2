"""Sharers (酬客): linking participants to an account the merchant verified, and a sharer's own view
of what they earned, by the visitor token their phone holds."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import bad_request, conflict, not_found
from cloud.services import ledger
from cloud.services.auth import Principal, sees
from cloud.store import vault
from cloud.store.engine import SessionFactory, insert_ignore, now_ms
from cloud.store.models import Campaign, Participant, SharerAccount

MAX_PARTICIPANTS_SHOWN = 200


def account_ref_digest(merchant_id: int, ref: str) -> bytes:
    """SHA-256 of the merchant's reference (a member number, a phone number), normalized so that
    spaces and case do not make two accounts of one. Never stored as it is: phone numbers are few
    enough to hash them all, so the stored form is an HMAC of this under a key derived from the
    master key (vault.account_refs), which a stolen database does not hold."""
    norm = "".join(ref.split()).lower()
    return hashlib.sha256(f"{merchant_id}\n{norm}".encode()).digest()


def _account(s: Session, merchant_id: int, ref: str) -> SharerAccount:
    """The account of `ref`, made if new. One keyed under an older master key is found and keyed
    again under the current one."""
    refs = vault.of(s).account_refs(account_ref_digest(merchant_id, ref))
    found = s.scalars(select(SharerAccount).where(SharerAccount.merchant_id == merchant_id,
                                                  SharerAccount.ref_hash.in_(refs))).all()
    if found:
        acc = min(found, key=lambda a: refs.index(a.ref_hash))
        acc.ref_hash = refs[0]  # a no-op unless it was keyed under an older master key
        return acc
    insert_ignore(s, SharerAccount.__table__, [  # type: ignore[arg-type]
        {"merchant_id": merchant_id, "ref_hash": refs[0], "created_at_ms": now_ms()}],
        ["merchant_id", "ref_hash"])
    made = s.scalar(select(SharerAccount).where(SharerAccount.merchant_id == merchant_id,
                                                SharerAccount.ref_hash == refs[0]))
    assert made is not None
    return made


def link_account(sf: SessionFactory, p: Principal, participant_id: int, account_ref: str) -> dict[str, Any]:
    """Say that a participant is the holder of a verified account. Participants with one account
    (or one visitor token) are one node in every share chain."""
    if not 1 <= len(account_ref.strip()) <= 200:
        raise bad_request("bad_account_ref", "account_ref must be 1 to 200 characters",
                          "账户标识须为 1 至 200 个字符")
    with sf.begin() as s:
        row = s.execute(select(Participant, Campaign).join(Campaign, Participant.campaign_id == Campaign.id)
                        .where(Participant.id == participant_id)).first()
        if row is None or not sees(p, row[1].merchant_id):
            raise not_found("unknown_sharer", "no such sharer", "分享者不存在")
        part, c = row
        acc = _account(s, c.merchant_id, account_ref)
        if part.account_id not in (None, acc.id):
            raise conflict("account_already_linked", "this sharer is linked to another account",
                           "该分享者已关联另一个账户")
        part.account_id = acc.id
        return {"participant_id": part.id, "account_id": acc.id}


def my_earnings(sf: SessionFactory, visitor: str, now: int) -> dict[str, Any]:
    """Every share code this visitor token holds, each with its statement."""
    with sf() as s:
        pids = list(s.scalars(select(Participant.id).where(Participant.visitor == visitor)
                              .order_by(Participant.id).limit(MAX_PARTICIPANTS_SHOWN)))
    statements = [ledger.sharer_statement(sf, None, pid, now, visitor=visitor) for pid in pids]
    return {"sharers": statements,
            "balance_minor": sum(st["balance_minor"] for st in statements),
            "held_minor": sum(st["held_minor"] for st in statements),
            "due_minor": sum(st["due_minor"] for st in statements)}
