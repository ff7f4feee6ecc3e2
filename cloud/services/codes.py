"""Code resolution (码解析): a typed M-code becomes an entry, a shopper's arrival. Also personal
share codes: a shopper becomes a sharer (酬客) with a code of their own, and the visitor tokens a
shopper's phone keeps as a cookie (issued and signed here, never taken from the client as is)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.services import tlog
from cloud.services.provision import SHARE_CODE_DIGITS
from cloud.services.ratelimits import Limits
from cloud.store import vault
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Campaign, Device, Entry, Participant
from protocol.keys import rotation_key
from protocol.rotation import (
    TYPED_MAX,
    Rotor,
    base_prefixes,
    locate,
    normalize_code,
    split_code,
    split_digits,
    window,
)

VISITOR_COOKIE = "mcode_visitor"
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # a visitor id, as stored
_SIG_CHARS = 22  # base64url of the first 16 bytes of an HMAC-SHA256: 128 bits
SHARE_CODE_TRIES = 20
MAX_BASE_DIGITS = 12  # campaigns.create
MAX_CODE_LEN = MAX_BASE_DIGITS + 1 + SHARE_CODE_DIGITS  # display suffixes have at most 5 digits
GUESS_MISSES = ("unknown_code", "code_expired")  # what a wrong guess at a rented campaign gets


def new_visitor() -> str:
    """A visitor id: 128 random bits. Stored with entries and participants; the cookie carries it
    signed (visitor_token)."""
    return secrets.token_urlsafe(16)


def valid_visitor(visitor: str | None) -> bool:
    return bool(visitor) and _VISITOR.match(visitor or "") is not None


def visitor_key(visitor_secret: str, admin_key: str) -> bytes:
    """The HMAC key of visitor tokens: from settings (visitor_secret, else derived from admin_key),
    the same in every API process. Neither set: ApiError 503, no token can be issued or checked."""
    secret = visitor_secret or admin_key
    if not secret:
        raise ApiError(503, "visitor_secret_unset",
                       "the server has no visitor_secret (MCODE_CLOUD_VISITOR_SECRET)",
                       "服务器未配置访客密钥（MCODE_CLOUD_VISITOR_SECRET）")
    label = b"mcode visitor v1" if visitor_secret else b"mcode visitor v1 from admin key"
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def _visitor_sig(key: bytes, visitor: str) -> str:
    mac = hmac.new(key, visitor.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def visitor_token(key: bytes, visitor: str) -> str:
    """What the cookie holds: the visitor id and the server's signature of it."""
    return f"{visitor}.{_visitor_sig(key, visitor)}"


def visitor_from_token(key: bytes, token: str | None) -> str | None:
    """The visitor id of a token this server signed; None for anything else (a token the client
    made up, an old unsigned one, one signed under another secret)."""
    if not token or len(token) > 64 + 1 + _SIG_CHARS:
        return None
    visitor, _, sig = token.rpartition(".")
    if not valid_visitor(visitor) or len(sig) != _SIG_CHARS:
        return None
    return visitor if hmac.compare_digest(sig, _visitor_sig(key, visitor)) else None


def parse_code(code: str) -> tuple[str, str]:
    """(base, suffix) of a well-formed code; anything longer than the longest possible code is
    refused before it is even split (400 malformed_code)."""
    parts = split_code(code) if len(code) <= MAX_CODE_LEN and code.isascii() else None
    if parts is None or len(parts[0]) > MAX_BASE_DIGITS or len(parts[1]) > SHARE_CODE_DIGITS:
        raise _malformed(code)
    return parts


def read_code(s: Session, typed: str) -> tuple[str, str]:
    """(base, suffix) of what a person typed (protocol.rotation.normalize_code: full-width digits,
    other dashes, spaces); suffix "" for a bare base code. Digits only are split by the rented
    base codes that prefix them, in one indexed lookup (split_digits; docs/protocol.md). 400
    malformed_code, or 404 unknown_code when no rented base fits."""
    code = normalize_code(typed) if len(typed) <= TYPED_MAX else None
    if code is None:
        raise _malformed(typed)
    if "-" in code:
        return parse_code(code)
    if len(code) > MAX_BASE_DIGITS + SHARE_CODE_DIGITS:
        raise _malformed(typed)
    prefixes = [b for b in base_prefixes(code) if len(b) <= MAX_BASE_DIGITS]
    digits = {b: d for b, d in s.execute(select(Campaign.base_code, Campaign.digits).where(
        Campaign.base_code.in_(prefixes), Campaign.released_at_ms.is_(None)))}
    got = split_digits(code, lambda b: (digits[b], SHARE_CODE_DIGITS) if b in digits else None)
    if got is None:
        raise _unknown(code)
    return got


def canonical(base: str, suffix: str) -> str:
    """The code as shown back to people: 4919-27, or the bare base code 4919."""
    return f"{base}-{suffix}" if suffix else base


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


def _entry_dict(e: Entry, c: Campaign) -> dict[str, Any]:
    return {"entry_id": e.id, "campaign": c.id, "base_code": c.base_code,
            "device_id": e.device_id, "root_device_id": e.root_device_id, "depth": e.depth,
            "window": e.window, "code": e.code, "via": e.via,
            "landing": {"zh": c.label_zh, "en": c.label_en},
            "landing_text": {"zh": c.landing_zh, "en": c.landing_en}}


def resolve_limited(sf: SessionFactory, limits: Limits, code: str, visitor: str | None, now: float,
                    address: str) -> dict[str, Any]:
    """resolve, behind the guess limits (cloud/services/ratelimits.py): a code too long or malformed
    is refused before any lookup; a code of no rented campaign gets 404 and no bucket; otherwise the
    client's budget for that campaign pays a token first (429 if empty, whatever the code), which a
    right code gets back and a wrong one keeps."""
    with sf() as s:
        base, _ = read_code(s, code)
        cid = s.scalar(select(Campaign.id).where(Campaign.base_code == base,
                                                 Campaign.released_at_ms.is_(None)))
    if cid is None:
        raise _unknown(code)
    guess = limits.start_guess(cid, address)
    try:
        entry = resolve(sf, code, visitor, now)
    except ApiError as e:
        if e.code in GUESS_MISSES:
            limits.wrong(guess)
        else:
            limits.right(guess)
        raise
    limits.right(guess)
    return entry


def _display(s: Session, c: Campaign, suffix: str, code: str, now: float) -> tuple[Device, int | None]:
    """The device showing `suffix` now, and the window it matched (None for a printed code)."""
    loc = locate(int(suffix), c.slots, c.digits)
    if loc is None:
        raise _unknown(code)
    slot, r = loc
    d = s.scalar(select(Device).where(Device.campaign_id == c.id, Device.slot == slot))
    if d is None:
        raise _unknown(code)
    if d.printed:  # a printed code shows r = 0 for ever
        if r != 0:
            raise _unknown(code)
        return d, None
    w = match_window(vault.of(s).open_device_key(d.id, d.key_sealed), slot, c.slots, c.digits, r,
                     window(now, c.period_s))
    if w is None:
        raise _expired(code)
    return d, w


def resolve(sf: SessionFactory, code: str, visitor: str | None, now: float) -> dict[str, Any]:
    """Resolve a typed code and record the entry. `visitor` is the shopper's visitor id (a new one
    is drawn if None); the answer does not carry it."""
    visitor = visitor if visitor and valid_visitor(visitor) else new_visitor()
    with sf.begin() as s:
        base, suffix = read_code(s, code)
        c = s.scalar(select(Campaign).where(Campaign.base_code == base, Campaign.released_at_ms.is_(None)))
        if c is None:
            raise _unknown(code)
        stopped = _not_running(code, c, int(now * 1000))
        if stopped is not None:
            raise stopped
        if not suffix:  # a bare base code: the campaign's page, with no proof of presence
            e = Entry(id=secrets.token_hex(16), campaign_id=c.id, code=base, device_id=None, window=None,
                      parent_participant_id=None, root_device_id=None, depth=0, visitor=visitor,
                      created_at_ms=int(now * 1000), via="base")
        elif len(suffix) == c.digits:
            d, w = _display(s, c, suffix, code, now)
            e = Entry(id=secrets.token_hex(16), campaign_id=c.id, code=f"{base}-{suffix}", device_id=d.id,
                      window=w, parent_participant_id=None, root_device_id=d.id, depth=0, visitor=visitor,
                      created_at_ms=int(now * 1000),  # the API's clock: attribution windows use it
                      via="printed" if w is None else "display")
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
                      depth=parent.depth + 1, visitor=visitor, created_at_ms=int(now * 1000),
                      via="share")
        else:
            raise _malformed(code)
        s.add(e)
        tlog.add_entry(s, e)
        return _entry_dict(e, c)


def _share_dict(p: Participant, c: Campaign) -> dict[str, Any]:
    return {"participant_id": p.id, "entry_id": p.entry_id, "base_code": c.base_code,
            "share_code": f"{c.base_code}-{p.share_code}"}


def _existing_share(sf: SessionFactory, entry_id: str) -> dict[str, Any] | None:
    with sf() as s:
        e = s.get(Entry, entry_id)
        if e is None:
            raise not_found("unknown_entry", "no such entry", "进店记录不存在")
        row = s.execute(select(Participant, Campaign).join(Campaign, Participant.campaign_id == Campaign.id)
                        .where(Participant.entry_id == e.id)).first()
        return None if row is None else _share_dict(*row)


def _share_limit(cap: int) -> ApiError:
    return conflict("share_limit",
                    f"this visitor already has {cap} share codes in this campaign; share one of those",
                    f"此访客在本活动中已有 {cap} 个分享码，请分享其中之一")


def _codes_held(s: Session, campaign_id: int, visitor: str) -> int:
    return int(s.scalar(select(func.count()).select_from(Participant).where(
        Participant.campaign_id == campaign_id, Participant.visitor == visitor)) or 0)


def share(sf: SessionFactory, entry_id: str, max_per_visitor: int = 0,
          before_new: Callable[[], None] | None = None) -> dict[str, Any]:
    """The shopper of `entry_id` becomes a sharer with a personal code BASE-NNNNNN (6 random
    digits, unique per campaign). Asking again returns the same code. A new code needs
    `before_new()` to pass (the per-address limit) and the entry's visitor to hold fewer than
    `max_per_visitor` codes in the campaign (0: no cap; else 409 share_limit)."""
    existing = _existing_share(sf, entry_id)
    if existing is not None:
        return existing
    if before_new is not None:
        before_new()
    for _ in range(SHARE_CODE_TRIES):
        try:
            with sf.begin() as s:
                e = s.get(Entry, entry_id)
                assert e is not None  # entries are never deleted
                c = s.get(Campaign, e.campaign_id)
                assert c is not None
                p = s.scalar(select(Participant).where(Participant.entry_id == e.id))
                if p is None and 0 < max_per_visitor <= _codes_held(s, c.id, e.visitor):
                    raise _share_limit(max_per_visitor)
                if p is None:
                    drawn = f"{secrets.randbelow(10 ** SHARE_CODE_DIGITS):06d}"
                    p = Participant(campaign_id=c.id, entry_id=e.id, visitor=e.visitor, share_code=drawn,
                                    created_at_ms=now_ms())
                    s.add(p)
                    s.flush()
                    tlog.add_share(s, p, c)
                return _share_dict(p, c)
        except IntegrityError:
            continue  # the drawn code was taken (or a concurrent share won): draw again / read it
    raise conflict("share_code_exhausted", "could not draw a free share code", "无法分配分享码")
