"""`mcode tools ...`: what a field technician runs on a laptop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tools.build import ARCH, build

app = typer.Typer(help="Field technician tools: build firmware images.", no_args_is_help=True)


@app.command("build")
def build_cmd(out: Annotated[Path, typer.Option(help="Output folder")] = Path("build/firmware"),
              arch: Annotated[str, typer.Option(help="mpy-cross -march")] = ARCH) -> None:
    """Compile firmware/ and the device's protocol modules to .mpy for flashing."""
    built = build(out, arch)
    t = Table("file", "bytes")
    for b in built:
        t.add_row(str(b.output.relative_to(out)), str(b.size))
    t.add_row("total", str(sum(b.size for b in built)))
    Console().print(t)
