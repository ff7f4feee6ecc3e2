"""GET /rules/preview: a reward rule's split for a pool and chain depth, before publishing it.
It reads no tenant data; it asks for a merchant API key, as a merchant tool (a keyless, rate-limited
variant could use cloud/http/ratelimit.py like /r/{code}). Its parameters are bounded before any
arithmetic (cloud/services/rules.py, parse_fraction)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cloud.errors import bad_request
from cloud.http import schemas as o
from cloud.http.deps import MerchantDep
from cloud.http.inputs import RULES, checked
from cloud.http.schemas import I64_MAX, I64_MIN, KEYED, errors
from cloud.services import rules

router = APIRouter(tags=["rules"])


@router.get("/rules/preview", response_model=o.RulePreview, responses=errors(*KEYED))
def preview_rule(
        _merchant: MerchantDep,
        rule: Annotated[str, Query(description=f"one of {', '.join(rules.RULE_NAMES)}",
                                   json_schema_extra=checked(enum=RULES))],
        pool: Annotated[int, Query(description="reward pool in minor units", ge=I64_MIN, le=I64_MAX,
                                   json_schema_extra=checked(minimum=0))],
        depth: Annotated[int, Query(description="sharers in the chain",
                                    json_schema_extra=checked(minimum=0, maximum=rules.MAX_DEPTH))],
        levels_bp: Annotated[str | None, Query(description="fixed-levels: e.g. 1000,200,100")] = None,
        a: Annotated[str | None, Query(description="geometric: e.g. 0.3")] = None,
        b: Annotated[str | None, Query(description="geometric: 0 < b < 1")] = None,
        cap: Annotated[int | None, Query(description="budget cap, minor units", ge=I64_MIN, le=I64_MAX,
                                         json_schema_extra=checked(minimum=0))] = None,
) -> dict[str, Any]:
    """payouts (closest participant to the shopper first), remainder, remainder_to, rule, params.
    Values the rules refuse are 400 unknown_rule or bad_rule_params."""
    try:
        rules.canonical(rule)
    except ValueError as e:
        raise bad_request("unknown_rule", str(e), "未知的酬众规则") from None
    try:
        return rules.preview(rule, pool, depth, rules.params_from_options(levels_bp, a, b), cap)
    except ValueError as e:
        raise bad_request("bad_rule_params", str(e), f"规则参数无效：{e}") from None
