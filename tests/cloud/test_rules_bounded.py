"""Rule parameters are matched against a strict pattern before any big-number arithmetic, in every
entry point (issue 12, finding B: `a=1e-15000000` made `Fraction(str(v))` build a 15-million-digit
integer, about 10 s of CPU, before the bound check refused it, and froze every tenant's requests).

No timing: a spy stands in for `fractions.Fraction` inside cloud.services.rules and records the
length of every text it is given. On the old code the hostile text reaches it (the spy fails at
once instead of spending the 10 s); now nothing longer than the pattern's bound ever does."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloud.services import rules
from mcode.cli import app
from tests.cloud.conftest import World

HOSTILE = ["1e-15000000", "1e999999", "0." + "3" * 200_000, "1/" + "7" * 100_000, "9" * 5000 + "/1",
           " " * 100_000 + "0.3", "0x1p-99999", "NaN", "-inf"]
LONGEST_PLAIN = 32  # rules._NUMBER_TEXT_MAX: "1234567.1234567" with room for spaces


class _Spy(Fraction):
    """A Fraction that refuses to be built from long text (what a hostile value would cost)."""
    texts: list[int] = []

    def __new__(cls, numerator: Any = 0, denominator: Any = None) -> _Spy:
        if isinstance(numerator, str):
            _Spy.texts.append(len(numerator))
            assert len(numerator) <= LONGEST_PLAIN, "Fraction() got a long text: arithmetic before the check"
        return super().__new__(cls, numerator, denominator)  # type: ignore[no-any-return]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    _Spy.texts = []
    monkeypatch.setattr(rules, "Fraction", _Spy)
    return _Spy.texts


@pytest.mark.parametrize("value", HOSTILE)
def test_service_refuses_before_arithmetic(spy: list[int], value: str) -> None:
    for name in ("a", "b"):
        with pytest.raises(ValueError, match=f"{name} must be a number like 0.3"):
            rules.normalized_params(rules.GEOMETRIC, {name: value})
        with pytest.raises(ValueError, match="must be a number like 0.3"):
            rules.preview(rules.GEOMETRIC, 1, 1, rules.params_from_options(**{name: value}))
    assert spy == []  # refused on the pattern alone


def test_levels_and_numbers_are_bounded_too(spy: list[int]) -> None:
    for bad in ("1" * 100_000, ",".join(["1"] * 100_000), "1e3", "+5", "5_000"):
        with pytest.raises(ValueError, match="comma-separated integers"):
            rules.normalized_params(rules.FIXED_LEVELS, {"levels_bp": bad})
    with pytest.raises(ValueError, match="1 to 100 levels"):
        rules.normalized_params(rules.FIXED_LEVELS, {"levels_bp": [1] * 1_000_000})
    with pytest.raises(ValueError, match="out of range"):
        rules.normalized_params(rules.GEOMETRIC, {"a": 10 ** 4000})
    with pytest.raises(ValueError, match="must be a number"):
        rules.normalized_params(rules.GEOMETRIC, {"a": float("inf")})
    # plain values still work, exactly as before
    assert rules.normalized_params(rules.GEOMETRIC, {"a": " 0.3 ", "b": "1/2"}) == {"a": "3/10", "b": "1/2"}
    assert rules.normalized_params(rules.GEOMETRIC, {"a": 0.25, "b": 0.5}) == {"a": "1/4", "b": "1/2"}
    assert rules.normalized_params(rules.FIXED_LEVELS, {"levels_bp": " 1000, 200 ,100"}) == {
        "levels_bp": [1000, 200, 100]}
    assert all(n <= LONGEST_PLAIN for n in spy)


def _h(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.merchant['api_key']}"}


def test_every_http_entry_point_answers_400_without_arithmetic(client: TestClient, world: World,
                                                               spy: list[int]) -> None:
    q = {"rule": "geometric", "pool": 1, "depth": 1, "a": "1e-15000000"}
    r = client.get("/rules/preview", params=q, headers=_h(world))
    assert (r.status_code, r.json()["code"]) == (400, "bad_rule_params"), r.text
    assert r.json()["message_zh"]
    body = {"base_code": "7777", "slots": 4, "digits": 2, "period_s": 60, "pool_minor": 100,
            "label_zh": "店", "label_en": "Shop", "rule": "geometric", "rule_params": {"a": "1e-15000000"}}
    r = client.post("/campaigns", json=body, headers=_h(world))
    assert (r.status_code, r.json()["code"]) == (400, "bad_rule"), r.text
    cid = world.campaign["campaign_id"]
    for params in ({"a": "1e-15000000"}, {"b": "1/" + "9" * 4000}, {"a": 10 ** 300}):
        r = client.patch(f"/campaigns/{cid}", json={"rule": "geometric", "rule_params": params},
                         headers=_h(world))
        assert (r.status_code, r.json()["code"]) == (400, "bad_rule"), r.text
    assert all(n <= LONGEST_PLAIN for n in spy)


def test_cli_refuses_without_arithmetic(spy: list[int]) -> None:
    r = CliRunner().invoke(app, ["rules", "preview", "--rule", "geometric", "--pool", "1", "--depth", "1",
                                 "--a", "1e-15000000"])
    assert r.exit_code == 2 and r.stdout == ""
    assert json.loads(r.stderr)["code"] == "bad_rule_params"
    assert spy == []
