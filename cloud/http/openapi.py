"""The OpenAPI document: tags, description, operation ids, and the finishing touches FastAPI does
not make (our 400 instead of its 422, the Error schema, the roles each operation admits)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from cloud.http import schemas as o
from cloud.http.deps import BEARER_SCHEME

TAGS = [
    {"name": "public", "description": "No key: code resolution and sharing, rate-limited per client "
                                      "address (429 with Retry-After)."},
    {"name": "registry", "description": "Campaigns (rented base codes), locations, devices, gateways."},
    {"name": "keys", "description": "A merchant's API keys: issue, list, revoke."},
    {"name": "orders", "description": "Sales attributed to entries, refunds, share chains, sharer accounts."},
    {"name": "ledger", "description": "The double-entry payout ledger: statements (JSON or CSV), balances."},
    {"name": "sharer", "description": "A sharer's own earnings, by their visitor cookie."},
    {"name": "gateway", "description": "For gateway keys: their devices' command keys."},
    {"name": "rules", "description": "Reward rules: preview a split before publishing it."},
    {"name": "merchant page", "description": "The merchant's numbers, as HTML or JSON."},
    {"name": "admin", "description": "Provisioning, for admin keys."},
]
DESCRIPTION = """Rotating M-codes on shop displays, sharing, and rewards.

Every error is JSON `{"code", "message", "message_zh"}` (schema `Error`): `code` is stable, the
messages are in English and zh-CN. Invalid parameters or bodies are 400 `bad_request`. Money is in
integer minor units; times are unix milliseconds."""


def operation_id(route: APIRoute) -> str:
    """Operation ids are the handlers' names: stable, readable, unique (the admin router prefixes
    its own with admin_)."""
    return route.name


def _finish(doc: dict[str, Any]) -> None:
    """Drop FastAPI's 422 (validation errors are answered 400 `bad_request`, documented per
    operation), add the Error schema the error responses refer to, and name in each description
    the roles its key must have."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            op.get("responses", {}).pop("422", None)
            roles = [r for req in op.get("security", []) for r in req.get(BEARER_SCHEME, [])]
            if roles:
                desc = op.get("description", "").rstrip()
                op["description"] = (desc + "\n\n" if desc else "") + f"Roles: {', '.join(roles)}."
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components["Error"] = o.Error.model_json_schema()


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _finish(build())  # build() caches the document in app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
