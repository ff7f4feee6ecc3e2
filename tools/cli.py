"""`mcode tools ...`: what a field technician runs on a laptop. Every command says what went wrong
and what to do next in the user's language (LANG), and exits with the codes in tools/errors.py."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from tools import boards, bootlog
from tools.batch import State
from tools.build import ARCH, ARCHES, ROMFS, build, romfs_for
from tools.errors import BAD_INPUT, CHECK_FAILED, ToolError
from tools.i18n import _

app = typer.Typer(help="Field technician tools: build, flash, provision, verify, monitor, label.",
                  no_args_is_help=True)
F = TypeVar("F", bound=Callable[..., Any])
CloudOpt = Annotated[str, typer.Option("--cloud", envvar="MCODE_CLOUD_URL", help="the cloud's URL")]
KeyFileOpt = Annotated[Path | None, typer.Option(help="technician key file (or MCODE_TECHNICIAN_KEY)")]


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)  # the terminal wraps; a pasted command stays whole


def handled(fn: F) -> F:
    """ToolError and board errors as one line and an exit code; never a traceback."""
    @functools.wraps(fn)
    def run(*a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except ToolError as e:
            _err().print(f"[red]{_('error')}:[/red] {e}", highlight=False)
            raise typer.Exit(e.code) from None
        except boards.BoardError as e:
            _err().print(f"[red]{_('error')}:[/red] {e}", highlight=False)
            raise typer.Exit(BAD_INPUT) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    return run  # type: ignore[return-value]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), transient=False)


def _board_check(board: str) -> None:
    boards.profile_path(board)  # BoardError names the profiles there are


@app.command("build")
@handled
def build_cmd(out: Annotated[Path, typer.Option(help="Output folder")] = Path("build/firmware"),
              arch: Annotated[str, typer.Option(help="mpy-cross -march: " + ", ".join(ARCHES))] = ARCH,
              board: Annotated[str | None, typer.Option(help="Ship this hardware/boards profile as "
                                                              "board.json")] = None,
              romfs: Annotated[bool, typer.Option(help=f"Also pack the .mpy into {ROMFS} for a ROMFS "
                                                       "partition")] = True) -> None:
    """Compile firmware/ and the device's protocol modules to .mpy for flashing."""
    if arch not in ARCHES:
        raise ToolError(_("Unknown --arch {arch}. Use one of: {arches} (ESP32 and ESP32-S3: xtensawin; "
                          "ESP32-C3: rv32imc).").format(arch=arch, arches=", ".join(ARCHES)), BAD_INPUT)
    built = build(out, arch, board=board)
    t = Table(_("file"), _("bytes"))
    for b in built:
        t.add_row(str(b.output.relative_to(out)), str(b.size))
    t.add_row(_("total"), str(sum(b.size for b in built)))
    if romfs:
        t.add_row(ROMFS, str(romfs_for(out).stat().st_size))
    Console().print(t)


@app.command("boards")
@handled
def boards_cmd() -> None:
    """The board profiles (hardware/boards) and what they are."""
    t = Table(_("board"), _("chip"), _("display"))
    for p in boards.validate_all():
        import json

        mcu = json.loads(p.path.read_text()).get("mcu", "")
        t.add_row(p.name, mcu, f"{p.driver} {p.width}x{p.height}")
    Console().print(t)


@app.command()
@handled
def flash(port: Annotated[str, typer.Argument(help="serial port, e.g. /dev/ttyACM0")],
          board: Annotated[str, typer.Option(help="hardware/boards profile")],
          image: Annotated[Path | None, typer.Option(help="stock MicroPython .bin (hardware only)")] = None,
          ) -> None:
    """Install the firmware: ROMFS image, main.py and board.json, each read back by sha256."""
    from tools.flashing import flash as do_flash

    _board_check(board)
    with _progress() as prog, tempfile.TemporaryDirectory() as work:
        tasks: dict[str, Any] = {}

        def step(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = prog.add_task(what, total=total)
            prog.update(tasks[what], completed=done, total=total)

        written = do_flash(port, board, Path(work), step, image)
    t = Table(_("file"), "sha256", title=_("Flashed {port}").format(port=port))
    for name, sha in written.items():
        t.add_row(name, sha[:16])
    Console().print(t)


@app.command()
@handled
def merge(board: Annotated[str, typer.Option(help="hardware/boards profile")],
          image: Annotated[Path, typer.Option(help="stock MicroPython .bin for the board's chip")],
          out: Annotated[Path, typer.Option("--out", "-o", help="the merged image")] =
          Path("mcode-flash.bin")) -> None:
    """One image for the whole flash: stock MicroPython plus the firmware's ROMFS partition
    (esptool merge-bin). Flash it with esptool write-flash at the chip's boot offset."""
    from tools.flashing import build_for, mcu, merge_image

    _board_check(board)
    if not image.is_file():
        raise ToolError(_("No such file: {path}").format(path=image), BAD_INPUT)
    with tempfile.TemporaryDirectory() as work:
        fw = build_for(board, False, Path(work) / "firmware")
        merge_image(image, fw / ROMFS, mcu(board), out)
    Console().print(_("Image written: {path}").format(path=out))


@app.command()
@handled
def provision(port: Annotated[str, typer.Argument(help="serial port")],
              board: Annotated[str, typer.Option(help="hardware/boards profile")],
              location: Annotated[str, typer.Option(help="location id or name")],
              cloud: CloudOpt = "http://127.0.0.1:8000",
              campaign: Annotated[str | None, typer.Option(help="campaign id or base code")] = None,
              label: Annotated[str, typer.Option(help="device label, e.g. shelf 3")] = "",
              key_file: KeyFileOpt = None,
              state: Annotated[Path | None, typer.Option(help="state file (resume)")] = None,
              boot_seconds: Annotated[float, typer.Option(help="how long to watch the boot")] = 8.0) -> None:
    """Register the device, write its config, read it back, reset, watch it boot."""
    from tools.cloudapi import Cloud, technician_key
    from tools.provisioning import provision as do_provision

    _board_check(board)
    st = State(state)
    c = Cloud(cloud, technician_key(key_file))
    with Console().status(_("Provisioning {port}...").format(port=port)):
        e = do_provision(port, c, board, location, campaign, label, st.data, st.save, boot_seconds,
                         _echo_line)
    _entry_table(e, _("Provisioned {port}").format(port=port))


def _entry_table(e: dict[str, Any], title: str) -> None:
    t = Table(show_header=False, title=title)
    rows = ((_("device"), e.get("device_id")), (_("name"), e.get("name")), (_("location"), e.get("location")),
            (_("base code"), e.get("base")), (_("slot"), e.get("slot")), ("config sha256",
            str(e.get("config_sha256", ""))[:16]),
            (_("code shown"), e.get("code") or _("none yet: the first gateway visit sets the clock")),
            (_("installed"), e.get("installed_at")))
    for k, v in rows:
        t.add_row(k, str(v))
    Console().print(t)


def _echo_line(line: bootlog.Line) -> None:
    _print_line(Console(), line)


def _print_line(con: Console, line: bootlog.Line) -> None:
    if line.reset:
        con.print(f"[bold yellow]── {_('reset')}: {bootlog.cause_words()[line.reset]} ──[/bold yellow]")
    style = "red" if line.trouble else ""
    con.print(line.text, style=style, markup=False, highlight=False)


@app.command()
@handled
def verify(port: Annotated[str, typer.Argument(help="serial port")]) -> None:
    """Read back every firmware file against this checkout's build, and self-test the board."""
    from tools.verify import verify as do_verify

    with Console().status(_("Verifying {port}...").format(port=port)), tempfile.TemporaryDirectory() as w:
        info, checks = do_verify(port, Path(w))
    t = Table(_("check"), _("result"), _("detail"), title=f"{port}: {info.chip}")
    for c in checks:
        t.add_row(c.what, "[green]ok[/green]" if c.ok else f"[red]{_('FAIL')}[/red]", c.detail)
    Console().print(t)
    bad = sum(not c.ok for c in checks)
    if bad:
        _err().print(_("{n} checks failed.").format(n=bad))
        raise typer.Exit(CHECK_FAILED)


@app.command()
@handled
def monitor(port: Annotated[str, typer.Argument(help="serial port")],
            seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
            reset: Annotated[bool, typer.Option(help="reset the device first (machine.reset over the "
                                                     "REPL) and show its boot")] = False) -> None:
    """The device's log, with reset causes decoded. Ctrl-C ends it."""
    con = Console()
    if reset:
        from tools.link import Link

        with Link(port).reset_open() as s:
            for line in bootlog.follow(s, port, seconds):
                _print_line(con, line)
        return
    for line in bootlog.lines(port, seconds):
        _print_line(con, line)


@app.command()
@handled
def label(out: Annotated[Path, typer.Argument(help="label.png or label.pdf; a folder with --state")],
          state: Annotated[Path | None, typer.Option(help="one label per device in this state file")] = None,
          device: Annotated[str, typer.Option(help="device name")] = "",
          location: Annotated[str, typer.Option()] = "",
          base: Annotated[str, typer.Option(help="base code")] = "",
          date: Annotated[str, typer.Option(help="install date")] = time.strftime("%Y-%m-%d"),
          url: Annotated[str, typer.Option(help="shopper page; {base} is replaced")] =
          os.environ.get("MCODE_SHOP_URL", "https://mcode.example/s/{base}")) -> None:
    """A printable label: device name, location, base code, QR of the shopper page, install date."""
    from tools.label import LabelData, save

    items = []
    if state is not None:
        out.mkdir(parents=True, exist_ok=True)
        for e in State(state).data.values():
            d = LabelData(e.get("name", ""), e.get("location", ""), e.get("base", ""),
                          url.format(base=e.get("base", "")), e.get("installed_at") or date)
            items.append((d, out / f"{d.device or 'device'}.png"))
    elif not (device and base):
        raise ToolError(_("Give --device and --base (and --location), or --state FILE."), BAD_INPUT)
    else:
        items.append((LabelData(device, location, base, url.format(base=base), date), out))
    for d, path in items:
        Console().print(_("Label written: {path}").format(path=save(d, path)))


@app.command()
@handled
def batch(ports: Annotated[list[str], typer.Argument(help="serial ports, one board each")],
          board: Annotated[str, typer.Option(help="hardware/boards profile")],
          location: Annotated[str, typer.Option(help="location id or name")],
          state: Annotated[Path, typer.Option(help="state file: rerun with it to resume")],
          cloud: CloudOpt = "http://127.0.0.1:8000",
          campaign: Annotated[str | None, typer.Option(help="campaign id or base code")] = None,
          key_file: KeyFileOpt = None,
          boot_seconds: Annotated[float, typer.Option()] = 8.0) -> None:
    """Flash and provision a box of boards; rerun with the same --state after a pulled cable."""
    from tools.batch import run_batch

    failed = run_batch(ports, board, location, state, cloud, campaign, key_file, boot_seconds)
    if failed:
        raise typer.Exit(CHECK_FAILED)
