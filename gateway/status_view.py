"""What `mcode gateway status` shows above the device tables: the process, the broker, the
spool's fill and alarm, and the last sealed and last confirmed batches.

All of it is read from the spool file (the running gateway saves its health there every few
seconds, gateway.service), so status works from another process, running or not.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.table import Table

from gateway.spool import Spool

STALE_S = 30.0  # health older than this: the process is gone or stuck (it saves every 5 s)


def _ts(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _age(s: float) -> str:
    s = max(0.0, s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def process_state(health: dict[str, Any] | None, now: float) -> str:
    """never run / running / stopped / not responding."""
    if health is None:
        return "never run"
    if health.get("stopped"):
        return "stopped"
    return "running" if now - float(health.get("updated", 0)) <= STALE_S else "not responding"


def gather(s: Spool, now: float | None = None) -> dict[str, Any]:
    """The overview as plain data (also what `status --json` prints)."""
    now = time.time() if now is None else now
    health = s.health()
    pending = s.pending_batches()
    confirmed = s.confirmed_batches(limit=1)
    last_sealed = None
    if pending:
        p = pending[-1]
        last_sealed = {"bseq": p.bseq, "records": p.n_records, "created": p.created,
                       "published_at": p.published_at, "attempts": p.attempts}
    elif confirmed:
        last_sealed = {"bseq": confirmed[0].bseq, "records": confirmed[0].n_records}
    state = process_state(health, now)
    return {
        "process": state,
        "health": health,
        "broker_connected": bool(health and state == "running" and health.get("mqtt_connected")),
        "fill": s.fill().as_dict(),
        "last_sealed": last_sealed,
        "last_confirmed": confirmed[0].__dict__ if confirmed else None,
    }


def _fill_cells(f: dict[str, Any]) -> tuple[str, str]:
    limits = []
    if f["max_records"]:
        limits.append(f"{f['max_records']:,} records")
    if f["max_bytes"]:
        limits.append(f"{f['max_bytes'] / 2**20:,.0f} MiB")
    pct = f"{100 * f['fraction']:.1f}% of " + " / ".join(limits) if limits else "no limit"
    alarm = {"ok": "[green]ok[/]",
             "warn": f"[bold yellow]WARNING (from {100 * f['warn_fraction']:.0f}%)[/]",
             "full": "[bold red]FULL: not pulling devices[/]"}[f["level"]]
    return pct, alarm


def overview(gateway_hex: str, broker: str, o: dict[str, Any], now: float | None = None) -> list[Table]:
    now = time.time() if now is None else now
    h = o["health"] or {}
    state = o["process"]
    t = Table(title=f"gateway {gateway_hex}")
    for col in ("process", "broker", "uplink", "spool fill", "alarm"):
        t.add_column(col)
    if state == "running":
        proc = f"[green]running[/] pid {h.get('pid')}, up {_age(now - float(h.get('started', now)))}"
    elif state == "never run":
        proc = "never run"
    else:
        style = "yellow" if state == "stopped" else "bold red"
        proc = f"[{style}]{state}[/] (last health {_age(now - float(h.get('updated', now)))} ago)"
    if state != "running":
        conn = "-"
    elif o["broker_connected"]:
        conn = f"[green]connected[/] {broker}"
    else:
        conn = f"[bold red]DISCONNECTED[/] {broker}"
    up = h.get("uplink") or {}
    uplink = (f"{h.get('inflight', 0)} in flight, {up.get('confirmed', 0)} acked, "
              f"{up.get('republished', 0)} resent, {up.get('disconnects', 0)} disconnects") if up else "-"
    t.add_row(proc, conn, uplink, *_fill_cells(o["fill"]))

    b = Table(title="batches")
    for col in ("last sealed", "sealed at", "records", "published", "last confirmed", "confirmed at",
                "status", "stored / dup / rej"):
        b.add_column(col)
    ls, lc = o["last_sealed"] or {}, o["last_confirmed"] or {}
    counts = "-" if not lc else " / ".join("-" if lc.get(k) is None else str(lc[k])
                                           for k in ("stored", "dup", "rej"))
    b.add_row(str(ls.get("bseq", "-")), _ts(ls.get("created")), str(ls.get("records", "-")),
              _ts(ls.get("published_at")), str(lc.get("bseq", "-")), _ts(lc.get("confirmed_at")),
              str(lc.get("status", "-")), counts)
    return [t, b]
