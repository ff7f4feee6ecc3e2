"""`mcode gateway ...`: run the gateway, show its status, inspect the spool, make a key.

The lead mounts `app` into the top-level command: `app.add_typer(gateway.cli.app, name="gateway")`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway import config as gconfig
from gateway import logs as glogs
from gateway import status_view
from gateway.spool import Spool, SpoolSchemaError

app = typer.Typer(help="The mcode gateway: BLE pull, durable spool, signed batches over MQTT.",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="gateway.toml")]
EXIT_CONFIG = 2  # a bad config or a spool this version must not open: fix it, restarting won't


def _fail(msg: str, code: int = EXIT_CONFIG) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


def _config(path: Path) -> gconfig.GatewayConfig:
    try:
        return gconfig.load(path)
    except FileNotFoundError:
        raise _fail(f"no config at {path}") from None
    except (gconfig.ConfigError, ValueError) as e:  # tomllib.TOMLDecodeError is a ValueError
        raise _fail(f"{path}: {e}") from None


def _open_spool(cfg: gconfig.GatewayConfig) -> Spool:
    """The spool for reading from another process (never created here: a typo'd path must not
    look like an empty spool)."""
    sc = cfg.spool
    try:
        return Spool(cfg.spool_path, max_records=sc.max_records or None,
                     max_bytes=sc.max_bytes or None, warn_fraction=sc.warn_fraction,
                     keep_confirmed=sc.keep_confirmed, create=False)
    except FileNotFoundError:
        raise _fail(f"no spool at {cfg.spool_path} (has the gateway run with this config?)", 1) from None
    except SpoolSchemaError as e:
        raise _fail(str(e)) from None


def _ts(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def run(config: ConfigOpt = Path("gateway.toml"),
        no_ble: Annotated[bool, typer.Option(help="uplink and batching only")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
        log_format: Annotated[str, typer.Option(help="text, or json: one object per line "
                                                     "(ts, level, logger, msg, extra fields)")] = "text",
        ) -> None:
    """Run until SIGTERM/SIGINT."""
    from gateway.service import Gateway, run_until_signal

    if log_format not in glogs.FORMATS:
        raise _fail(f"--log-format must be one of {', '.join(glogs.FORMATS)}")
    glogs.setup(log_format, logging.DEBUG if verbose else logging.INFO)
    cfg = _config(config)
    try:
        gw = Gateway(cfg, collect=not no_ble)
    except SpoolSchemaError as e:
        logging.getLogger("gateway").error("%s", e)
        raise _fail(str(e)) from None
    asyncio.run(run_until_signal(gw))


@app.command()
def status(config: ConfigOpt = Path("gateway.toml"),
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Process, broker, spool fill and alarm, batches, devices and backlog (read from the spool;
    works while the gateway runs)."""
    cfg = _config(config)
    with _open_spool(cfg) as s:
        counts = s.counts()
        devs = s.device_status()
        cursors = s.cursors()
        backlog = s.backlog()
        pending = s.pending_batches()
        over = status_view.gather(s)
    if as_json:
        print(json.dumps({**over, "spool": counts.__dict__, "devices": devs, "cursors": cursors,
                          "spooled_per_device": backlog,
                          "pending": [{"bseq": p.bseq, "records": p.n_records, "created": p.created,
                                       "published_at": p.published_at, "attempts": p.attempts}
                                      for p in pending]}, indent=2))
        return
    con = Console()
    for table in status_view.overview(cfg.gateway_hex, f"{cfg.mqtt.host}:{cfg.mqtt.port}", over):
        con.print(table)
    t = Table(title=f"gateway {cfg.gateway_hex}: devices")
    t.add_column("device", no_wrap=True, min_width=16)
    for col in ("last seen", "last ok", "head", "acked", "on device", "cursor", "in spool",
                "failures", "last error"):
        t.add_column(col)
    for d in cfg.devices:
        st = devs.get(d.hex, {})
        t.add_row(d.hex, _ts(st.get("last_seen")), _ts(st.get("last_ok")), str(st.get("head_seq", "-")),
                  str(st.get("acked_seq", "-")), str(st.get("backlog", "-")), str(cursors.get(d.hex, "-")),
                  str(backlog.get(d.hex, 0)), str(st.get("failures", 0)), st.get("last_error") or "")
    con.print(t)
    h_tab = Table(title="devices: radio, clock and log health")
    h_tab.add_column("device", no_wrap=True, min_width=16)
    for col in ("rssi dBm", "battery", "fw", "clock offset ms", "dropped", "seq gaps"):
        h_tab.add_column(col)
    for d in cfg.devices:
        st = devs.get(d.hex, {})
        bat = st.get("battery_low")
        h_tab.add_row(d.hex, str(st.get("rssi") if st.get("rssi") is not None else "-"),
                      "-" if bat is None else ("LOW" if bat else "ok"), str(st.get("fw") or "-"),
                      "-" if st.get("clock_offset_ms") is None else f"{st['clock_offset_ms']:+d}",
                      str(st.get("dropped") if st.get("dropped") is not None else "-"),
                      str(st.get("gaps") or 0))
    con.print(h_tab)
    s_tab = Table(title="spool")
    for col in ("records", "unbatched", "oldest unbatched", "batches unconfirmed", "never published"):
        s_tab.add_column(col)
    s_tab.add_column("next bseq", no_wrap=True)
    s_tab.add_row(str(counts.records), str(counts.unbatched), _ts(counts.oldest_unbatched),
                  str(counts.batches), str(counts.unpublished), str(counts.next_bseq))
    con.print(s_tab)
    if pending:
        b_tab = Table(title="unconfirmed batches (oldest 20)")
        for col in ("bseq", "records", "created", "last published", "attempts"):
            b_tab.add_column(col)
        for p in pending[:20]:
            b_tab.add_row(str(p.bseq), str(p.n_records), _ts(p.created), _ts(p.published_at), str(p.attempts))
        con.print(b_tab)


@app.command()
def spool(config: ConfigOpt = Path("gateway.toml"),
          export: Annotated[bool, typer.Option(help="every record as JSON lines on stdout")] = False,
          batches: Annotated[bool, typer.Option(help="unconfirmed batches as JSON lines")] = False,
          confirmed: Annotated[bool, typer.Option(help="the cloud's acks as JSON lines, newest first "
                                                       "(the last [spool] keep_confirmed)")] = False,
          ) -> None:
    """Inspect the spool: counts, or export records/batches/confirmed batches as JSON lines."""
    cfg = _config(config)
    with _open_spool(cfg) as s:
        if export:
            for r in s.iter_records():
                sys.stdout.write(json.dumps(r) + "\n")
        if batches:
            for p in s.pending_batches():
                sys.stdout.write(json.dumps({"bseq": p.bseq, "records": p.n_records, "created": p.created,
                                             "published_at": p.published_at, "attempts": p.attempts,
                                             "payload": p.payload.hex()}) + "\n")
        if confirmed:
            for c in s.confirmed_batches():
                sys.stdout.write(json.dumps(c.__dict__) + "\n")
        if not (export or batches or confirmed):
            print(json.dumps({"path": str(cfg.spool_path), "schema": s.schema_version(),
                              **s.counts().__dict__, "fill": s.fill().as_dict(),
                              "confirmed_kept": len(s.confirmed_batches()),
                              "cursors": s.cursors()}, indent=2))


@app.command()
def keygen(out: Annotated[Path, typer.Argument(help="where to write the PEM private key")],
           force: Annotated[bool, typer.Option(help="overwrite an existing key")] = False) -> None:
    """Write a new Ed25519 gateway key (PEM, mode 0600); print its public key in hex for the cloud."""
    try:
        key = gconfig.generate_key(out, overwrite=force)
    except FileExistsError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    typer.echo(gconfig.public_hex(key))


@app.command()
def pubkey(config: ConfigOpt = Path("gateway.toml")) -> None:
    """Print the configured gateway key's public half in hex."""
    typer.echo(gconfig.public_hex(_config(config).load_private_key()))
