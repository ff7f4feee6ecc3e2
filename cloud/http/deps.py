"""FastAPI dependencies: the app's state, and who is asking (cloud/services/auth.py): an API key
in the Authorization header, or for the merchant page, a login session cookie
(cloud/services/web_sessions.py). Keys are never read from a URL.

Keys are read by FastAPI's security schemes with auto_error off, so the OpenAPI document declares
them (and, as the requirement's list, the roles that may call each operation) while a missing or
wrong key still gets our own 401 JSON."""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.errors import ApiError, unauthorized
from cloud.services import auth, merchants, web_sessions
from cloud.services.auth import Principal
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from cloud.store.models import Merchant


def session_factory(request: Request) -> SessionFactory:
    sf: SessionFactory = request.app.state.session_factory
    return sf


def settings(request: Request) -> Settings:
    st: Settings = request.app.state.settings
    return st


def clock(request: Request) -> Callable[[], float]:
    c: Callable[[], float] = request.app.state.clock
    return c


BEARER_SCHEME = "apiKey"  # the name of the scheme in the OpenAPI document
_bearer = HTTPBearer(
    scheme_name=BEARER_SCHEME, auto_error=False, bearerFormat="API key",
    description="An API key as `Authorization: Bearer <key>` (never in a URL: a request with "
                "`?key=` is refused). Every key has one role: admin (mcode "
                "operators; the bootstrap key is MCODE_CLOUD_ADMIN_KEY), merchant (everything in "
                "its tenant), technician (campaigns, locations, registering devices), gateway "
                "(its own gateway's device command keys). The roles an operation admits are listed "
                "in its security requirement and description. A key sees only its own tenant.")
Creds = HTTPAuthorizationCredentials | None
# The page login's cookie. With Secure, the __Host- prefix also pins it to this host and path /.
SESSION_COOKIE, INSECURE_SESSION_COOKIE = "__Host-mcode_session", "mcode_session"


def bearer_scheme() -> HTTPBearer:
    """The scheme every keyed operation depends on (the key gate looks for it)."""
    return _bearer


def session_cookie(st: Settings) -> str:
    return SESSION_COOKIE if st.cookie_secure else INSECURE_SESSION_COOKIE


def _bearer_key(creds: Creds) -> str:
    return creds.credentials if creds is not None else ""


def resolve(request: Request, key: str) -> Principal | None:
    """The key's principal; the key gate (cloud/http/middleware.py) may have found it already."""
    if key and getattr(request.state, "principal_key", None) == key:
        found: Principal | None = request.state.principal
        return found
    return auth.principal_for(request.app.state.session_factory, key, request.app.state.settings.admin_key)


def key_refusal(st: Settings, key: str, p: Principal | None, admin_only: bool) -> ApiError | None:
    """What a request with `key` (resolved to `p`) is refused with before any work, or None."""
    if p is not None:
        return None
    if admin_only and not st.admin_key and key == "":
        return ApiError(403, "admin_disabled", "no admin key is configured", "未配置管理员密钥")
    return unauthorized()


def require_admin(request: Request,
                  creds: Annotated[Creds, Security(_bearer, scopes=[auth.ADMIN])]) -> Principal:
    """The settings' admin key, or an issued admin key."""
    key = _bearer_key(creds)
    p = resolve(request, key)
    refused = key_refusal(request.app.state.settings, key, p, admin_only=True)
    if refused is not None:
        raise refused
    return auth.require(p, auth.ADMIN)


def principal(request: Request, creds: Creds) -> Principal:
    """Any valid key as `Authorization: Bearer`."""
    p = resolve(request, _bearer_key(creds))
    if p is None:
        raise unauthorized()
    return p


def roles(*allowed: str) -> Callable[..., Principal]:
    """A dependency admitting keys of these roles (and admin)."""
    # no `from __future__ import annotations` in this module: this annotation names a local
    def dep(request: Request,
            creds: Annotated[Creds, Security(_bearer, scopes=[auth.ADMIN, *allowed])]) -> Principal:
        return auth.require(principal(request, creds), *allowed)
    return dep


def _merchant(request: Request, merchant_id: int | None) -> Merchant:
    if merchant_id is None:
        raise auth.forbidden("this page needs a merchant key", "此页面需要商户密钥")
    m = merchants.find(request.app.state.session_factory, merchant_id)
    if m is None:
        raise unauthorized()
    return m


def page_session(request: Request) -> web_sessions.PageSession | None:
    """The merchant page login this request's cookie names, if it is live."""
    st: Settings = request.app.state.settings
    token = request.cookies.get(session_cookie(st), "")
    now = int(request.app.state.clock() * 1000)
    return web_sessions.find(request.app.state.session_factory, token, now) if token else None


def page_merchant(request: Request,
                  creds: Annotated[Creds, Security(_bearer, scopes=[auth.MERCHANT])]
                  ) -> tuple[Merchant, web_sessions.PageSession | None] | None:
    """For the HTML page: a merchant key as `Authorization: Bearer` (API clients), else the login
    session; None when neither (the page then sends the browser to /login)."""
    if creds is not None:
        p = auth.require(principal(request, creds), auth.MERCHANT)
        return _merchant(request, p.merchant_id), None
    ps = page_session(request)
    return None if ps is None else (_merchant(request, ps.merchant_id), ps)


def current_merchant(request: Request,
                     creds: Annotated[Creds, Security(_bearer, scopes=[auth.MERCHANT])]) -> Merchant:
    """The merchant of a merchant-role key, or of the merchant page's login session."""
    found = page_merchant(request, creds)
    if found is None:
        raise unauthorized()
    if found[1] is not None and found[1].console_role == "staff":  # staff sessions work the till only
        raise auth.forbidden("staff sign-ins work the till only", "店员账号只能使用收银页面")
    return found[0]


SF = Annotated[SessionFactory, Depends(session_factory)]
Now = Annotated[Callable[[], float], Depends(clock)]
SettingsDep = Annotated[Settings, Depends(settings)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
PageMerchant = Annotated[tuple[Merchant, web_sessions.PageSession | None] | None, Depends(page_merchant)]
Merchantish = Annotated[Principal, Depends(roles(auth.MERCHANT))]
Techish = Annotated[Principal, Depends(roles(auth.MERCHANT, auth.TECHNICIAN))]
GatewayKey = Annotated[Principal, Depends(roles(auth.GATEWAY))]
AdminDep = Annotated[Principal, Depends(require_admin)]
