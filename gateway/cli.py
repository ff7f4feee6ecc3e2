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
from gateway.spool import Spool

app = typer.Typer(help="The mcode gateway: BLE pull, durable spool, signed batches over MQTT.",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="gateway.toml")]


def _ts(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def run(config: ConfigOpt = Path("gateway.toml"),
        no_ble: Annotated[bool, typer.Option(help="uplink and batching only")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run until SIGTERM/SIGINT."""
    from gateway.service import Gateway, run_until_signal

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = gconfig.load(config)
    asyncio.run(run_until_signal(Gateway(cfg, collect=not no_ble)))


@app.command()
def status(config: ConfigOpt = Path("gateway.toml"),
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Devices, backlog, spool and unconfirmed batches (read from the spool; works while running)."""
    cfg = gconfig.load(config)
    with Spool(cfg.spool_path) as s:
        counts = s.counts()
        devs = s.device_status()
        cursors = s.cursors()
        backlog = s.backlog()
        pending = s.pending_batches()
    if as_json:
        print(json.dumps({"spool": counts.__dict__, "devices": devs, "cursors": cursors,
                          "spooled_per_device": backlog,
                          "pending": [{"bseq": p.bseq, "records": p.n_records, "created": p.created,
                                       "published_at": p.published_at, "attempts": p.attempts}
                                      for p in pending]}, indent=2))
        return
    con = Console()
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
          batches: Annotated[bool, typer.Option(help="unconfirmed batches as JSON lines")] = False) -> None:
    """Inspect the spool: counts, or export records/batches as JSON lines."""
    cfg = gconfig.load(config)
    with Spool(cfg.spool_path) as s:
        if export:
            for r in s.iter_records():
                sys.stdout.write(json.dumps(r) + "\n")
        if batches:
            for p in s.pending_batches():
                sys.stdout.write(json.dumps({"bseq": p.bseq, "records": p.n_records, "created": p.created,
                                             "published_at": p.published_at, "attempts": p.attempts,
                                             "payload": p.payload.hex()}) + "\n")
        if not (export or batches):
            print(json.dumps({"path": str(cfg.spool_path), "schema": s.schema_version(),
                              **s.counts().__dict__, "cursors": s.cursors()}, indent=2))


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
    typer.echo(gconfig.public_hex(gconfig.load(config).load_private_key()))
