"""Pure ASGI middleware that runs before any handler reads a request (docs/security.md, "Keys,
sessions and pages"). From the outside in:

1. SecurityHeaders: nosniff on every answer; on HTML also a CSP without inline script,
   frame-ancestors 'none' and X-Frame-Options DENY, and Referrer-Policy same-origin (nothing
   to other sites; same-origin form posts keep their Origin header, which the login checks).
2. KeyInUrl: `?key=` (and its spellings) is refused with 400 on every path, so a key in a URL is
   never accepted, and a forwarded link stops working instead of granting access.
3. KeyGate: on an operation that needs a key, the Authorization header is checked before the
   body is read: a wrong or missing key costs the server no body bytes.
4. BodyLimit: a body over the limit is refused with 413: by Content-Length before reading, and by
   counting the bytes of http.request messages for a body without one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.http import deps
from cloud.http.error_handlers import error_response
from cloud.services import auth

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HTML_HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"same-origin"))
KEY_PARAMS = frozenset({"key", "api_key", "apikey", "access_token"})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return bytes(v).decode("latin-1")
    return None


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                have = {bytes(k).lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff")]
                ctype = next((bytes(v) for k, v in headers if bytes(k).lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    extra += HTML_HEADERS
                msg = {**msg, "headers": headers + [(k, v) for k, v in extra if k not in have]}
            await send(msg)

        await self.app(scope, receive, send_with_headers)


class KeyInUrl:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            query = bytes(scope["query_string"]).decode("latin-1")
            if any(name.lower() in KEY_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True)):
                await error_response(
                    400, "key_in_url", "API keys are not accepted in URLs: send the key as the "
                    "header `Authorization: Bearer <key>`; people sign in at /login",
                    "不接受放在网址中的 API 密钥：请用请求头 `Authorization: Bearer <密钥>` 发送；"
                    "网页用户请在 /login 登录")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _dependants(d: Dependant) -> Iterator[Dependant]:
    yield d
    for sub in d.dependencies:
        yield from _dependants(sub)


def _first_segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


class KeyGate:
    """Refuses a wrong or missing key before the handler (and FastAPI's body parsing) runs, with
    the answer the dependency would give (deps.key_refusal); a key it found is handed on to the
    dependency in the request state, so each request looks its key up once."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # (route, keyed, admin only, a page session may stand in for the key) for each keyed route,
        # by the first segment of its path, so a keyless path such as /r/{code} costs one dict lookup
        self.routes: dict[str, list[tuple[APIRoute, bool, bool, bool]]] = {}
        for r in routes:
            if isinstance(r, APIRoute) and self.needs(r)[0]:
                self.routes.setdefault(_first_segment(r.path), []).append((r, *self.needs(r)))
        assert not any(k.startswith("{") for k in self.routes), "a keyed path starts with a parameter"

    @staticmethod
    def needs(route: APIRoute) -> tuple[bool, bool, bool]:
        calls = [d.call for d in _dependants(route.dependant)]
        return (deps.bearer_scheme() in calls, deps.require_admin in calls,
                deps.page_merchant in calls or deps.current_merchant in calls)

    def _route(self, scope: Scope) -> tuple[bool, bool] | None:
        for route, _, admin_only, session_ok in self.routes.get(_first_segment(scope["path"]), ()):
            if route.matches(scope)[0] == Match.FULL:
                return admin_only, session_ok
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        authz = _header(scope, b"authorization")
        if route is None or (authz is None and route[1]):
            await self.app(scope, receive, send)
            return
        scheme, _, key = (authz or "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        app_state = scope["app"].state
        p: auth.Principal | None = None
        if key:
            p = await run_in_threadpool(auth.principal_for, app_state.session_factory, key,
                                        app_state.settings.admin_key)
        refused = deps.key_refusal(app_state.settings, key, p, admin_only=route[0])
        if refused is not None:
            await error_response(refused.status, refused.code, refused.message,
                                 refused.message_zh)(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["principal"], state["principal_key"] = p, key
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, "body_too_large", f"the request body is over {self.max_bytes} bytes",
                             f"请求体超过 {self.max_bytes} 字节")(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = {"bytes": 0, "over": False, "started": False}

        async def counted() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                seen["bytes"] += len(msg.get("body", b""))
                if seen["bytes"] > self.max_bytes:
                    seen["over"] = True
                    raise BodyTooLarge
            return msg

        async def guarded(msg: Message) -> None:
            if seen["over"]:
                return  # the app's answer to a body it could not read is replaced by the 413
            seen["started"] = seen["started"] or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not seen["over"]:
                raise
        if seen["over"] and not seen["started"]:
            await self._refuse(scope, receive, send)
