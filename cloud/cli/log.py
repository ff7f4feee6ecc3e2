"""`mcode cloud log ...`: the trust log from the operator's side (docs/trust.md): its key, a
checkpoint on demand, and a merchant's own copy of the whole log and data (checked offline with
`mcode verify --log DIR`). Settings come from the environment (MCODE_CLOUD_*), as for `run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.main import DbUrlOpt, _refusal, _session_factory
from cloud.settings import Settings
from protocol import note

app = typer.Typer(help="The trust log: its key, checkpoints, and an export to check offline. "
                       "可信日志：公钥、检查点，以及可离线核验的导出。",
                  no_args_is_help=True)


def _zh() -> bool:
    import os

    return (os.environ.get("LC_ALL") or os.environ.get("LANG") or "").lower().startswith("zh")


def _signer(st: Settings) -> note.Signer:
    from cloud.services import tlog

    with _refusal():
        try:
            return tlog.settings_signer(st)
        except (OSError, ValueError) as e:
            typer.echo(f"error: {e}" if not _zh() else f"错误：日志密钥无法使用：{e}", err=True)
            raise typer.Exit(2) from None


@app.command("key")
def key() -> None:
    """Print the log's verifier key: give it to witnesses and to whoever verifies bundles."""
    signer = _signer(Settings.from_env())
    typer.echo(signer.verifier.vkey())


@app.command("checkpoint")
def checkpoint(db_url: DbUrlOpt = None) -> None:
    """Sign a checkpoint of the log as it is now (on demand) and print it."""
    from cloud.services import tlog
    st, sf = _session_factory(db_url)
    signer = _signer(st)
    cp = tlog.publish(sf, signer)
    with sf() as s:
        typer.echo(tlog.cosigned(s, cp), nl=False)


@app.command("export")
def export(out: Annotated[Path, typer.Argument(help="folder to write (made if missing)")],
           db_url: DbUrlOpt = None) -> None:
    """Write the whole log, its checkpoint and the data it vouches for to OUT, to check on
    another machine with: mcode verify --log OUT --log-key "$(cat OUT/log_key.txt)"."""
    from cloud.services import tlog_export

    st, sf = _session_factory(db_url)
    signer = _signer(st)
    try:
        counts = tlog_export.export(sf, signer, out)
    except OSError as e:
        typer.echo(f"error: cannot write {out}: {e.strerror}" if not _zh()
                   else f"错误：无法写入 {out}：{e.strerror}", err=True)
        raise typer.Exit(2) from None
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    typer.echo(f"已导出到 {out}：{summary}" if _zh() else f"exported to {out}: {summary}")
