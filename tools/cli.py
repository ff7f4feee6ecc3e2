"""`mcode tools ...`: what a field technician runs on a laptop."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tools.boards import BoardError
from tools.build import ARCH, ROMFS, build, romfs_image

app = typer.Typer(help="Field technician tools: build firmware images.", no_args_is_help=True)


@app.command("build")
def build_cmd(out: Annotated[Path, typer.Option(help="Output folder")] = Path("build/firmware"),
              arch: Annotated[str, typer.Option(help="mpy-cross -march")] = ARCH,
              board: Annotated[str | None, typer.Option(help="Ship this hardware/boards profile as "
                                                              "board.json")] = None,
              romfs: Annotated[bool, typer.Option(help=f"Also pack the .mpy into {ROMFS} for a ROMFS "
                                                       "partition (mpremote romfs deploy)")] = True) -> None:
    """Compile firmware/ and the device's protocol modules to .mpy for flashing. Every board
    profile is validated first; a bad one stops the build with the reason."""
    try:
        built = build(out, arch, board=board)
    except BoardError as e:
        Console(stderr=True).print(f"[red]refused:[/red] {e}")
        raise typer.Exit(2) from e
    t = Table("file", "bytes")
    for b in built:
        t.add_row(str(b.output.relative_to(out)), str(b.size))
    t.add_row("total", str(sum(b.size for b in built)))
    if romfs:
        # The image holds the .mpy only: main.py, board.json and config stay on littlefs.
        stage = out.with_name(out.name + ".rom")
        shutil.rmtree(stage, ignore_errors=True)
        shutil.copytree(out, stage, ignore=shutil.ignore_patterns("main.py", "board.json"))
        t.add_row(ROMFS, str(romfs_image(stage, out / ROMFS)))
        shutil.rmtree(stage)
    Console().print(t)
