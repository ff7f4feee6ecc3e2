"""Campaigns in the merchant console (issue 14 part 3): the pages /merchant/campaigns (list, the rent
search) and /merchant/campaigns/{id} (the draft with its landing preview and rule preview, publish,
history), and the JSON API a merchant's tools use for the same drafts and versions (Bearer key).

Pages use the console's session: owners act with CSRF forms; viewers and shared links read; staff
are sent to the till. Another tenant's campaign answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.http import campaign_form
from cloud.http import schemas as o
from cloud.http.deps import SF, Merchantish, Now, page_session
from cloud.http.error_handlers import error_response
from cloud.http.inputs import CampaignPatch
from cloud.http.middleware import CSP
from cloud.http.params import id_path
from cloud.http.routes.login import _posted, _same_origin
from cloud.http.routes.sales import lang_of
from cloud.http.schemas import KEYED, errors
from cloud.services import campaign_preview, campaign_versions, campaigns, landing, merchants, users
from cloud.services.auth import MERCHANT, Principal
from cloud.services.web_sessions import PageSession, csrf_ok
from cloud.store.engine import SessionFactory
from cloud.web import campaign_pages, shopper_pages
from cloud.web.sales_pages import LANGS

router = APIRouter()
pages = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
CampaignId = Annotated[int, id_path("campaign")]


# ---- the JSON API ------------------------------------------------------------------------------


@router.get(
    "/base-codes/availability", tags=["registry"], response_model=o.BaseCodeSearch, responses=errors(*KEYED)
)
def base_code_availability(
    sf: SF,
    p: Merchantish,
    q: Annotated[
        str, Query(max_length=40, description="a base code, or digits with ? for any digit (49??)")
    ] = "",
    length: Annotated[int | None, Query(ge=1, le=12)] = None,
) -> dict[str, Any]:
    """Whether a base code is free to rent, or up to 12 free codes matching a pattern or length."""
    return campaign_preview.search(sf, q, length)


@router.get(
    "/campaigns/{campaign_id}/draft",
    tags=["registry"],
    response_model=o.CampaignDraft,
    responses=errors(*KEYED, 404),
)
def get_campaign_draft(campaign_id: CampaignId, sf: SF, p: Merchantish) -> dict[str, Any]:
    """The campaign's draft (its live settings when there is none) and what it would change."""
    return campaign_versions.draft(sf, p, campaign_id)


@router.put(
    "/campaigns/{campaign_id}/draft",
    tags=["registry"],
    response_model=o.CampaignDraft,
    responses=errors(*KEYED, 404, 409),
)
def put_campaign_draft(
    campaign_id: CampaignId, body: CampaignPatch, sf: SF, p: Merchantish, now: Now
) -> dict[str, Any]:
    """Changes the draft's fields given (checked as PATCH /campaigns would); the live campaign and
    its orders are untouched until POST .../publish."""
    who = campaign_versions.actor(sf, None, p.key_id)
    return campaign_versions.save_draft(
        sf, p, campaign_id, body.model_dump(exclude_unset=True), who, int(now() * 1000)
    )


@router.post(
    "/campaigns/{campaign_id}/publish",
    tags=["registry"],
    response_model=o.CampaignVersion,
    responses=errors(*KEYED, 404, 409),
)
def publish_campaign(campaign_id: CampaignId, sf: SF, p: Merchantish, now: Now) -> dict[str, Any]:
    """Applies the draft to the campaign as its next version; orders from now on record it."""
    who = campaign_versions.actor(sf, None, p.key_id)
    return campaign_versions.publish(sf, p, campaign_id, who, int(now() * 1000))


@router.get(
    "/campaigns/{campaign_id}/versions",
    tags=["registry"],
    response_model=o.CampaignVersionList,
    responses=errors(*KEYED, 404),
)
def list_campaign_versions(campaign_id: CampaignId, sf: SF, p: Merchantish) -> dict[str, Any]:
    """The published versions, newest first, each with what it changed."""
    return {"versions": campaign_versions.history(sf, p, campaign_id)}


# ---- the pages ---------------------------------------------------------------------------------


def _session(request: Request) -> PageSession | Response:
    ps = page_session(request)
    if ps is None:
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    if ps.console_role == users.STAFF:
        return RedirectResponse("/till", status_code=303, headers=NO_STORE)
    return ps


def _principal(ps: PageSession) -> Principal:
    return Principal(MERCHANT, ps.merchant_id)


def _name(sf: SessionFactory, merchant_id: int) -> str:
    m = merchants.find(sf, merchant_id)
    return m.name if m else ""


def _list(request: Request, ps: PageSession, status: int = 200, error: ApiError | None = None) -> Response:
    sf: SessionFactory = request.app.state.session_factory
    now_ms = int(request.app.state.clock() * 1000)
    q = request.query_params
    query = {"q": q.get("q", "")[:12], "length": q.get("length", "")[:2]}
    found = None
    if (query["q"] or query["length"]) and error is None:
        try:
            length = int(query["length"]) if query["length"].isdigit() else None
            found = campaign_preview.search(sf, query["q"], length)
        except ApiError as e:
            error, status = e, 400
    rows = []
    for c in campaigns.list_for(sf, ps.merchant_id):
        d = campaign_versions.draft(sf, _principal(ps), c["campaign_id"])
        rows.append(
            {
                **c,
                "status": campaign_preview.status(c, now_ms),
                "version": d["version"],
                "has_draft": d["has_draft"],
            }
        )
    html = campaign_pages.list_page(
        _name(sf, ps.merchant_id),
        rows,
        ps.csrf_token,
        ps.console_role == users.OWNER,
        query,
        found,
        None if error is None else campaign_versions.api_error(error),
    )
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


@pages.get("/merchant/campaigns")
async def get_campaigns(request: Request) -> Response:
    ps = await run_in_threadpool(_session, request)
    return ps if isinstance(ps, Response) else await run_in_threadpool(_list, request, ps)


async def _owner_form(request: Request) -> tuple[PageSession | Response, dict[str, str]]:
    form = await _posted(request)
    ps = await run_in_threadpool(_session, request)
    if isinstance(ps, Response):
        return ps, form
    if ps.console_role != users.OWNER:
        return error_response(
            403, "owner_only", "only an owner changes campaigns", "只有所有者可以修改活动"
        ), form
    if not (_same_origin(request) and csrf_ok(ps, form.get("csrf", ""))):
        return error_response(
            403, "bad_csrf", "this form did not come from the merchant console", "此表单并非来自商户后台"
        ), form
    return ps, form


def _by(sf: SessionFactory, ps: PageSession) -> str:
    return campaign_versions.actor(sf, ps.user_id, ps.key_id)


@pages.post("/merchant/campaigns")
async def post_rent(request: Request) -> Response:
    ps, form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        made = await run_in_threadpool(
            campaign_versions.rent,
            sf,
            ps.merchant_id,
            form.get("base_code", "")[:12],
            form.get("label_zh", "")[:201],
            form.get("label_en", "")[:201],
            _by(sf, ps),
            now_ms,
        )
    except ApiError as e:
        return await run_in_threadpool(_list, request, ps, e.status, e)
    return RedirectResponse(f"/merchant/campaigns/{made['campaign_id']}", status_code=303, headers=NO_STORE)


def _edit(
    request: Request,
    ps: PageSession,
    campaign_id: int,
    status: int = 200,
    form: dict[str, str] | None = None,
    error: ApiError | None = None,
) -> Response:
    sf: SessionFactory = request.app.state.session_factory
    p = _principal(ps)
    try:
        d = campaign_versions.draft(sf, p, campaign_id)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.message_zh)
    preview = campaign_preview.rule_preview(sf, p, campaign_id, d["draft"])
    history = campaign_versions.history(sf, p, campaign_id)
    lang = request.query_params.get("lang") or (form or {}).get("preview_lang") or lang_of(request)
    html = campaign_pages.edit_page(
        _name(sf, ps.merchant_id),
        d,
        form or campaign_form.values(d["draft"]),
        preview,
        history,
        ps.csrf_token,
        ps.console_role == users.OWNER,
        lang if lang in LANGS else LANGS[0],
        None if error is None else campaign_versions.api_error(error),
        request.query_params.get("done"),
    )
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


@pages.get("/merchant/campaigns/{campaign_id}")
async def get_campaign_page(campaign_id: int, request: Request) -> Response:
    ps = await run_in_threadpool(_session, request)
    return ps if isinstance(ps, Response) else await run_in_threadpool(_edit, request, ps, campaign_id)


@pages.post("/merchant/campaigns/{campaign_id}")
async def post_draft(campaign_id: int, request: Request) -> Response:
    ps, form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        edits = campaign_form.edits(form)
        await run_in_threadpool(
            campaign_versions.save_draft, sf, _principal(ps), campaign_id, edits, _by(sf, ps), now_ms
        )
    except ApiError as e:
        if e.status == 404:
            return error_response(e.status, e.code, e.message, e.message_zh)
        return await run_in_threadpool(_edit, request, ps, campaign_id, e.status, form, e)
    return RedirectResponse(
        f"/merchant/campaigns/{campaign_id}?done=saved", status_code=303, headers=NO_STORE
    )


async def _act(request: Request, campaign_id: int, action: str) -> Response:
    ps, _form = await _owner_form(request)
    if isinstance(ps, Response):
        return ps
    sf, now_ms = request.app.state.session_factory, int(request.app.state.clock() * 1000)
    try:
        if action == "publish":
            await run_in_threadpool(
                campaign_versions.publish, sf, _principal(ps), campaign_id, _by(sf, ps), now_ms
            )
        else:
            await run_in_threadpool(campaign_versions.discard, sf, _principal(ps), campaign_id)
    except ApiError as e:
        if e.status == 404:
            return error_response(e.status, e.code, e.message, e.message_zh)
        return await run_in_threadpool(_edit, request, ps, campaign_id, e.status, None, e)
    done = "?done=published" if action == "publish" else ""
    return RedirectResponse(f"/merchant/campaigns/{campaign_id}{done}", status_code=303, headers=NO_STORE)


@pages.post("/merchant/campaigns/{campaign_id}/publish")
async def post_publish(campaign_id: int, request: Request) -> Response:
    return await _act(request, campaign_id, "publish")


@pages.post("/merchant/campaigns/{campaign_id}/discard")
async def post_discard(campaign_id: int, request: Request) -> Response:
    return await _act(request, campaign_id, "discard")


def _preview(request: Request, ps: PageSession, campaign_id: int, form: dict[str, str] | None) -> Response:
    """The shopper's landing page for the draft (GET) or for the form as typed (POST), framed by
    the editor only: its own CSP allows this origin as the frame's parent and the image's origin."""
    sf: SessionFactory = request.app.state.session_factory
    now_ms = int(request.app.state.clock() * 1000)
    try:
        d = campaign_versions.draft(sf, _principal(ps), campaign_id)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.message_zh)
    settings = dict(d["draft"])
    if form is not None:
        settings.update({k: form.get(k, "")[:4000] for k in campaign_form.TEXT_FIELDS})
        for k in ("image_url", "target_url"):
            url = form.get(k, "").strip()
            settings[k] = url if campaigns.https_url(url) else None
        for k, day_after in (("starts", False), ("ends", True)):
            try:
                settings[f"{k}_at_ms"] = campaign_form.date_ms(k, form.get(k, ""), day_after)
            except ApiError:
                pass  # the preview shows the saved date until this one is a date
    lang = (form or {}).get("preview_lang") or request.query_params.get("lang") or lang_of(request)
    lang = lang if lang in LANGS else LANGS[0]
    html = shopper_pages.landing_page(
        lang, campaign_preview.landing_data(d["campaign"], settings, now_ms), None, ""
    )
    origin = landing.image_origin(settings.get("image_url"))
    csp = CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
    if origin:
        csp = csp.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")
    return HTMLResponse(
        html, headers={**NO_STORE, "Content-Security-Policy": csp, "X-Frame-Options": "SAMEORIGIN"}
    )


@pages.get("/merchant/campaigns/{campaign_id}/preview")
async def get_preview(campaign_id: int, request: Request) -> Response:
    ps = await run_in_threadpool(_session, request)
    return (
        ps if isinstance(ps, Response) else await run_in_threadpool(_preview, request, ps, campaign_id, None)
    )


@pages.post("/merchant/campaigns/{campaign_id}/preview")
async def post_preview(campaign_id: int, request: Request) -> Response:
    """Any console reader may preview (nothing is stored), with the session's CSRF token."""
    form = await _posted(request)
    ps = await run_in_threadpool(_session, request)
    if isinstance(ps, Response):
        return ps
    if not (_same_origin(request) and csrf_ok(ps, form.get("csrf", ""))):
        return error_response(
            403, "bad_csrf", "this form did not come from the merchant console", "此表单并非来自商户后台"
        )
    return await run_in_threadpool(_preview, request, ps, campaign_id, form)
