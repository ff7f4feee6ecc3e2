"""`mcode rules preview` and GET /rules/preview: one JSON object, the same as cloud.services.rules computes,
every rule's parameters accepted, bad input a JSON error with a stable code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloud.services import merchants
from cloud.services.rules import preview
from cloud.store.engine import SessionFactory
from mcode.cli import app

CASES: list[tuple[list[str], dict[str, Any], dict[str, Any]]] = [
    # (CLI options, query params, expected subset)
    (["--rule", "red-balloon", "--pool", "400000", "--depth", "4"],
     {"rule": "red-balloon", "pool": 400000, "depth": 4},
     {"payouts": [200000, 100000, 50000, 25000], "remainder": 25000, "remainder_to": "charity",
      "rule": "red-balloon", "params": {}}),
    (["--rule", "red_balloon", "--pool", "400000", "--depth", "3", "--cap", "250000"],
     {"rule": "red_balloon", "pool": 400000, "depth": 3, "cap": 250000},
     {"payouts": [200000, 50000, 0], "remainder": 150000, "rule": "red-balloon", "budget_cap_minor": 250000}),
    (["--rule", "fixed-levels", "--levels-bp", "1000,200,100", "--pool", "400000", "--depth", "4"],
     {"rule": "fixed-levels", "levels_bp": "1000,200,100", "pool": 400000, "depth": 4},
     {"payouts": [40000, 8000, 4000, 0], "remainder": 348000, "remainder_to": "merchant",
      "params": {"levels_bp": [1000, 200, 100]}}),
    (["--rule", "geometric", "--a", "0.3", "--b", "0.5", "--pool", "400000", "--depth", "3"],
     {"rule": "geometric", "a": "0.3", "b": "0.5", "pool": 400000, "depth": 3},
     {"payouts": [120000, 60000, 30000], "remainder": 190000, "remainder_to": "charity",
      "params": {"a": "3/10", "b": "1/2"}}),
]

BAD: list[tuple[list[str], dict[str, Any], str]] = [
    (["--rule", "pyramid", "--pool", "1", "--depth", "1"], {"rule": "pyramid", "pool": 1, "depth": 1},
     "unknown_rule"),
    (["--rule", "geometric", "--a", "0.9", "--pool", "1", "--depth", "1"],
     {"rule": "geometric", "a": "0.9", "pool": 1, "depth": 1}, "bad_rule_params"),
    (["--rule", "fixed-levels", "--levels-bp", "9000,2000", "--pool", "1", "--depth", "1"],
     {"rule": "fixed-levels", "levels_bp": "9000,2000", "pool": 1, "depth": 1}, "bad_rule_params"),
    (["--rule", "red-balloon", "--a", "0.5", "--pool", "1", "--depth", "1"],
     {"rule": "red-balloon", "a": "0.5", "pool": 1, "depth": 1}, "bad_rule_params"),
    (["--rule", "red-balloon", "--pool", "-1", "--depth", "1"],
     {"rule": "red-balloon", "pool": -1, "depth": 1}, "bad_rule_params"),
]


@pytest.fixture
def merchant_headers(sf: SessionFactory) -> dict[str, str]:
    key = merchants.create_merchant(sf, "Rules Shop")["api_key"]
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("args, query, expected", CASES)
def test_cli_prints_one_json_object(args: list[str], query: dict[str, Any], expected: dict[str, Any]) -> None:
    r = CliRunner().invoke(app, ["rules", "preview", *args])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert {k: out[k] for k in expected} == expected
    assert sum(out["payouts"]) + out["remainder"] == out["pool"]


@pytest.mark.parametrize("args, query, expected", CASES)
def test_api_answers_as_the_cli(client: TestClient, merchant_headers: dict[str, str], args: list[str],
                                query: dict[str, Any], expected: dict[str, Any]) -> None:
    r = client.get("/rules/preview", params=query, headers=merchant_headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert {k: out[k] for k in expected} == expected
    cli = CliRunner().invoke(app, ["rules", "preview", *args])
    assert json.loads(cli.stdout) == out


@pytest.mark.parametrize("args, query, code", BAD)
def test_bad_input_is_a_coded_json_error(client: TestClient, merchant_headers: dict[str, str],
                                         args: list[str], query: dict[str, Any], code: str) -> None:
    r = CliRunner().invoke(app, ["rules", "preview", *args])
    assert r.exit_code == 2 and r.stdout == ""
    err = json.loads(r.stderr)
    assert err["code"] == code and err["message"]
    a = client.get("/rules/preview", params=query, headers=merchant_headers)
    assert a.status_code == 400 and a.json()["code"] == code and a.json()["message"] == err["message"]


def test_api_needs_a_merchant_key_and_validates_types(client: TestClient,
                                                      merchant_headers: dict[str, str]) -> None:
    q = {"rule": "red-balloon", "pool": 400000, "depth": 4}
    anon = client.get("/rules/preview", params=q)
    assert anon.status_code == 401 and anon.json()["code"] == "unauthorized"
    wrong = client.get("/rules/preview", params=q, headers={"Authorization": "Bearer mk_nope"})
    assert wrong.status_code == 401
    typo = client.get("/rules/preview", params={**q, "pool": "lots"}, headers=merchant_headers)
    assert typo.status_code == 400 and typo.json()["code"] == "bad_request"
    assert client.get("/rules/preview", params=q, headers=merchant_headers).json() == preview(
        "red-balloon", 400000, 4)
