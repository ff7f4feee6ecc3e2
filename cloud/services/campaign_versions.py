"""Campaign drafts and published versions (issue 14 part 3). A merchant edits a draft (a full copy
of the campaign's settings, saved beside the live campaign); publishing applies it to the campaign
and numbers it 1, 2, ... in one transaction, so every order records the version that paid it
(orders.py reads published_version under the campaign's lock). Validation is campaigns.py's: a
draft is checked as the change it would be, and checked again against the campaign on publish."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ApiError, bad_request, conflict
from cloud.services import campaigns
from cloud.services.auth import Principal
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, CampaignVersion, User

# what a version holds: every setting a merchant may change (campaigns.MUTABLE, LANDING_FIELDS)
SETTINGS = (*campaigns.MUTABLE, *campaigns.LANDING_FIELDS)
DRAFT = 0  # the version number of the draft row: the unique (campaign, version) allows one


def settings_of(c: Campaign) -> dict[str, Any]:
    """The campaign's live settings as a version stores them."""
    out = {k: getattr(c, k) for k in SETTINGS if k != "rule_params"}
    out["rule_params"] = json.loads(c.rule_params_json or "{}")
    return out


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """[{field, before, after}] for each setting that differs, in SETTINGS order (all of them,
    before None, for a first version)."""
    return [{"field": k, "before": None if before is None else before.get(k), "after": after.get(k)}
            for k in SETTINGS if before is None or before.get(k) != after.get(k)]


def published_version(s: Session, campaign_id: int) -> int | None:
    """The campaign's newest published version number; None if it was never published."""
    v: int | None = s.scalar(select(func.max(CampaignVersion.version)).where(
        CampaignVersion.campaign_id == campaign_id, CampaignVersion.published_at_ms.is_not(None)))
    return v


def _draft(s: Session, campaign_id: int) -> CampaignVersion | None:
    return s.scalar(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign_id,
                                                  CampaignVersion.published_at_ms.is_(None)))


def actor(sf: SessionFactory, user_id: int | None, key_id: int | None) -> str:
    """Who saved or published, as the history shows it: a person's login, else the key's number."""
    if user_id is not None:
        with sf() as s:
            login = s.scalar(select(User.login).where(User.id == user_id))
        if login:
            return str(login)[:100]
    return f"key {key_id}" if key_id is not None else "admin"


def draft(sf: SessionFactory, p: Principal, campaign_id: int) -> dict[str, Any]:
    """The campaign, its live settings, the draft's (the live ones when there is no draft), what
    the draft changes and the newest published version."""
    with sf() as s:
        c = campaigns.own(s, p, campaign_id)
        live = settings_of(c)
        row = _draft(s, c.id)
        settings = live if row is None else json.loads(row.settings_json)
        return {"campaign": campaigns.campaign_dict(c), "live": live, "draft": settings,
                "has_draft": row is not None, "changes": changes(live, settings),
                "version": published_version(s, c.id),
                "saved": None if row is None else {"at_ms": row.saved_at_ms, "by": row.saved_by}}


def save_draft(sf: SessionFactory, p: Principal, campaign_id: int, edits: dict[str, Any], by: str,
               now_ms: int) -> dict[str, Any]:
    """Merge `edits` (SETTINGS fields) into the draft, validated as campaigns.update would (400),
    and store it; the live campaign is not touched. 409 for a released campaign."""
    unknown = sorted(set(edits) - set(SETTINGS))
    if unknown:
        raise bad_request("bad_field", f"cannot change {', '.join(unknown)}",
                          f"不能修改 {', '.join(unknown)}")
    try:
        with sf.begin() as s:
            c = campaigns.own(s, p, campaign_id)
            if c.released_at_ms is not None:
                raise conflict("campaign_released", "this campaign's base code was released",
                               "该活动的基础码已释放")
            row = _draft(s, c.id)
            base = settings_of(c) if row is None else json.loads(row.settings_json)
            merged = campaigns.check({**base, **edits})
            if row is None:  # a draft is numbered 0 (one per campaign) until it is published
                row = CampaignVersion(campaign_id=c.id, version=DRAFT, settings_json="{}", saved_at_ms=now_ms,
                                      saved_by=by)
                s.add(row)
            row.settings_json = json.dumps(merged, sort_keys=True)
            row.saved_at_ms, row.saved_by = now_ms, by[:100]
    except IntegrityError:  # a concurrent first save made the draft: this one lost the race
        raise conflict("draft_conflict", "the draft was saved by someone else at the same time: reload",
                       "草稿同时被他人保存，请重新载入") from None
    return draft(sf, p, campaign_id)


def discard(sf: SessionFactory, p: Principal, campaign_id: int) -> dict[str, Any]:
    """Drop the draft (the live campaign stays as published)."""
    with sf.begin() as s:
        c = campaigns.own(s, p, campaign_id)
        row = _draft(s, c.id)
        if row is not None:
            s.delete(row)
    return draft(sf, p, campaign_id)


def _version_dict(v: CampaignVersion, before: dict[str, Any] | None) -> dict[str, Any]:
    settings = json.loads(v.settings_json)
    return {"version": v.version, "published_at_ms": v.published_at_ms, "published_by": v.published_by,
            "settings": settings, "changes": changes(before, settings)}


def publish(sf: SessionFactory, p: Principal, campaign_id: int, by: str, now_ms: int) -> dict[str, Any]:
    """Apply the draft to the campaign and number it (campaigns.apply's checks: 400, 409
    budget_below_spent, campaign_released). 409 nothing_to_publish without a draft, or with one
    that changes nothing once the campaign has a version."""
    with sf.begin() as s:
        c = _locked(s, p, campaign_id)
        row, before = _draft(s, c.id), published_version(s, c.id)
        live = settings_of(c)
        target = live if row is None else json.loads(row.settings_json)
        diff = {ch["field"]: ch["after"] for ch in changes(live, target)}
        if before is not None and not diff:
            raise conflict("nothing_to_publish", "the draft changes nothing: edit and save it first",
                           "草稿没有任何修改：请先编辑并保存")
        campaigns.apply(s, p, c.id, diff)
        if row is None:
            row = CampaignVersion(campaign_id=c.id, settings_json="{}", saved_at_ms=now_ms, saved_by=by[:100])
            s.add(row)
        row.version = (before or 0) + 1
        row.settings_json = json.dumps(settings_of(c), sort_keys=True)
        row.published_at_ms, row.published_by = now_ms, by[:100]
        s.flush()
        prior = s.scalar(select(CampaignVersion).where(CampaignVersion.campaign_id == c.id,
                                                       CampaignVersion.version == before)) if before else None
        return _version_dict(row, None if prior is None else json.loads(prior.settings_json))


def _locked(s: Session, p: Principal, campaign_id: int) -> Campaign:
    """The campaign under the order's lock (orders._lock_campaign): versions and orders of one
    campaign are serialized, so an order records the version whose settings it was booked under."""
    s.execute(update(Campaign).where(Campaign.id == campaign_id).values(spent_minor=Campaign.spent_minor))
    c = campaigns.own(s, p, campaign_id)
    s.refresh(c)
    return c


def patch(sf: SessionFactory, p: Principal, campaign_id: int, edits: dict[str, Any], by: str,
          now_ms: int) -> dict[str, Any]:
    """PATCH /campaigns/{id}: campaigns.update, and when the live settings now differ from the last
    published version (or none was), a new published version in the same transaction. A draft
    stays a draft."""
    with sf.begin() as s:
        c = _locked(s, p, campaign_id)
        campaigns.apply(s, p, c.id, edits)
        before = published_version(s, c.id)
        prior = None if before is None else s.scalar(select(CampaignVersion.settings_json).where(
            CampaignVersion.campaign_id == c.id, CampaignVersion.version == before))
        live = settings_of(c)
        if prior is None or json.loads(prior) != live:
            s.add(CampaignVersion(campaign_id=c.id, version=(before or 0) + 1,
                                  settings_json=json.dumps(live, sort_keys=True), saved_at_ms=now_ms,
                                  saved_by=by[:100], published_at_ms=now_ms, published_by=by[:100]))
        return campaigns.campaign_dict(c)


def history(sf: SessionFactory, p: Principal, campaign_id: int) -> list[dict[str, Any]]:
    """The published versions, newest first, each with what it changed from the one before."""
    with sf() as s:
        c = campaigns.own(s, p, campaign_id)
        rows = list(s.scalars(select(CampaignVersion).where(
            CampaignVersion.campaign_id == c.id, CampaignVersion.published_at_ms.is_not(None))
            .order_by(CampaignVersion.version)))
    out, before = [], None
    for v in rows:
        out.append(_version_dict(v, before))
        before = out[-1]["settings"]
    return out[::-1]


def rent(sf: SessionFactory, merchant_id: int, base_code: str, label_zh: str, label_en: str, by: str,
         now_ms: int, *, slots: int = 4, digits: int = 2, period_s: int = 300,
         pool_minor: int = 0) -> dict[str, Any]:
    """Rent `base_code` (campaigns.create: 400, 409 base_code_taken) and publish its first settings
    as version 1, so its first orders already name a version."""
    made = campaigns.create(sf, merchant_id, base_code=base_code, slots=slots, digits=digits,
                            period_s=period_s, pool_minor=pool_minor, label_zh=label_zh, label_en=label_en)
    with sf.begin() as s:
        c = s.get(Campaign, made["campaign_id"])
        assert c is not None
        first = json.dumps(settings_of(c), sort_keys=True)
        s.add(CampaignVersion(campaign_id=c.id, version=1, settings_json=first, saved_at_ms=now_ms,
                              saved_by=by[:100], published_at_ms=now_ms, published_by=by[:100]))
    return made


def api_error(e: ApiError) -> dict[str, str]:
    """An ApiError's code and both messages, as the console's pages show them."""
    return {"code": e.code, "en": e.message, "zh": e.message_zh}
