"""The two commands as mcode/cli.py registers them (the same two lines), so these tests do not
depend on every other tier importing."""

from __future__ import annotations

import typer

from audit.cli import verify_command, witness_app

app = typer.Typer(no_args_is_help=True)
app.add_typer(witness_app, name="witness")
app.command("verify")(verify_command)
