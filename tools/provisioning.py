"""`mcode tools provision`: give a flashed board its identity.

  1. register it with the cloud (POST /devices with the technician key): the answer is its
     config, device key included;
  2. write that config where the firmware reads it (config.json in the flash root, the JSON the
     cloud sent: firmware/config.py) and read it back by sha256;
  3. reset it and watch the boot log: no crash or safe mode, and the device's id and code;
  4. installed at the location: POST /devices/{id}/install, which the device list then shows
     (installed_at_ms) next to the location.

A board that had another identity loses that identity's scan log and sealed overlay
(devconfig.bin): they belong to the old device id. Steps done are recorded in an optional
state file (batch.py), so a pulled cable resumes without registering twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools import bootlog
from tools.cloudapi import Cloud
from tools.errors import CHECK_FAILED, ToolError
from tools.i18n import _
from tools.link import Link

CONFIG = "config.json"
OLD_IDENTITY = ("devconfig.bin", "boot.bin")  # plus the scan log's log.* segments
STATUS = """\
import json
try:
    c = json.load(open('config.json'))['device_id']
except Exception:
    c = None
try:
    d = open('display.txt').read().split()[0]
except Exception:
    d = None
print(repr((c, d)))
"""


@dataclass
class BootReport:
    device_id: str | None
    code: str | None
    lines: list[str] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)


def config_bytes(cfg: dict[str, Any]) -> bytes:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def write_config(link: Link, cfg: dict[str, Any]) -> str:
    """config.json onto the board, read back; returns its sha256. A new identity clears the old."""
    old = link.read(CONFIG)
    try:
        old_id = json.loads(old)["device_id"] if old else None
    except (ValueError, KeyError, TypeError):
        old_id = None
    if old_id != cfg["device_id"]:
        for name in link.listdir():
            if name in OLD_IDENTITY or (name.startswith("log.") and name[4:].isdigit()):
                link.remove(name)
    data = config_bytes(cfg)
    link.write(CONFIG, data)
    want = hashlib.sha256(data).hexdigest()
    got = link.sha256(CONFIG)
    if got != want:
        raise ToolError(_("Read-back of {file} does not match (sha256 {got} != {want}). Check the "
                          "cable and provision again.").format(file=CONFIG, got=got, want=want), CHECK_FAILED)
    return want


def watch_boot(link: Link, device_id: str, seconds: float,
               on_line: Callable[[bootlog.Line], None]) -> BootReport:
    """Reset the board and read its log, on the same open port so its first lines are seen, until
    the device reports itself, trouble shows, or `seconds` pass.
    The firmware prints one boot line with its id and code (firmware/main.py); a firmware without
    it is asked over the REPL instead (this stops it, so it is reset again afterwards)."""
    rep = BootReport(None, None)
    trouble: list[str] = []

    def stop(line: bootlog.Line) -> bool:
        on_line(line)
        rep.lines.append(line.text)
        if line.reset:
            rep.resets.append(line.reset)
        if line.trouble:
            trouble.append(line.text)
        m = bootlog.REPORT.search(line.text)
        if m:  # the firmware's boot line: "device <id> code <code, or - while its clock is unset>"
            rep.device_id = m.group(1)
            rep.code = m.group(2) if m.group(2)[0].isdigit() else None
        return bool(m) or len(rep.resets) > 1  # a second reset: a boot loop

    port = link.port
    with link.reset_open() as s:
        for _line in bootlog.follow(s, port, seconds, stop):
            pass
    if trouble or len(rep.resets) > 1:
        raise ToolError(_("The device did not boot cleanly: {line}. Run: mcode tools monitor {port}")
                        .format(line=(trouble or rep.lines)[-1], port=port), CHECK_FAILED)
    if rep.device_id is None:
        with Link(port) as link:
            rep.device_id, rep.code = eval_tuple(link.exec(STATUS))
            link.reset()
    if rep.device_id != device_id:
        raise ToolError(_("The device reports id {got}, not {want}: the config did not take. Provision "
                          "again.").format(got=rep.device_id, want=device_id), CHECK_FAILED)
    return rep


def eval_tuple(text: str) -> tuple[Any, Any]:
    import ast

    a, b = ast.literal_eval(text.strip())
    return a, b


def provision(port: str, cloud: Cloud, board: str, location: str, campaign: str | None, label: str,
              state: dict[str, Any], save: Callable[[], None], boot_s: float,
              on_line: Callable[[bootlog.Line], None] = lambda _l: None) -> dict[str, Any]:
    """Every step, skipping those the state says are done. Returns the state entry."""
    loc = cloud.location(location)
    with Link(port) as link:
        info = link.probe()
        from tools.flashing import check_board

        check_board(info, board)
        entry = state.setdefault(info.unique_id or port, {})
        if "device_id" in entry:  # registered before the cable was pulled: same identity
            cfg = cloud.config(entry["device_id"])
        else:
            camp = cloud.campaign(campaign)
            cfg = cloud.register(int(camp["campaign_id"]), int(loc["location_id"]), board, label)
            entry.update(device_id=cfg["device_id"], location=loc["name"], location_id=loc["location_id"],
                         base=cfg["base"], slot=cfg["slot"], name=cfg["name"], label=cfg.get("label", ""))
            save()
        entry["config_sha256"] = write_config(link, cfg)
        save()
        rep = watch_boot(link, cfg["device_id"], boot_s, on_line)
    entry.update(booted=True, code=rep.code)
    save()
    done = cloud.install(entry["device_id"], int(entry.get("location_id") or loc["location_id"]))
    entry.update(installed_at=time.strftime("%Y-%m-%d", time.gmtime(done["installed_at_ms"] / 1000)))
    save()
    return entry
