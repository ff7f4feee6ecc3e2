"""`mcode rules ...`: see a reward rule's split before publishing it (docs/rules.md)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cloud.services import rules

app = typer.Typer(help="Reward rules: preview a rule's payouts.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keeps `preview` a sub-command even while it is the only one."""


@app.command("preview")
def preview(
        rule: Annotated[str, typer.Option(help=f"one of {', '.join(rules.RULE_NAMES)}")],
        pool: Annotated[int, typer.Option(help="reward pool in minor units (e.g. fen)")],
        depth: Annotated[int, typer.Option(help="sharers in the chain, closest to the shopper first")],
        levels_bp: Annotated[str | None, typer.Option(
            help="fixed-levels: basis points per level, e.g. 1000,200,100 (= 10/2/1 %)")] = None,
        a: Annotated[str | None, typer.Option(help="geometric: level 1's share, e.g. 0.3")] = None,
        b: Annotated[str | None, typer.Option(help="geometric: ratio between levels, 0 < b < 1")] = None,
        cap: Annotated[int | None, typer.Option(help="budget cap: most paid out in total (minor units)")]
        = None) -> None:
    """Print one JSON object: payouts (closest first), remainder, remainder_to, rule, params."""
    params = rules.params_from_options(levels_bp, a, b)
    code = "unknown_rule"
    try:
        rules.canonical(rule)
        code = "bad_rule_params"
        answer = rules.preview(rule, pool, depth, params, cap)
    except ValueError as e:
        sys.stderr.write(json.dumps({"code": code, "message": str(e)}) + "\n")
        raise typer.Exit(2) from None
    typer.echo(json.dumps(answer))
