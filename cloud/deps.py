"""FastAPI dependencies: the app's state, admin and merchant authentication."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from cloud.db import SessionFactory
from cloud.errors import ApiError, unauthorized
from cloud.models import Merchant
from cloud.provision import merchant_by_key
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


def require_admin(request: Request) -> None:
    key = request.app.state.settings.admin_key
    if not key:
        raise ApiError(403, "admin_disabled", "no admin key is configured", "未配置管理员密钥")
    if not hmac.compare_digest(bearer(request).encode(), key.encode()):
        raise unauthorized()


def current_merchant(request: Request) -> Merchant:
    """Merchant API key as `Authorization: Bearer` or, for a demo link, `?key=`."""
    key = bearer(request) or request.query_params.get("key", "")
    m = merchant_by_key(request.app.state.session_factory, key)
    if m is None:
        raise unauthorized()
    return m


SF = Annotated[SessionFactory, Depends(session_factory)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
