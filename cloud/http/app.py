"""The HTTP API: `create_app(settings)` builds it; nothing is built at import time."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from cloud.http import docs, error_handlers, middleware, openapi
from cloud.http.ratelimit import Limits
from cloud.http.routes import (
    admin,
    campaigns,
    console_access,
    console_campaigns,
    devices,
    gateways,
    keys,
    ledger,
    locations,
    log,
    login,
    me,
    merchant_page,
    orders,
    payouts,
    public,
    review,
    rules,
    sales,
    shopper,
    till,
)
from cloud.services import tlog
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.migrate import migrated_engine
from cloud.web.pages import STATIC

TITLE = "mcode cloud"
# In this order the OpenAPI document lists the paths as it always has.
ROUTERS = (admin, rules, campaigns, locations, devices, gateways, keys, orders, ledger, public, me,
           merchant_page, sales, log, console_campaigns, payouts, review)


def create_app(settings_: Settings, engine: Engine | None = None,
               clock_: Callable[[], float] = time.time) -> FastAPI:
    """The API on `engine` (or one made from settings.db_url and migrated to the newest schema);
    `clock_` gives unix seconds. Refuses settings a cloud must not run with (SettingsError: no master
    key, a short admin key) and a master key that does not open the stored device keys (SealError)."""
    settings_.check()
    app = FastAPI(title=TITLE, version="0", description=openapi.DESCRIPTION, openapi_tags=openapi.TAGS,
                  generate_unique_id_function=openapi.operation_id, docs_url=None, redoc_url=None)
    app.state.settings = settings_
    app.state.engine = (engine if engine is not None
                        else migrated_engine(settings_.db_url, settings_.master_key))
    app.state.session_factory = vault.session_factory(app.state.engine, settings_)
    vault.check_opens(app.state.session_factory)
    tlog.configure(app.state.session_factory, settings_.trust_log)
    app.state.clock = clock_
    app.state.rate_limits = Limits(app.state.session_factory, settings_, clock_)
    error_handlers.install(app)
    openapi.install(app)
    docs.install(app, TITLE)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for module in ROUTERS:
        app.include_router(module.router)
    app.include_router(login.router)  # HTML forms, outside the API's document
    app.include_router(shopper.router)  # the shopper's pages: /, /c/{base}, /me/saved
    app.include_router(console_access.router)
    app.include_router(till.router)
    app.include_router(me.pages)
    app.include_router(review.pages)  # the console's fraud review page
    app.include_router(console_campaigns.pages)  # the console's campaign pages
    app.include_router(payouts.pages)  # the console's payouts page
    # outermost last: headers, then ?key= refused, keys checked, bodies bounded (middleware.py)
    app.add_middleware(middleware.BodyLimit, max_bytes=settings_.max_body_bytes)
    app.add_middleware(middleware.KeyGate, routes=[r for m in ROUTERS for r in m.router.routes])
    app.add_middleware(middleware.KeyInUrl)
    app.add_middleware(middleware.SecurityHeaders)
    return app
