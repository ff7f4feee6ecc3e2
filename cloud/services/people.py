"""People (issue 13): a shopper's earnings that survive losing the phone.

A phone is known by its visitor id (cloud/services/codes.py: a signed cookie). A person holds any
number of phones (person_phones) and one recovery code: 16 characters of Crockford base32, 80
random bits, shown once; only its SHA-256 is stored. Typing the code on a new phone ("add this
phone") links that phone's visitor id to the person, and from then on every phone of the person
shows all of their earnings, across campaigns.

Invariants:
- A visitor id belongs to at most one person (the primary key of person_phones).
- A recovery code is never stored or logged; a new one replaces the old (the old stops working).
- Recovery guesses are limited like code guesses (cloud/services/ratelimits.py): each try takes a
  token from the client's recovery bucket before the lookup, so a refusal is no oracle; a right
  code gives it back, a wrong one keeps it and also costs the client's wrong-guess budget.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import ApiError, bad_request, not_found
from cloud.services import ledger
from cloud.services.ratelimits import Limit, Limits, RateLimited, client_key
from cloud.store.engine import SessionFactory
from cloud.store.models import (
    Campaign,
    LedgerAccount,
    LedgerEntry,
    LedgerTxn,
    Order,
    Participant,
    Payout,
    Person,
    PersonPhone,
)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_CHARS = 16  # 80 bits
_READ_AS = {"I": "1", "L": "1", "O": "0"}  # what a person may type for what the code shows
# Recovery tries per client address: 10 at once, then 10 an hour. Codes are 80 bits, so this
# bounds load and noise, not the odds (2^-80 per try).
RECOVER = Limit("recover", 10 / 3600, 10)
MAX_PHONES_SHOWN = 50
MAX_PARTICIPANTS = 500


def new_code() -> str:
    """A fresh recovery code, as shown: XXXX-XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_CHARS, 4))


def normalize(typed: str) -> str | None:
    """The code as typed (any case, spaces and dashes, full-width characters, I/L for 1 and O for 0)
    in its canonical 16 characters; None if it cannot be one."""
    text = unicodedata.normalize("NFKC", typed[:80]).upper()
    chars = [_READ_AS.get(ch, ch) for ch in text if ch not in " -_\u3000\t"]
    if len(chars) != CODE_CHARS or any(ch not in ALPHABET for ch in chars):
        return None
    return "".join(chars)


def _digest(canonical: str) -> str:
    return hashlib.sha256(f"mcode recovery v1\n{canonical}".encode()).hexdigest()


def person_of(s: Session, visitor: str) -> int | None:
    return s.scalar(select(PersonPhone.person_id).where(PersonPhone.visitor == visitor))


def phones_of(s: Session, visitor: str) -> list[str]:
    """Every visitor id of the person holding `visitor`; just `visitor` for a phone of no person."""
    pid = person_of(s, visitor)
    if pid is None:
        return [visitor]
    return list(s.scalars(select(PersonPhone.visitor).where(PersonPhone.person_id == pid)
                          .order_by(PersonPhone.linked_at_ms).limit(MAX_PHONES_SHOWN)))


def _link(s: Session, visitor: str, person_id: int, now_ms: int) -> None:
    row = s.get(PersonPhone, visitor)
    if row is None:
        s.add(PersonPhone(visitor=visitor, person_id=person_id, linked_at_ms=now_ms))
    else:  # a phone moves to the person whose code was typed on it
        row.person_id, row.linked_at_ms = person_id, now_ms


def new_recovery(sf: SessionFactory, visitor: str, now_ms: int) -> str:
    """A new recovery code for the phone's person (a person is made for a phone of none); the old
    code stops working. Returns the code: it is shown once and never again."""
    code = new_code()
    digest = _digest(normalize(code) or "")
    with sf.begin() as s:
        pid = person_of(s, visitor)
        person = s.get(Person, pid) if pid is not None else None
        if person is None:
            person = Person(recovery_hash=digest, recovery_made_at_ms=now_ms, created_at_ms=now_ms)
            s.add(person)
            s.flush()
            _link(s, visitor, person.id, now_ms)
        else:
            person.recovery_hash, person.recovery_made_at_ms = digest, now_ms
    return code


def first_recovery(sf: SessionFactory, visitor: str, now_ms: int) -> str | None:
    """The recovery code of a phone that has earnings and no person yet (made now, to be shown
    once); None otherwise."""
    with sf() as s:
        if person_of(s, visitor) is not None or not _has_earnings(s, [visitor]):
            return None
    return new_recovery(sf, visitor, now_ms)


def _bad_code() -> ApiError:
    return bad_request("bad_recovery_code",
                       "a recovery code has 16 letters and digits, like 7K3M-Q9TX-2HRC-WB4N",
                       "恢复码由 16 个字母和数字组成，例如 7K3M-Q9TX-2HRC-WB4N")


def _wrong_code() -> ApiError:
    return not_found("wrong_recovery_code",
                     "no one has this recovery code; check it against where you wrote it down",
                     "没有与此恢复码对应的人；请对照您记下的恢复码再试")


def add_phone(sf: SessionFactory, limits: Limits, address: str, visitor: str, typed: str,
              now_ms: int) -> int:
    """Link this phone (`visitor`) to the person whose recovery code was typed; returns the
    person's id. 400 bad_recovery_code (not a code at all), 404 wrong_recovery_code, 429."""
    client = client_key(address)
    wait = limits.buckets.take(RECOVER, client)
    if wait:
        raise RateLimited(wait, "for recovery codes from this address", "此地址恢复码")
    canonical = normalize(typed)
    if canonical is None:
        limits.buckets.give_back(RECOVER, client)  # a typo of form, not a guess
        raise _bad_code()
    with sf.begin() as s:
        pid = s.scalar(select(Person.id).where(Person.recovery_hash == _digest(canonical)))
        if pid is None:
            limits.buckets.take(limits.address_fail, client)
            raise _wrong_code()
        _link(s, visitor, pid, now_ms)
    limits.buckets.give_back(RECOVER, client)
    return pid


def _pids(s: Session, visitors: list[str]) -> list[int]:
    return list(s.scalars(select(Participant.id).where(Participant.visitor.in_(visitors))
                          .order_by(Participant.id).limit(MAX_PARTICIPANTS)))


def _has_earnings(s: Session, visitors: list[str]) -> bool:
    pids = _pids(s, visitors)
    return bool(pids) and s.scalar(select(LedgerAccount.id).where(
        LedgerAccount.participant_id.in_(pids), LedgerAccount.kind == "sharer").limit(1)) is not None


def currency_of(c: Campaign) -> str:
    return c.currency or "CNY"


def _lines(s: Session, pids: list[int]) -> list[Any]:
    """Every ledger line on these participants' sharer accounts, with its order and campaign."""
    q = (select(LedgerEntry.amount_minor, LedgerEntry.due_at_ms, LedgerTxn.kind, LedgerTxn.order_id,
                LedgerTxn.created_at_ms, LedgerAccount.participant_id, Campaign)
         .join(LedgerTxn, LedgerEntry.txn_id == LedgerTxn.id)
         .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id)
         .join(Campaign, LedgerTxn.campaign_id == Campaign.id)
         .where(LedgerAccount.participant_id.in_(pids), LedgerAccount.kind == "sharer")
         .order_by(LedgerEntry.id))
    return list(s.execute(q).all())


def _payouts(s: Session, pids: list[int], order_ids: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """(order, participant) -> (payout id, level)."""
    if not order_ids:
        return {}
    q = select(Payout.order_id, Payout.participant_id, Payout.id, Payout.level).where(
        Payout.order_id.in_(order_ids), Payout.participant_id.in_(pids))
    return {(o, p): (i, lv) for o, p, i, lv in s.execute(q) if p is not None}


def _history(rows: list[Any], payouts: dict[tuple[int, int], tuple[int, int]], channels: dict[int, str],
             now_ms: int) -> list[dict[str, Any]]:
    """One line per payout (order, participant), newest first; a refund marks its payout."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for amount, due, kind, oid, booked, pid, c in rows:
        key = (oid, pid)
        if kind == "refund" and key in out:
            out[key]["refunded"] = True
            out[key]["net_minor"] += amount
            continue
        pay_id, level = payouts.get(key, (0, 0))
        out[key] = {"payout_id": pay_id, "order_id": oid, "campaign_id": c.id, "base_code": c.base_code,
                    "label": {"zh": c.label_zh, "en": c.label_en}, "level": level,
                    "channel": channels.get(oid, "api"), "amount_minor": amount, "net_minor": amount,
                    "currency": currency_of(c), "booked_at_ms": booked, "due_at_ms": due,
                    "held": due > now_ms, "refunded": False}
    return sorted(out.values(), key=lambda h: (-h["booked_at_ms"], -h["payout_id"]))


def _totals(rows: list[Any], now_ms: int) -> list[dict[str, Any]]:
    """Per currency: balance, held (not yet due), due (available) and when the next held credit
    becomes available."""
    by: dict[str, dict[str, Any]] = {}
    for amount, due, _kind, _oid, _booked, _pid, c in rows:
        t = by.setdefault(currency_of(c), {"currency": currency_of(c), "balance_minor": 0, "held_minor": 0,
                                           "due_minor": 0, "next_due_at_ms": None})
        t["balance_minor"] += amount
        if due > now_ms:
            t["held_minor"] += amount
            if amount > 0 and (t["next_due_at_ms"] is None or due < t["next_due_at_ms"]):
                t["next_due_at_ms"] = due
        else:
            t["due_minor"] += amount
    return [by[k] for k in sorted(by)]


def earnings(sf: SessionFactory, visitor: str, now_ms: int) -> dict[str, Any]:
    """All earnings of the person holding this phone (or of the phone alone): totals per
    currency, a line per payout, and the share codes they came through."""
    with sf() as s:
        phones = phones_of(s, visitor)
        person = person_of(s, visitor)
        pids = _pids(s, phones)
        rows = _lines(s, pids) if pids else []
        order_ids = {r[3] for r in rows if r[3] is not None}
        channels = dict(s.execute(select(Order.id, Order.channel).where(Order.id.in_(order_ids))).all()) \
            if order_ids else {}
        payouts = _payouts(s, pids, order_ids)
        held: list[Any] = list(s.execute(select(Participant, Campaign)
                                         .join(Campaign, Participant.campaign_id == Campaign.id)
                                         .where(Participant.id.in_(pids)).order_by(Participant.id)))
        codes = [{"participant_id": p.id, "campaign_id": c.id, "share_code": f"{c.base_code}-{p.share_code}",
                  "label": {"zh": c.label_zh, "en": c.label_en}} for p, c in held]
    # "visitors" is for the page's own lookups (saved codes); no answer may carry it
    return {"person": person is not None, "phones": len(phones), "visitors": phones, "participant_ids": pids,
            "share_codes": codes, "totals": _totals(rows, now_ms),
            "history": _history(rows, payouts, channels, now_ms)}


def statement(sf: SessionFactory, visitor: str, now_ms: int) -> dict[str, Any]:
    """GET /me/earnings: earnings() with each share code's ledger statement, and the totals summed
    over currencies (balance_minor, held_minor, due_minor) as before people existed."""
    e = earnings(sf, visitor, now_ms)
    with sf() as s:
        owners = dict(s.execute(select(Participant.id, Participant.visitor)
                                .where(Participant.id.in_(e["participant_ids"]))).all())
    sharers = [ledger.sharer_statement(sf, None, pid, now_ms, visitor=owners[pid])
               for pid in e["participant_ids"][:200]]
    return {"sharers": sharers, "person": e["person"], "phones": e["phones"], "totals": e["totals"],
            "history": e["history"],
            **{k: sum(t[k] for t in e["totals"]) for k in ("balance_minor", "held_minor", "due_minor")}}
