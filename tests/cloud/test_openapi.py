"""The OpenAPI document against the running API: schemathesis generates requests for every
operation from the document (valid ones, half of them aimed at real objects of a provisioned
world, and invalid ones), sends them with real keys, and checks each answer: no 5xx, the status,
content type, headers and body are the documented ones, and every error is JSON with a stable
`code` and non-empty messages. Then: every operation was reached past authentication, most
answered 2xx at least once, and every one answered at least one checked error."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from cloud.http.app import create_app
from cloud.services import auth, checkout, provision
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol.rotation import window
from tests.cloud.conftest import ADMIN_KEY, MASTER_KEY, VISITOR_SECRET, Clock, World, public_hex
from tests.cloud.test_resolve_orders import PERIOD, code_at, enter, share
from tests.cloud.test_sales import click_token

POSITIVE_EXAMPLES = 25  # per operation: valid requests
NEGATIVE_EXAMPLES = 10  # per operation: requests that break the document (must be 4xx)
ADMIN_EXAMPLES = 10  # per tenant operation: valid requests with the admin key
WRONG_KEY_EXAMPLES = 3  # per keyed operation: valid requests with a key that does not exist
STABLE_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# Operations that may never answer 2xx to generated requests, and why.
NO_SUCCESS_EXPECTED: dict[str, str] = {
    # the trust log's (tests/cloud/test_tlog.py has their 2xx): random sizes miss a small log, and
    # a cosignature needs a witness key; a sharer's bundle needs the cookie of a paid sharer
    "GET /log/proof/inclusion": "random index and size beyond a small log",
    "GET /log/proof/consistency": "random sizes beyond a small log",
    "POST /log/cosignatures": "a witness's signature",
    "GET /me/payouts/{payout_id}/proof": "a paid sharer's cookie",
    # the fuzz world's order is inside its hold, so nothing is due and no settlement exists
    # (tests/cloud/test_payouts_http.py has the 2xx)
    "POST /payouts/settlements": "a payout past its hold",
    "GET /payouts/settlements/{settlement_id}": "a settlement",
    # the fuzz world's order is not flagged (tests/cloud/test_review.py has the 2xx)
    "POST /review/orders/{order_id}/decision": "a flagged order"}
# Operations that have no error answer to check, and why.
NO_ERROR_EXPECTED = {"GET /healthz": "no parameters, no key",
                     "GET /log/checkpoint": "no parameters, no key (429 is checked in test_tlog)"}
# Keyless operations whose every request fits the document, and why.
NO_INVALID_REQUEST = {"GET /me/earnings": "its one parameter, a cookie, takes any string",
                      "POST /entries/{entry_id}/share": "its one parameter, the entry id, takes any string",
                      "GET /e/{entry_id}/pay": "its one parameter, the entry id, takes any string"}


def _header(response: Any, name: str) -> str:
    """A header of a schemathesis response (whose headers map to lists of values)."""
    values = response.headers.get(name.lower(), [""])
    return str(values[0])


def error_is_coded_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schemathesis check: an error answer is JSON {"code", "message", "message_zh"}, the code
    snake_case, the messages non-empty."""
    if response.status_code < 400:
        return None
    ctype = _header(response, "content-type")
    assert ctype.startswith("application/json"), f"error with content type {ctype!r}"
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str) and STABLE_CODE.match(body["code"]), body
    for k in ("message", "message_zh"):
        assert isinstance(body.get(k), str) and body[k].strip(), (k, body)
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, error_is_coded_json]


@dataclass
class Fuzz:
    """The provisioned world as the fuzzer uses it."""
    keys: dict[str, str]  # "merchant", "admin", "gateway" -> key sent as Bearer
    ids: dict[str, Any]  # parameter name -> a real value, injected into half of the valid requests
    own: dict[str, dict[str, Any]]  # operation -> ids it gets instead (it destroys or fills them)
    protected: dict[str, set[Any]]  # parameter -> values a destructive operation must not get


DESTRUCTIVE = {"DELETE /keys/{key_id}", "POST /campaigns/{campaign_id}/release",
               "PATCH /campaigns/{campaign_id}"}


def _campaign(client: TestClient, h: dict[str, str], base: str, slots: int, digits: int) -> int:
    r = client.post("/campaigns", headers=h, json={
        "base_code": base, "slots": slots, "digits": digits, "period_s": 60, "pool_minor": 100,
        "label_zh": "备用", "label_en": "spare"})
    assert r.status_code == 201, r.text
    cid: int = r.json()["campaign_id"]
    return cid


def _provision(client: TestClient, sf: SessionFactory, clock: Clock, world: World) -> Fuzz:
    mid = world.merchant["merchant_id"]
    merchant_key = world.merchant["api_key"]
    gw_key = str(auth.issue_key(sf, auth.GATEWAY, mid, gateway_id=world.gateway_id)["api_key"])
    victim = auth.issue_key(sf, auth.TECHNICIAN, mid, label="for DELETE /keys")
    h = {"Authorization": f"Bearer {merchant_key}"}
    loc = client.post("/locations", json={"name": "floor 1"}, headers=h).json()
    spare = {"campaign_id": _campaign(client, h, "6121", 4, 2)}  # for PATCH and release
    many_slots = {"campaign_id": _campaign(client, h, "6122", 1000, 4)}  # for new devices
    code = code_at(world, window(clock.t, PERIOD))
    a = enter(client, code)
    b = enter(client, share(client, a["entry_id"]))
    b_visitor = client.cookies.get("mcode_visitor")
    share(client, b["entry_id"])
    order = client.post("/orders", json={"entry_id": b["entry_id"], "amount_minor": 500},
                        headers={**h, "Idempotency-Key": "fuzz-1"}).json()
    client.cookies.clear()
    click = click_token(sf, b["entry_id"], world.campaign["campaign_id"], int(clock.t * 1000), "fuzz-click")
    checkout_code = checkout.issue(sf, b["entry_id"], int(clock.t * 1000))["code"]
    key_ids = {k["key_id"] for k in auth.list_keys(sf, mid)} - {victim["key_id"]}
    # revocation is final: a gateway of its own, so that rotation (of the world's) can succeed
    spare_key = public_hex(Ed25519PrivateKey.generate())
    spare_gw = {"gateway_id": provision.create_gateway(sf, "00000000000000c3", spare_key,
                                                       merchant_id=mid)["gateway_id"]}
    return Fuzz(
        keys={"merchant": merchant_key, "admin": ADMIN_KEY, "gateway": gw_key},
        ids={"campaign_id": world.campaign["campaign_id"], "location_id": loc["location_id"],
             "device_id": world.devices[0]["device_id"], "entry_id": b["entry_id"],
             "order_id": order["order_id"], "participant_id": order["payouts"][0]["participant_id"],
             "key_id": victim["key_id"], "merchant_id": mid, "gateway_id": world.gateway_id,
             "code": code, "mcode_visitor": b_visitor, "click_token": click, "checkout_code": checkout_code},
        own={**{op: spare for op in DESTRUCTIVE},
             "POST /devices": many_slots, "POST /admin/devices": many_slots,
             "POST /gateways/{gateway_id}/revoke": spare_gw,
             # a new key only for a device not yet in use: device 0 has entries, device 1 none
             "POST /devices/{device_id}/key": {"device_id": world.devices[1]["device_id"]}},
        protected={"campaign_id": {world.campaign["campaign_id"]}, "key_id": key_ids},
    )


def _key_for(name: str, op: dict[str, Any]) -> str | None:
    """Which role's key the fuzzer sends: none for public operations."""
    if not op.get("security"):
        return None
    if name.split(" ", 1)[1].startswith("/admin/"):
        return "admin"
    if name == "GET /gateway/devices":
        return "gateway"
    return "merchant"


def _inject(case: Any, values: dict[str, Any]) -> None:
    for container in (case.path_parameters, case.query, case.cookies, case.body):
        if isinstance(container, dict):
            for k in container:
                if k in values:
                    container[k] = values[k]


@dataclass
class Target:
    """One operation as the fuzzer calls it."""
    name: str  # "GET /campaigns/{campaign_id}"
    headers: dict[str, str]  # its key, if it takes one
    ids: dict[str, Any]
    statuses: Counter[int]
    errors: int = 0
    requests: int = 0


def _fuzz(operation: Any, t: Target, fuzz: Fuzz, mode: GenerationMode, n: int,
          headers: dict[str, str] | None = None, strategy: Any = None) -> None:
    """n requests of one mode with t's key (or `headers`); valid ones aim half the time at the
    world's real objects."""
    negative = mode is GenerationMode.NEGATIVE
    headers = t.headers if headers is None else headers
    real_ids = st.just(False) if negative else st.booleans()
    cases = operation.as_strategy(generation_mode=mode) if strategy is None else strategy

    @settings(max_examples=n, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases, real=real_ids)
    def run(case: Any, real: bool) -> None:
        if real:
            _inject(case, t.ids)
        if t.name in DESTRUCTIVE:
            for k, bad in fuzz.protected.items():
                assume(not case.path_parameters or case.path_parameters.get(k) not in bad)
        r = case.call(headers=headers)
        t.requests += 1
        t.statuses[r.status_code] += 1
        t.errors += r.status_code >= 400
        checks = CHECKS + [negative_data_rejection] if negative else CHECKS
        case.validate_response(r, checks=checks, headers=headers)

    run()


@pytest.fixture
def fuzz(client: TestClient, sf: SessionFactory, clock: Clock, world: World) -> Fuzz:
    return _provision(client, sf, clock, world)


def test_schemathesis_finds_no_server_error_and_answers_match_the_document(
        engine: Engine, clock: Clock, fuzz: Fuzz) -> None:
    app = create_app(Settings(db_url="unused", admin_key=ADMIN_KEY, master_key=MASTER_KEY,
                              visitor_secret=VISITOR_SECRET), engine=engine, clock_=clock)
    doc = app.openapi()
    # unknown query parameters are ignored, as HTTP APIs do: do not send them as "invalid data"
    config = SchemathesisConfig.from_dict({"generation": {"allow-extra-parameters": False}})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    started = time.perf_counter()
    targets: list[Target] = []
    unbreakable: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        doc_op = doc["paths"][operation.path][operation.method.lower()]
        role = _key_for(name, doc_op)
        t = Target(name, {"Authorization": f"Bearer {fuzz.keys[role]}"} if role else {},
                   {**fuzz.ids, **fuzz.own.get(name, {})}, Counter())
        targets.append(t)
        for documented in operation.get_strategies_from_examples():  # the document's own examples
            _fuzz(operation, t, fuzz, GenerationMode.POSITIVE, 2, strategy=documented)
        _fuzz(operation, t, fuzz, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
        if role == "merchant":  # the same as an admin, who must name the tenant (merchant_id)
            _fuzz(operation, t, fuzz, GenerationMode.POSITIVE, ADMIN_EXAMPLES,
                  {"Authorization": f"Bearer {ADMIN_KEY}"})
        if role:  # a wrong key: 401 for every keyed operation
            _fuzz(operation, t, fuzz, GenerationMode.POSITIVE, WRONG_KEY_EXAMPLES,
                  {"Authorization": "Bearer mk_not-a-key"})
        if doc_op.get("parameters") or doc_op.get("requestBody"):  # else nothing can be invalid
            try:
                _fuzz(operation, t, fuzz, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
            except Unsatisfiable:  # e.g. a lone string cookie: no value breaks the document
                unbreakable.append(name)
    took = time.perf_counter() - started
    print(f"\nschemathesis: {len(targets)} operations, {sum(t.requests for t in targets)} requests "
          f"in {took:.1f} s; no invalid request possible for {unbreakable}")
    for t in targets:
        print(f"  {t.name:45} {dict(sorted(t.statuses.items()))}")
    assert {t.name for t in targets} == {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert set(unbreakable) == set(NO_INVALID_REQUEST)
    assert [t.name for t in targets if not set(t.statuses) - {401}] == [], "never got past the key check"
    assert [t.name for t in targets if not any(200 <= s < 300 for s in t.statuses)
            and t.name not in NO_SUCCESS_EXPECTED] == [], "never answered 2xx"
    assert [t.name for t in targets if not t.errors and t.name not in NO_ERROR_EXPECTED] == [], \
        "no error answer was checked"


def _app_schema(engine: Engine, clock: Clock, **settings_: Any) -> Any:
    app = create_app(Settings(db_url="unused", admin_key=ADMIN_KEY, master_key=MASTER_KEY, **settings_),
                     engine=engine, clock_=clock)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_rate_limited_and_csv_answers_are_as_documented(engine: Engine, clock: Clock, fuzz: Fuzz) -> None:
    """The answers the fuzzer does not reach by chance: 429 with Retry-After (one request per
    client address allowed here), and a statement as CSV."""
    schema = _app_schema(engine, clock, rate_client_burst=1, rate_client_per_s=0.001)
    limited = [("/r/{code}", "GET", {"path_parameters": {"code": fuzz.ids["code"]}}),
               ("/entries/{entry_id}/share", "POST", {"path_parameters": {"entry_id": fuzz.ids["entry_id"]}}),
               ("/me/earnings", "GET", {"cookies": {"mcode_visitor": fuzz.ids["mcode_visitor"]}})]
    answers = []
    for path, method, parts in limited:
        for _ in range(2):
            case = schema[path][method].Case(**parts)
            r = case.call()
            case.validate_response(r, checks=CHECKS)
            answers.append((path, r.status_code, _header(r, "retry-after")))
    assert answers[0][1] == 200 and all(status == 429 for _, status, _ in answers[1:]), answers
    assert all(int(after) >= 1 for _, _, after in answers[1:]), answers

    schema = _app_schema(engine, clock)
    merchant = {"Authorization": f"Bearer {fuzz.keys['merchant']}"}
    for path, pid in (("/ledger/campaigns/{campaign_id}", "campaign_id"),
                      ("/ledger/sharers/{participant_id}", "participant_id")):
        case = schema[path]["GET"].Case(path_parameters={pid: fuzz.ids[pid]}, query={"format": "csv"})
        r = case.call(headers=merchant)
        case.validate_response(r, checks=CHECKS, headers=merchant)
        assert r.status_code == 200 and _header(r, "content-type").startswith("text/csv"), r.text
        assert r.text.splitlines()[0] == "account,txn,order_id,booked_at_ms,amount_minor,due_at_ms,held"
        assert len(r.text.splitlines()) > 1  # the fuzz world's order booked entries


# Clients are generated from these names: renaming one is a breaking change, so it shows here.
OPERATION_IDS = {
    "POST /admin/merchants": "admin_create_merchant", "POST /admin/campaigns": "admin_create_campaign",
    "POST /admin/devices": "admin_create_device", "POST /admin/gateways": "admin_create_gateway",
    "GET /admin/gateways/{gateway_id}/devices": "admin_get_gateway_devices",
    "POST /admin/keys": "admin_issue_key", "GET /rules/preview": "preview_rule",
    "GET /campaigns": "list_campaigns", "POST /campaigns": "create_campaign",
    "GET /campaigns/{campaign_id}": "get_campaign", "PATCH /campaigns/{campaign_id}": "update_campaign",
    "POST /campaigns/{campaign_id}/release": "release_campaign", "GET /locations": "list_locations",
    "POST /locations": "create_location", "GET /locations/{location_id}": "get_location",
    "GET /devices": "list_devices", "POST /devices": "create_device",
    "GET /devices/{device_id}": "get_device",
    "POST /devices/{device_id}/key": "rekey_device", "GET /gateways": "list_gateways",
    "GET /gateway/devices": "get_gateway_devices", "GET /keys": "list_keys", "POST /keys": "create_key",
    "DELETE /keys/{key_id}": "revoke_key", "POST /orders": "place_order",
    "GET /orders/{order_id}": "get_order",
    "POST /orders/{order_id}/refund": "refund_order", "GET /entries/{entry_id}/chain": "get_entry_chain",
    "POST /sharers/{participant_id}/account": "link_sharer_account",
    "GET /ledger/campaigns/{campaign_id}": "get_campaign_statement",
    "GET /ledger/sharers/{participant_id}": "get_sharer_statement", "GET /ledger/balances": "get_balances",
    "GET /me/earnings": "get_my_earnings", "GET /healthz": "healthz", "GET /r/{code}": "resolve_code",
    "POST /entries/{entry_id}/share": "share_entry", "GET /merchant": "get_merchant_page",
    "GET /merchant/stats.json": "get_merchant_stats",
    "POST /sales/online": "report_online_sale", "POST /sales/till": "record_till_sale",
    "GET /e/{entry_id}/pay": "pay_at_counter",
    "POST /gateways/{gateway_id}/revoke": "revoke_gateway",
    "POST /gateways/{gateway_id}/rotate": "rotate_gateway",
    "POST /devices/{device_id}/install": "install_device",
    "GET /log/checkpoint": "get_checkpoint", "GET /log/proof/inclusion": "get_inclusion_proof",
    "GET /log/proof/consistency": "get_consistency_proof", "POST /log/cosignatures": "post_cosignature",
    "GET /ledger/payouts/{payout_id}/proof": "get_payout_proof",
    "GET /me/payouts/{payout_id}/proof": "get_my_payout_proof",
    "GET /payouts/due": "get_due_payouts", "POST /payouts/settlements": "settle_payouts",
    "GET /payouts/settlements": "list_settlements",
    "GET /payouts/settlements/{settlement_id}": "get_settlement",
    "GET /payouts/sharers/{participant_id}": "get_payout_statement",
    "GET /review/flags": "list_review_flags", "POST /review/orders/{order_id}/decision": "decide_review",
    "POST /review/scan": "scan_review",
    "GET /base-codes/availability": "base_code_availability",
    "GET /campaigns/{campaign_id}/draft": "get_campaign_draft",
    "PUT /campaigns/{campaign_id}/draft": "put_campaign_draft",
    "POST /campaigns/{campaign_id}/publish": "publish_campaign",
    "GET /campaigns/{campaign_id}/versions": "list_campaign_versions",
}
RATE_LIMITED = {"GET /r/{code}", "POST /entries/{entry_id}/share", "GET /me/earnings",
                "GET /e/{entry_id}/pay"}
# the trust log's public routes and a sharer's own proof: no key, limited per client address
KEYLESS_LOG = {"GET /log/checkpoint", "GET /log/proof/inclusion", "GET /log/proof/consistency",
               "POST /log/cosignatures", "GET /me/payouts/{payout_id}/proof"}
ERROR = {"$ref": "#/components/schemas/Error"}


def test_document_declares_ids_tags_keys_roles_and_errors(tmp_path: Path) -> None:
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'doc.db'}", admin_key=ADMIN_KEY,
                              master_key=MASTER_KEY))
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
    ops = {f"{m.upper()} {p}": op for p, item in doc["paths"].items() for m, op in item.items()}
    assert {name: op["operationId"] for name, op in ops.items()} == OPERATION_IDS
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "message_zh"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for name, op in ops.items():
        assert op.get("tags"), name
        assert "422" not in op["responses"], name  # validation errors are 400 bad_request
        assert any(s.startswith("2") for s in op["responses"]), name
        for status, resp in op["responses"].items():
            if status == "204":  # no content, by definition
                assert "content" not in resp, (name, status)
            elif status.startswith("2"):
                assert resp.get("content"), (name, status)
            elif status.startswith("3"):  # a redirect (a browser on /r/{code}): no body, a description
                assert "content" not in resp and resp["description"], (name, status)
            else:  # JSON for API clients; a browser's page (text/html) may stand beside it
                assert resp["content"]["application/json"] == {"schema": ERROR}, (name, status)
                assert set(resp["content"]) <= {"application/json", "text/html"}, (name, status)
        roles = [r for req in op.get("security", []) for r in req.get("apiKey", [])]
        if name in {"GET /healthz"} | RATE_LIMITED | KEYLESS_LOG:
            assert not roles, name
        else:
            assert roles and f"Roles: {', '.join(roles)}." in op["description"], name
            assert {"401", "403"} <= set(op["responses"]), name
        if name in RATE_LIMITED:
            assert "Retry-After" in op["responses"]["429"]["headers"], name
        if "{" in name:  # an id or code in the path: it may name nothing
            assert "404" in op["responses"], name
    assert ops["GET /ledger/campaigns/{campaign_id}"]["responses"]["200"]["content"].keys() == {
        "application/json", "text/csv"}
    assert ops["GET /merchant"]["responses"]["200"]["content"].keys() == {"text/html"}
