"""A box of devices: flash and provision each board in turn, with a state file so a pulled cable
or a crash resumes where it stopped. Boards are known by their chip's MAC (machine.unique_id), so
a board plugged back in, on any port, is the same entry: it is never registered twice.

State file (JSON, replaced whole on every step): {"<mac hex>": {"flashed": {...}, "device_id",
"location", "base", "slot", "name", "config_sha256", "booted", "code", "installed_at"}}."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tools.errors import BAD_INPUT, ToolError
from tools.i18n import _


class State:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path is not None and path.exists():
            try:
                self.data = dict(json.loads(path.read_text()))
            except (ValueError, OSError) as e:
                raise ToolError(_("Cannot read the state file {path}: {error}").format(path=path, error=e),
                                BAD_INPUT) from None

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def done(self, uid: str) -> bool:
        return bool(self.data.get(uid, {}).get("booted"))


def run_batch(ports: list[str], board: str, location: str, state_path: Path, cloud_url: str,
              campaign: str | None, key_file: Path | None, boot_s: float) -> int:
    """Each port in turn: flash unless this board was flashed, then provision unless it was.
    A failure is reported and the next board taken; returns how many failed."""
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from tools.cloudapi import Cloud, technician_key
    from tools.flashing import flash
    from tools.link import Link
    from tools.provisioning import provision

    con = Console()
    st = State(state_path)
    cloud = Cloud(cloud_url, technician_key(key_file))
    t = Table(_("port"), _("board id"), _("device"), _("result"), title=_("Batch"))
    failed = 0
    for port in ports:
        uid = "?"
        try:
            with Link(port) as link:
                uid = link.probe().unique_id or port
            entry = st.data.setdefault(uid, {})
            if st.done(uid):
                t.add_row(port, uid, entry.get("device_id", ""), _("done before"))
                continue
            if not entry.get("flashed"):
                with con.status(_("Flashing {port}...").format(port=port)), \
                        tempfile.TemporaryDirectory() as work:
                    entry["flashed"] = flash(port, board, Path(work), lambda *_a: None)
                st.save()
            with con.status(_("Provisioning {port}...").format(port=port)):
                e = provision(port, cloud, board, location, campaign, "", st.data, st.save, boot_s)
            t.add_row(port, uid, e["device_id"], "[green]ok[/green] " + str(e.get("code") or ""))
        except ToolError as e:
            failed += 1
            st.save()
            t.add_row(port, uid, st.data.get(uid, {}).get("device_id", ""), f"[red]{e}[/red]")
    con.print(t)
    if failed:
        con.print(_("{n} boards failed; fix them and run the same command again to resume.").format(n=failed))
    return failed
