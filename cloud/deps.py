"""FastAPI dependencies: the app's state, and who is asking (cloud/auth.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from cloud import auth
from cloud.auth import Principal
from cloud.db import SessionFactory
from cloud.errors import ApiError, unauthorized
from cloud.models import Merchant
from cloud.settings import Settings


def session_factory(request: Request) -> SessionFactory:
    sf: SessionFactory = request.app.state.session_factory
    return sf


def settings(request: Request) -> Settings:
    st: Settings = request.app.state.settings
    return st


def clock(request: Request) -> Callable[[], float]:
    c: Callable[[], float] = request.app.state.clock
    return c


def bearer(request: Request) -> str:
    h = request.headers.get("authorization", "")
    scheme, _, token = h.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def require_admin(request: Request) -> Principal:
    """The settings' admin key, or an issued admin key."""
    p = auth.principal_for(request.app.state.session_factory, bearer(request),
                           request.app.state.settings.admin_key)
    if p is None:
        if not request.app.state.settings.admin_key and bearer(request) == "":
            raise ApiError(403, "admin_disabled", "no admin key is configured", "未配置管理员密钥")
        raise unauthorized()
    return auth.require(p, auth.ADMIN)


def principal(request: Request) -> Principal:
    """Any valid key as `Authorization: Bearer`, or for a merchant's demo link, `?key=`."""
    key = bearer(request) or request.query_params.get("key", "")
    p = auth.principal_for(request.app.state.session_factory, key, request.app.state.settings.admin_key)
    if p is None:
        raise unauthorized()
    return p


def roles(*allowed: str) -> Callable[[Request], Principal]:
    """A dependency admitting keys of these roles (and admin)."""
    def dep(request: Request) -> Principal:
        return auth.require(principal(request), *allowed)
    return dep


def current_merchant(request: Request) -> Merchant:
    """The merchant of a merchant-role key."""
    p = auth.require(principal(request), auth.MERCHANT)
    if p.merchant_id is None:
        raise auth.forbidden("this page needs a merchant key", "此页面需要商户密钥")
    with request.app.state.session_factory() as s:
        m = s.get(Merchant, p.merchant_id)
    if m is None:
        raise unauthorized()
    m_: Merchant = m
    return m_


SF = Annotated[SessionFactory, Depends(session_factory)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
Merchantish = Annotated[Principal, Depends(roles(auth.MERCHANT))]
Techish = Annotated[Principal, Depends(roles(auth.MERCHANT, auth.TECHNICIAN))]
GatewayKey = Annotated[Principal, Depends(roles(auth.GATEWAY))]
AdminDep = Annotated[Principal, Depends(require_admin)]
