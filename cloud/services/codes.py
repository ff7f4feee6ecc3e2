"""Code resolution (码解析): a typed M-code becomes an entry, a shopper's arrival. Also personal
share codes: a shopper becomes a sharer (酬客) with a code of their own."""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.services.provision import SHARE_CODE_DIGITS
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Campaign, Device, Entry, Participant
from protocol.keys import rotation_key
from protocol.rotation import Rotor, locate, split_code, window

VISITOR_COOKIE = "mcode_visitor"
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SHARE_CODE_TRIES = 20


def new_visitor() -> str:
    return secrets.token_urlsafe(16)


def valid_visitor(token: str | None) -> bool:
    return bool(token) and _VISITOR.match(token or "") is not None


def _malformed(code: str) -> ApiError:
    return bad_request("malformed_code", f"{code[:40]!r} is not an M-code like 4919-27",
                       f"{code[:40]!r} 不是形如 4919-27 的 M码")


def _unknown(code: str) -> ApiError:
    return not_found("unknown_code", f"no campaign or display answers to {code[:40]}",
                     f"没有与 {code[:40]} 对应的活动或显示屏")


def _expired(code: str) -> ApiError:
    return ApiError(410, "code_expired",
                    f"{code[:40]} is not showing now; look at the display again and type the current code",
                    f"{code[:40]} 已过期；请再看一眼显示屏，输入当前的码")


def match_window(device_key: bytes, slot: int, slots: int, digits: int, r: int, w: int) -> int | None:
    """The window among w, w-1, w+1 (nearest first) whose r(w) equals r, or None."""
    rotor = Rotor(rotation_key(device_key), slot, slots, digits)
    for cand in (w, w - 1, w + 1):
        if cand >= 0 and rotor.secret(cand) == r:
            return cand
    return None


def _not_running(code: str, c: Campaign, now_ms_: int) -> ApiError | None:
    if c.starts_at_ms is not None and now_ms_ < c.starts_at_ms:
        return ApiError(410, "campaign_not_started", f"the campaign of {code[:40]} has not started yet",
                        f"{code[:40]} 所属的活动尚未开始")
    if c.ends_at_ms is not None and now_ms_ >= c.ends_at_ms:
        return ApiError(410, "campaign_ended", f"the campaign of {code[:40]} has ended",
                        f"{code[:40]} 所属的活动已结束")
    return None


def _via(e: Entry) -> str:
    if e.device_id is None:
        return "share"
    return "printed" if e.window is None else "display"


def _entry_dict(e: Entry, c: Campaign) -> dict[str, Any]:
    return {"entry_id": e.id, "visitor": e.visitor, "campaign": c.id, "base_code": c.base_code,
            "device_id": e.device_id, "root_device_id": e.root_device_id, "depth": e.depth,
            "window": e.window, "code": e.code, "via": _via(e),
            "landing": {"zh": c.label_zh, "en": c.label_en},
            "landing_text": {"zh": c.landing_zh, "en": c.landing_en}}


def resolve(sf: SessionFactory, code: str, visitor: str | None, now: float) -> dict[str, Any]:
    """Resolve a typed code and record the entry. `visitor` is the shopper's token if they have
    one (a new one is drawn otherwise; the answer carries it)."""
    parts = split_code(code) if code.isascii() else None
    if parts is None:
        raise _malformed(code)
    base, suffix = parts
    visitor = visitor if visitor and valid_visitor(visitor) else new_visitor()
    with sf.begin() as s:
        c = s.scalar(select(Campaign).where(Campaign.base_code == base, Campaign.released_at_ms.is_(None)))
        if c is None:
            raise _unknown(code)
        stopped = _not_running(code, c, int(now * 1000))
        if stopped is not None:
            raise stopped
        if len(suffix) == c.digits:
            loc = locate(int(suffix), c.slots, c.digits)
            if loc is None:
                raise _unknown(code)
            slot, r = loc
            d = s.scalar(select(Device).where(Device.campaign_id == c.id, Device.slot == slot))
            if d is None:
                raise _unknown(code)
            w: int | None
            if d.printed:  # a printed code shows r = 0 for ever
                if r != 0:
                    raise _unknown(code)
                w = None
            else:
                w = match_window(d.device_key, slot, c.slots, c.digits, r, window(now, c.period_s))
                if w is None:
                    raise _expired(code)
            e = Entry(id=secrets.token_hex(16), campaign_id=c.id, code=f"{base}-{suffix}", device_id=d.id,
                      window=w, parent_participant_id=None, root_device_id=d.id, depth=0, visitor=visitor,
                      created_at_ms=now_ms())
        elif len(suffix) == SHARE_CODE_DIGITS:
            p = s.scalar(select(Participant).where(Participant.campaign_id == c.id,
                                                   Participant.share_code == suffix))
            if p is None:
                raise _unknown(code)
            parent = s.get(Entry, p.entry_id)
            assert parent is not None  # participants.entry_id is a foreign key
            # The new entry points at a participant that exists already, and participants are only
            # made from entries that exist already: every chain ends at a display, with no cycle.
            e = Entry(id=secrets.token_hex(16), campaign_id=c.id, code=f"{base}-{suffix}", device_id=None,
                      window=None, parent_participant_id=p.id, root_device_id=parent.root_device_id,
                      depth=parent.depth + 1, visitor=visitor, created_at_ms=now_ms())
        else:
            raise _malformed(code)
        s.add(e)
        return _entry_dict(e, c)


def share(sf: SessionFactory, entry_id: str) -> dict[str, Any]:
    """The shopper of `entry_id` becomes a sharer with a personal code BASE-NNNNNN (6 random
    digits, unique per campaign). Asking again returns the same code."""
    for _ in range(SHARE_CODE_TRIES):
        try:
            with sf.begin() as s:
                e = s.get(Entry, entry_id)
                if e is None:
                    raise not_found("unknown_entry", "no such entry", "进店记录不存在")
                c = s.get(Campaign, e.campaign_id)
                assert c is not None
                p = s.scalar(select(Participant).where(Participant.entry_id == e.id))
                if p is None:
                    drawn = f"{secrets.randbelow(10 ** SHARE_CODE_DIGITS):06d}"
                    p = Participant(campaign_id=c.id, entry_id=e.id, visitor=e.visitor, share_code=drawn,
                                    created_at_ms=now_ms())
                    s.add(p)
                    s.flush()
                return {"participant_id": p.id, "entry_id": e.id, "base_code": c.base_code,
                        "share_code": f"{c.base_code}-{p.share_code}"}
        except IntegrityError:
            continue  # the drawn code was taken (or a concurrent share won): draw again / read it
    raise conflict("share_code_exhausted", "could not draw a free share code", "无法分配分享码")
