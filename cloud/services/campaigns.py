"""Campaigns (a rented base code, its validity, reward rule, budget and landing text) and the
locations where displays hang. Every call is scoped to one tenant (merchant)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.services.auth import Principal, sees
from cloud.services.pools import MAX_POOL_BP, MAX_POOL_MINOR
from cloud.services.rules import RED_BALLOON_RULE, canonical, normalized_params
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Campaign, Merchant
from protocol.rotation import modulus

MAX_HOLD_S = 365 * 24 * 3600
MAX_URL = 500  # campaigns.image_url, target_url
LANDING_FIELDS = ("image_url", "target_url", "currency")  # the landing page's: mutable too
MAX_WINDOW_S = 365 * 24 * 3600  # the attribution window: at most a year
DEFAULT_WINDOW_S = 30 * 24 * 3600
# fields a merchant may change after creation; slots, digits and period define the codes devices
# already show, and base_code is the rental itself, so they are fixed
MUTABLE = ("pool_minor", "rule", "rule_params", "budget_minor", "hold_s", "starts_at_ms", "ends_at_ms",
           "label_zh", "label_en", "landing_zh", "landing_en", "pool_bp", "pool_cap_minor",
           "attribution_window_s")


def campaign_dict(c: Campaign) -> dict[str, Any]:
    return {"campaign_id": c.id, "merchant_id": c.merchant_id, "base_code": c.base_code, "slots": c.slots,
            "digits": c.digits, "period_s": c.period_s, "pool_minor": c.pool_minor, "rule": c.rule,
            "rule_params": json.loads(c.rule_params_json or "{}"), "budget_minor": c.budget_minor,
            "spent_minor": c.spent_minor, "hold_s": c.hold_s, "starts_at_ms": c.starts_at_ms,
            "ends_at_ms": c.ends_at_ms, "released_at_ms": c.released_at_ms,
            "image_url": c.image_url, "target_url": c.target_url, "currency": c.currency,
            "label": {"zh": c.label_zh, "en": c.label_en},
            "landing": {"zh": c.landing_zh, "en": c.landing_en},
            "pool_bp": c.pool_bp, "pool_cap_minor": c.pool_cap_minor,
            "attribution_window_s": c.attribution_window_s}


def _bad(code: str, en: str, zh: str) -> ApiError:
    return bad_request(code, en, zh)


def _check(f: dict[str, Any]) -> None:
    """Validate the fields present in `f` (create passes all of them, update only the changed)."""
    if "pool_minor" in f and (isinstance(f["pool_minor"], bool) or not isinstance(f["pool_minor"], int)
                              or not 0 <= f["pool_minor"] <= MAX_POOL_MINOR):
        raise _bad("bad_pool", f"pool_minor must be an integer from 0 to {MAX_POOL_MINOR} (minor units)",
                   "酬金须为 ≥ 0 的整数（最小货币单位）")
    if f.get("budget_minor") is not None and f["budget_minor"] < 0:
        raise _bad("bad_budget", "budget_minor must be >= 0, or null for no cap",
                   "预算须 ≥ 0，或为空表示不设上限")
    if "hold_s" in f and not 0 <= f["hold_s"] <= MAX_HOLD_S:
        raise _bad("bad_hold", f"hold_s must be 0 to {MAX_HOLD_S}", f"冻结期须为 0 至 {MAX_HOLD_S} 秒")
    _check_sales(f)
    start, end = f.get("starts_at_ms"), f.get("ends_at_ms")
    if start is not None and end is not None and end <= start:
        raise _bad("bad_dates", "ends_at_ms must be after starts_at_ms", "结束时间须晚于开始时间")
    if "rule" in f:
        try:
            f["rule"] = canonical(f["rule"])
            f["rule_params_json"] = json.dumps(normalized_params(f["rule"], f.get("rule_params") or {}),
                                               sort_keys=True)
        except ValueError as e:
            raise _bad("bad_rule", str(e), f"酬众规则或参数无效：{e}") from None
    for k in ("label_zh", "label_en"):
        if k in f and len(f[k]) > 200:
            raise _bad("bad_label", f"{k} is longer than 200 characters", "标题超过 200 个字符")
    for k in ("landing_zh", "landing_en"):
        if k in f and len(f[k]) > 4000:
            raise _bad("bad_landing", f"{k} is longer than 4000 characters", "落地页内容超过 4000 个字符")
    _check_landing(f)


def _check_landing(f: dict[str, Any]) -> None:
    """The landing page's image and online service: https URLs or null; the currency: ISO 4217."""
    for k in ("image_url", "target_url"):
        url = f.get(k)
        if url is not None and not https_url(url):
            raise _bad(f"bad_{k}", f"{k} must be an https:// URL of at most {MAX_URL} characters, or null",
                       f"{k} 须为不超过 {MAX_URL} 个字符的 https:// 网址，或为空")
    cur = f.get("currency", "CNY")
    if not (isinstance(cur, str) and len(cur) == 3 and cur.isascii() and cur.isalpha() and cur.isupper()):
        raise _bad("bad_currency", "currency must be three capital letters (ISO 4217), e.g. CNY",
                   "货币须为三个大写字母（ISO 4217），例如 CNY")


def https_url(url: str) -> bool:
    """An absolute https URL with a host, no credentials, no spaces or control characters."""
    if not (isinstance(url, str) and 0 < len(url) <= MAX_URL and url.isascii()):
        return False
    if any(ch <= " " or ch == "\x7f" for ch in url):
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname) and "@" not in parts.netloc


def _check_sales(f: dict[str, Any]) -> None:
    """The pool as a share of the sale (cloud/services/pools.py) and the attribution window."""
    if f.get("pool_bp") is not None and not 0 <= f["pool_bp"] <= MAX_POOL_BP:
        raise _bad("bad_pool_bp", f"pool_bp must be 0 to {MAX_POOL_BP} basis points of the sale, or null "
                   "for a fixed pool", f"pool_bp 须为销售额的 0 至 {MAX_POOL_BP} 个基点，或为空表示固定酬金")
    if f.get("pool_cap_minor") is not None and not 0 <= f["pool_cap_minor"] <= MAX_POOL_MINOR:
        raise _bad("bad_pool_cap", f"pool_cap_minor must be 0 to {MAX_POOL_MINOR} (minor units), or null",
                   f"酬金上限须为 0 至 {MAX_POOL_MINOR}（最小货币单位），或为空")
    if "attribution_window_s" in f and not 1 <= f["attribution_window_s"] <= MAX_WINDOW_S:
        raise _bad("bad_window", f"attribution_window_s must be 1 to {MAX_WINDOW_S}",
                   f"归因窗口须为 1 至 {MAX_WINDOW_S} 秒")


def create(sf: SessionFactory, merchant_id: int, *, base_code: str, slots: int, digits: int, period_s: int,
           pool_minor: int, label_zh: str, label_en: str, rule: str = RED_BALLOON_RULE,
           rule_params: dict[str, Any] | None = None, budget_minor: int | None = None,
           hold_s: int = 14 * 24 * 3600, starts_at_ms: int | None = None, ends_at_ms: int | None = None,
           landing_zh: str = "", landing_en: str = "", image_url: str | None = None,
           target_url: str | None = None, currency: str = "CNY", pool_bp: int | None = None,
           pool_cap_minor: int | None = None,
           attribution_window_s: int = DEFAULT_WINDOW_S) -> dict[str, Any]:
    """Rent `base_code` for a new campaign. The code must not be rented by a live campaign."""
    if not base_code_ok(base_code):
        raise _bad("bad_base_code", "base code must be 1 to 12 digits", "基础码须为 1 至 12 位数字")
    if not 1 <= digits <= 5:
        raise _bad("bad_digits", "digits must be 1 to 5 (6 is kept for personal share codes)",
                   "动态码位数须为 1 至 5（6 位留给个人分享码）")
    try:
        modulus(slots, digits)
    except (ValueError, ZeroDivisionError):  # modulus divides by slots before it checks slots >= 1
        raise _bad("bad_slots", "slots must be >= 1 and leave at least 2 values per slot",
                   "槽位数须 ≥ 1，且每个槽位至少有 2 个取值") from None
    if period_s < 1:
        raise _bad("bad_period", "period_s must be >= 1", "周期须 ≥ 1 秒")
    f: dict[str, Any] = {"pool_minor": pool_minor, "rule": rule, "rule_params": rule_params,
                         "budget_minor": budget_minor, "hold_s": hold_s, "starts_at_ms": starts_at_ms,
                         "ends_at_ms": ends_at_ms, "label_zh": label_zh, "label_en": label_en,
                         "landing_zh": landing_zh, "landing_en": landing_en, "image_url": image_url,
                         "target_url": target_url, "currency": currency, "pool_bp": pool_bp,
                         "pool_cap_minor": pool_cap_minor, "attribution_window_s": attribution_window_s}
    _check(f)
    f.pop("rule_params")
    try:
        with sf.begin() as s:
            if s.get(Merchant, merchant_id) is None:
                raise not_found("unknown_merchant", "no such merchant", "商户不存在")
            c = Campaign(merchant_id=merchant_id, base_code=base_code, slots=slots, digits=digits,
                         period_s=period_s, spent_minor=0, created_at_ms=now_ms(), **f)
            s.add(c)
            s.flush()
            return campaign_dict(c)
    except IntegrityError:
        raise conflict("base_code_taken", f"base code {base_code} is already rented",
                       f"基础码 {base_code} 已被租用") from None


def base_code_ok(base_code: str) -> bool:
    """What a base code may be: 1 to 12 ASCII digits (codes.MAX_BASE_DIGITS)."""
    return base_code.isdigit() and base_code.isascii() and 1 <= len(base_code) <= 12


def check(fields: dict[str, Any]) -> dict[str, Any]:
    """The MUTABLE and LANDING_FIELDS in `fields` validated as a change would be (ApiError 400),
    with the rule named canonically and its params normalized; a copy, `fields` is not changed."""
    f = dict(fields)
    _check(f)
    if "rule" in f:
        f["rule_params"] = json.loads(f.pop("rule_params_json"))
    return f


def _own(s: Any, p: Principal, campaign_id: int) -> Campaign:
    c = s.get(Campaign, campaign_id)
    if c is None or not sees(p, c.merchant_id):
        raise not_found("unknown_campaign", "no such campaign", "活动不存在")
    assert isinstance(c, Campaign)
    return c


own = _own  # the tenant's campaign, for services that read it in their own transaction


def get(sf: SessionFactory, p: Principal, campaign_id: int) -> dict[str, Any]:
    with sf() as s:
        return campaign_dict(_own(s, p, campaign_id))


def list_for(sf: SessionFactory, merchant_id: int) -> list[dict[str, Any]]:
    with sf() as s:
        return [campaign_dict(c) for c in s.scalars(
            select(Campaign).where(Campaign.merchant_id == merchant_id).order_by(Campaign.id))]


def update(sf: SessionFactory, p: Principal, campaign_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Change the MUTABLE fields given; orders placed before keep the rule they were paid by."""
    with sf.begin() as s:
        return campaign_dict(apply(s, p, campaign_id, changes))


def apply(s: Any, p: Principal, campaign_id: int, changes: dict[str, Any]) -> Campaign:
    """update() inside the caller's transaction (a published version is written in the same one)."""
    unknown = sorted(set(changes) - set(MUTABLE) - set(LANDING_FIELDS))
    if unknown:
        raise _bad("bad_field", f"cannot change {', '.join(unknown)}", f"不能修改 {', '.join(unknown)}")
    f = dict(changes)
    c = _own(s, p, campaign_id)
    if c.released_at_ms is not None:
        raise conflict("campaign_released", "this campaign's base code was released",
                       "该活动的基础码已释放")
    if "rule_params" in f and "rule" not in f:
        f["rule"] = c.rule
    merged = {"starts_at_ms": c.starts_at_ms, "ends_at_ms": c.ends_at_ms, **f}
    _check(merged)
    if f.get("budget_minor") is not None and f["budget_minor"] < c.spent_minor:
        raise conflict("budget_below_spent",
                       f"{c.spent_minor} is already paid out; the budget cannot be less",
                       f"已支付 {c.spent_minor}，预算不能低于此数")
    f.update({k: merged[k] for k in ("rule", "rule_params_json") if k in merged})
    f.pop("rule_params", None)
    for k, v in f.items():
        setattr(c, k, v)
    s.flush()
    return c


def release(sf: SessionFactory, p: Principal, campaign_id: int) -> dict[str, Any]:
    """Give the base code back: codes stop resolving, the code can be rented again; orders and
    the ledger of the campaign stay. Releasing twice answers like the first time."""
    with sf.begin() as s:
        c = _own(s, p, campaign_id)
        if c.released_at_ms is None:
            c.released_at_ms = now_ms()
        return campaign_dict(c)
