"""`mcode gateway ...`: run the gateway, show its status, inspect the spool, make a key.

The lead mounts `app` into the top-level command: `app.add_typer(gateway.cli.app, name="gateway")`.
"""

from __future__ import annotations

import asyncio
import gettext
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
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


LOCALES = Path(__file__).resolve().parent / "locale"


def _(message: str) -> str:
    """zh-CN or en by LANGUAGE / LC_ALL / LC_MESSAGES / LANG (gateway/locale, stdlib gettext)."""
    return gettext.translation("mcode-gateway", str(LOCALES), fallback=True).gettext(message)


def _fail(msg: str, code: int = EXIT_CONFIG) -> typer.Exit:
    typer.echo(f"{_('error')}: {msg}", err=True)
    return typer.Exit(code)


def _key_check(cfg: gconfig.GatewayConfig) -> None:
    """A missing or unreadable key file, said with how to make one (not a traceback)."""
    path = cfg.private_key_path
    if not path.exists():
        raise _fail(_("no gateway key at {path}. Make one: mcode gateway keygen {path} ; then give the "
                      "public key it prints to the cloud's admin (POST /admin/gateways with gateway_id "
                      "and public_key).").format(path=path))
    try:
        cfg.load_private_key()
    except (OSError, ValueError, gconfig.ConfigError) as e:
        raise _fail(_("the gateway key {path} cannot be used: {error}. Make a new one: mcode gateway "
                      "keygen {path} --force").format(path=path, error=e)) from None


def _config(path: Path) -> gconfig.GatewayConfig:
    try:
        return gconfig.load(path)
    except FileNotFoundError:
        raise _fail(_("no config at {path}").format(path=path)) from None
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
        raise _fail(_("no spool at {path} (has the gateway run with this config?)").format(
            path=cfg.spool_path), 1) from None
    except SpoolSchemaError as e:
        raise _fail(str(e)) from None


def _ago(t: float | None, now: float) -> str:
    """A time as how long ago it was: 12 s ago, 3 min ago, 2 h ago, 4 d ago."""
    if t is None:
        return "-"
    s = max(0.0, now - t)
    for limit, unit, msg in ((120, 1, _("{n} s ago")), (7200, 60, _("{n} min ago")),
                             (172800, 3600, _("{n} h ago"))):
        if s < limit:
            return msg.format(n=int(s // unit))
    return _("{n} d ago").format(n=int(s // 86400))


def _v(x: object) -> str:
    return "-" if x is None else str(x)


def _label(dev_hex: str) -> str:
    """The name the device advertises (mc- and the id's last 4 hex digits, as the cloud names it)."""
    return "mc-" + dev_hex[-4:]


def _vertical(t: Table) -> Table:
    """A one-row table turned on its side (name, value), so it fits an 80-column terminal."""
    v = Table(title=_(str(t.title or "")), show_header=False, box=box.SIMPLE, pad_edge=False)
    v.add_column(no_wrap=True, style="bold")
    v.add_column(overflow="fold")
    for col in t.columns:
        for cell in col.cells:
            v.add_row(_(str(col.header)), cell)
    return v


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
    _key_check(cfg)
    try:
        gw = Gateway(cfg, collect=not no_ble)
    except SpoolSchemaError as e:
        logging.getLogger(__name__).error("%s", e)
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
    _print_status(cfg, over, devs, cursors, backlog, counts, pending)


def _print_status(cfg: gconfig.GatewayConfig, over: dict[str, Any], devs: dict[str, Any],
                  cursors: dict[str, Any], backlog: dict[str, int], counts: Any, pending: list[Any]) -> None:
    """Every table fits 80 columns: the overview on its side, times relative, devices by name."""
    con, now = Console(), time.time()
    for table in status_view.overview(cfg.gateway_hex, f"{cfg.mqtt.host}:{cfg.mqtt.port}", over):
        con.print(_vertical(table))
    t = Table(title=_("devices"), box=box.SIMPLE, pad_edge=False)
    for col in (_("device"), _("seen"), _("ok"), _("acked/head"), _("on device"), _("spool"), _("fail")):
        t.add_column(col, no_wrap=True)
    errors = []
    for d in cfg.devices:
        st = devs.get(d.hex, {})
        t.add_row(_label(d.hex), _ago(st.get("last_seen"), now), _ago(st.get("last_ok"), now),
                  f"{_v(st.get('acked_seq'))}/{_v(st.get('head_seq'))}", _v(st.get("backlog")),
                  str(backlog.get(d.hex, 0)), str(st.get("failures", 0)))
        if st.get("last_error"):
            errors.append(f"{_label(d.hex)} {d.hex}: {st['last_error']}")
    con.print(t)
    for e in errors:
        con.print(e, style="red", markup=False)
    h = Table(title=_("radio, clock and log health"), box=box.SIMPLE, pad_edge=False)
    for col in (_("device"), "RSSI", _("battery"), "fw", _("clock ms"), _("dropped"), _("gaps")):
        h.add_column(col, no_wrap=True)
    for d in cfg.devices:
        st = devs.get(d.hex, {})
        bat = st.get("battery_low")
        h.add_row(_label(d.hex), str(st.get("rssi") if st.get("rssi") is not None else "-"),
                  "-" if bat is None else (_("LOW") if bat else "ok"), str(st.get("fw") or "-"),
                  "-" if st.get("clock_offset_ms") is None else f"{st['clock_offset_ms']:+d}",
                  str(st.get("dropped") if st.get("dropped") is not None else "-"), str(st.get("gaps") or 0))
    con.print(h)
    sp = Table(title=_("spool"), show_header=False, box=box.SIMPLE, pad_edge=False)
    sp.add_column(no_wrap=True, style="bold")
    sp.add_column()
    for k, v in ((_("records"), counts.records), (_("unbatched"), counts.unbatched),
                 (_("oldest unbatched"), _ago(counts.oldest_unbatched, now)),
                 (_("batches unconfirmed"), counts.batches), (_("never published"), counts.unpublished),
                 (_("next bseq"), counts.next_bseq)):
        sp.add_row(k, str(v))
    con.print(sp)
    if pending:
        b = Table(title=_("unconfirmed batches (oldest 20)"), box=box.SIMPLE, pad_edge=False)
        for col in ("bseq", _("records"), _("created"), _("published"), _("attempts")):
            b.add_column(col, no_wrap=True)
        for p in pending[:20]:
            b.add_row(str(p.bseq), str(p.n_records), _ago(p.created, now), _ago(p.published_at, now),
                      str(p.attempts))
        con.print(b)


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
    cfg = _config(config)
    _key_check(cfg)
    typer.echo(gconfig.public_hex(cfg.load_private_key()))
