"""`mcode`: one command fronting every tier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audit.cli import verify_command, witness_app
from cloud.cli.db import app as db_app
from cloud.cli.gateways import app as cloud_gateways_app
from cloud.cli.log import app as cloud_log_app
from cloud.cli.main import app as cloud_app
from cloud.cli.rules import app as rules_app
from cloud.cli.users import links_app, users_app
from gateway.cli import app as gateway_app
from tools.cli import app as tools_app

MAX_DEMO_DEVICES = 32  # each is a MicroPython process; a campaign of 2-digit codes has room for them

app = typer.Typer(help="mcode: rotating M-codes, BLE gateway, reward cloud.", no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")
cloud_app.add_typer(db_app, name="db")
cloud_app.add_typer(cloud_gateways_app, name="gateway")
cloud_app.add_typer(cloud_log_app, name="log")
cloud_app.add_typer(users_app, name="user")
cloud_app.add_typer(links_app, name="shared-link")
app.add_typer(cloud_app, name="cloud")
app.add_typer(tools_app, name="tools")
app.add_typer(rules_app, name="rules")
app.add_typer(witness_app, name="witness")
app.command("verify")(verify_command)


@app.command()
def demo(devices: Annotated[int, typer.Option(help="virtual devices")] = 3,
         duration: Annotated[float | None,
                             typer.Option(help="seconds of shoppers; default: until Ctrl-C")] = None,
         check: Annotated[bool, typer.Option(help="then drain, check, print one JSON line")] = False,
         workdir: Annotated[Path | None, typer.Option(help="keep state and logs here")] = None,
         drain: Annotated[float, typer.Option(help="seconds allowed for the pipeline to drain")] = 60.0,
         seed: Annotated[int, typer.Option(help="shoppers' random seed")] = 1) -> None:
    """Run the virtual fleet: Mosquitto, BLE radio, cloud, gateway, devices and shoppers."""
    from sim.demo import run_demo

    if not 1 <= devices <= MAX_DEMO_DEVICES:
        raise typer.BadParameter(f"{devices}: give 1 to {MAX_DEMO_DEVICES} · 显示屏数量须为 1 至 "
                                 f"{MAX_DEMO_DEVICES}", param_hint="--devices")
    if duration is not None and duration <= 0:
        raise typer.BadParameter(f"{duration:g}: give seconds above 0, or leave it out to run until Ctrl-C · "
                                 "须为大于 0 的秒数，或不填以运行到 Ctrl-C", param_hint="--duration")
    if drain < 0:
        raise typer.BadParameter(f"{drain:g}: give 0 or more seconds · 须为 0 或更多秒", param_hint="--drain")
    if check and duration is None:
        raise typer.BadParameter("--check needs --duration · --check 需要 --duration")
    raise typer.Exit(run_demo(devices, duration, check, workdir, drain, seed))


if __name__ == "__main__":
    app()
