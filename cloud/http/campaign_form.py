"""The console's campaign form (cloud/http/routes/console_campaigns.py): a draft's settings as the
text a person edits (money in yuan, the pool as a percentage, days, UTC dates) and back. Only the
shape is checked here; the values are checked by campaigns.check when the draft is saved."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

from cloud.errors import ApiError, bad_request
from cloud.services import sales
from cloud.services.rules import FIXED_LEVELS, GEOMETRIC

DAY_S = 24 * 3600
_PERCENT = re.compile(r"([0-9]{1,3})(?:[.]([0-9]{1,2}))?")
_DAYS = re.compile(r"[0-9]{1,3}")
TEXT_FIELDS = ("label_zh", "label_en", "landing_zh", "landing_en")
FIELDS = (*TEXT_FIELDS, "image_url", "target_url", "rule", "levels_bp", "a", "b", "pool_mode", "pool",
          "pool_pct", "pool_cap", "budget", "window_days", "hold_days", "starts", "ends")


def _bad(field: str, en: str, zh: str) -> ApiError:
    return bad_request(f"bad_{field}", en, zh)


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text[:40]).strip()


def _money(field: str, text: str, optional: bool) -> int | None:
    """Yuan as typed ("25", "19.90", "0") in fen; "" is None where the field may be empty."""
    t = _clean(text)
    if t == "" and optional:
        return None
    if t.strip("0.") == "" and t != "":
        return 0
    try:
        return sales.parse_amount(t)
    except ApiError:
        raise _bad(field, f"{field}: type an amount like 25 or 19.90",
                   f"{field}：请输入金额，例如 25 或 19.90") from None


def _percent_bp(text: str) -> int:
    m = _PERCENT.fullmatch(_clean(text).rstrip("%"))
    if m is None:
        raise _bad("pool_pct", "type the share of the sale as a percentage, e.g. 10 or 2.5",
                   "请以百分比输入销售额分成，例如 10 或 2.5")
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def _days(field: str, text: str) -> int:
    t = _clean(text)
    if not _DAYS.fullmatch(t):
        raise _bad(field, f"{field}: type a whole number of days", f"{field}：请输入整数天数")
    return int(t) * DAY_S


def date_ms(field: str, text: str, day_after: bool) -> int | None:
    """A YYYY-MM-DD day in UTC: its start, or for an inclusive end, the start of the next day."""
    t = _clean(text)
    if not t:
        return None
    try:
        d = dt.datetime.strptime(t, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise _bad(field, f"{field}: type a date like 2026-12-31",
                   f"{field}：请输入日期，例如 2026-12-31") from None
    return int((d + dt.timedelta(days=1 if day_after else 0)).timestamp() * 1000)


def _rule_params(form: dict[str, str]) -> dict[str, Any]:
    rule = form.get("rule", "")
    if rule == FIXED_LEVELS:
        return {"levels_bp": form.get("levels_bp", "")[:800]}
    if rule == GEOMETRIC:
        return {"a": form.get("a", "")[:32], "b": form.get("b", "")[:32]}
    return {}


def edits(form: dict[str, str]) -> dict[str, Any]:
    """The settings the posted form sets (ApiError 400 bad_<field> for text that is no value)."""
    out: dict[str, Any] = {k: form.get(k, "")[:4001] for k in TEXT_FIELDS}
    for k in ("image_url", "target_url"):
        out[k] = form.get(k, "").strip()[:501] or None
    out["rule"], out["rule_params"] = form.get("rule", "")[:40], _rule_params(form)
    if form.get("pool_mode") == "share":
        out["pool_bp"] = _percent_bp(form.get("pool_pct", ""))
        out["pool_cap_minor"] = _money("pool_cap", form.get("pool_cap", ""), optional=True)
    else:
        out["pool_minor"] = _money("pool", form.get("pool", ""), optional=False)
        out["pool_bp"] = out["pool_cap_minor"] = None
    out["budget_minor"] = _money("budget", form.get("budget", ""), optional=True)
    out["attribution_window_s"] = _days("window_days", form.get("window_days", ""))
    out["hold_s"] = _days("hold_days", form.get("hold_days", ""))
    out["starts_at_ms"] = date_ms("starts", form.get("starts", ""), day_after=False)
    out["ends_at_ms"] = date_ms("ends", form.get("ends", ""), day_after=True)
    return out


def _yuan(minor: int | None) -> str:
    if minor is None:
        return ""
    units, cents = divmod(minor, 100)
    return f"{units}" if cents == 0 else f"{units}.{cents:02d}"


def _day(ms: int | None, day_before: bool) -> str:
    if ms is None:
        return ""
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC) - dt.timedelta(days=1 if day_before else 0)
    return d.strftime("%Y-%m-%d")


def values(settings: dict[str, Any]) -> dict[str, str]:
    """The form's fields for `settings` (the inverse of edits, for what it can show)."""
    p = settings.get("rule_params") or {}
    bp = settings.get("pool_bp")
    return {**{k: settings.get(k) or "" for k in TEXT_FIELDS},
            "image_url": settings.get("image_url") or "", "target_url": settings.get("target_url") or "",
            "rule": settings["rule"], "levels_bp": ",".join(map(str, p.get("levels_bp", [1000, 200, 100]))),
            "a": str(p.get("a", "3/10")), "b": str(p.get("b", "1/2")),
            "pool_mode": "fixed" if bp is None else "share", "pool": _yuan(settings["pool_minor"]),
            "pool_pct": "" if bp is None else f"{bp // 100}.{bp % 100:02d}".removesuffix(".00"),
            "pool_cap": _yuan(settings.get("pool_cap_minor")), "budget": _yuan(settings.get("budget_minor")),
            "window_days": str(settings["attribution_window_s"] // DAY_S),
            "hold_days": str(settings["hold_s"] // DAY_S),
            "starts": _day(settings.get("starts_at_ms"), False),
            "ends": _day(settings.get("ends_at_ms"), True)}
