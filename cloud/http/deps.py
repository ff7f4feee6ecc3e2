"""FastAPI dependencies: the app's state, and who is asking (cloud/services/auth.py).

Keys are read by FastAPI's security schemes with auto_error off, so the OpenAPI document declares
them (and, as the requirement's list, the roles that may call each operation) while a missing or
wrong key still gets our own 401 JSON."""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from cloud.errors import ApiError, unauthorized
from cloud.services import auth, merchants
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
QUERY_SCHEME = "apiKeyQuery"
_bearer = HTTPBearer(
    scheme_name=BEARER_SCHEME, auto_error=False, bearerFormat="API key",
    description="An API key as `Authorization: Bearer <key>`. Every key has one role: admin (mcode "
                "operators; the bootstrap key is MCODE_CLOUD_ADMIN_KEY), merchant (everything in "
                "its tenant), technician (campaigns, locations, registering devices), gateway "
                "(its own gateway's device command keys). The roles an operation admits are listed "
                "in its security requirement and description. A key sees only its own tenant.")
_query_key = APIKeyQuery(
    name="key", scheme_name=QUERY_SCHEME, auto_error=False,
    description="The same API key as `?key=<key>`: declared for the merchant page, whose links "
                "carry it (every keyed operation accepts it, but prefer the header: a URL ends up "
                "in logs and browser history).")
Creds = HTTPAuthorizationCredentials | None


def _bearer_key(creds: Creds) -> str:
    return creds.credentials if creds is not None else ""


def require_admin(request: Request,
                  creds: Annotated[Creds, Security(_bearer, scopes=[auth.ADMIN])]) -> Principal:
    """The settings' admin key, or an issued admin key."""
    key = _bearer_key(creds)
    p = auth.principal_for(request.app.state.session_factory, key, request.app.state.settings.admin_key)
    if p is None:
        if not request.app.state.settings.admin_key and key == "":
            raise ApiError(403, "admin_disabled", "no admin key is configured", "未配置管理员密钥")
        raise unauthorized()
    return auth.require(p, auth.ADMIN)


def principal(request: Request, creds: Creds) -> Principal:
    """Any valid key as `Authorization: Bearer`, or for a merchant's demo link, `?key=`."""
    key = _bearer_key(creds) or request.query_params.get("key", "")
    p = auth.principal_for(request.app.state.session_factory, key, request.app.state.settings.admin_key)
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


def current_merchant(request: Request,
                     creds: Annotated[Creds, Security(_bearer, scopes=[auth.MERCHANT])],
                     _query: Annotated[str | None, Security(_query_key, scopes=[auth.MERCHANT])]
                     ) -> Merchant:
    """The merchant of a merchant-role key (header, or `?key=` for the page's links)."""
    p = auth.require(principal(request, creds), auth.MERCHANT)
    if p.merchant_id is None:
        raise auth.forbidden("this page needs a merchant key", "此页面需要商户密钥")
    m = merchants.find(request.app.state.session_factory, p.merchant_id)
    if m is None:
        raise unauthorized()
    return m


SF = Annotated[SessionFactory, Depends(session_factory)]
Now = Annotated[Callable[[], float], Depends(clock)]
SettingsDep = Annotated[Settings, Depends(settings)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
Merchantish = Annotated[Principal, Depends(roles(auth.MERCHANT))]
Techish = Annotated[Principal, Depends(roles(auth.MERCHANT, auth.TECHNICIAN))]
GatewayKey = Annotated[Principal, Depends(roles(auth.GATEWAY))]
AdminDep = Annotated[Principal, Depends(require_admin)]
