"""Operations: `mcode gateway status` and `spool` on real spools and a running gateway process,
JSON logs, clear errors, and the systemd unit (checked by systemd-analyze)."""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gateway import config as gconfig
from gateway import logs as glogs
from gateway import spool as spool_mod
from gateway.cli import app
from gateway.spool import Spool
from sim.broker import Broker
from sim.process import stop_process
from tests.conftest import GATEWAY_ID
from tests.gateway.helpers import DEV_A, GW_ID, recs
from tests.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "mcode-gateway.service"
runner = CliRunner()


def _config(tmp: Path, port: int = 1, limit: int = 10) -> Path:
    gconfig.generate_key(tmp / "gw.key")
    p = tmp / "gateway.toml"
    p.write_text(f"""
gateway_id = "{GATEWAY_ID}"
private_key = "gw.key"

[spool]
path = "state/spool.sqlite"
max_records = {limit}
keep_confirmed = 5

[mqtt]
host = "127.0.0.1"
port = {port}
username = "{GATEWAY_ID}"
password = "gw-pw"
""")
    return p


def _spool(cfg_path: Path) -> Spool:
    cfg = gconfig.load(cfg_path)
    return Spool(cfg.spool_path, GW_ID, cfg.load_private_key(), max_records=cfg.spool.max_records,
                 keep_confirmed=cfg.spool.keep_confirmed)


def _status(cfg_path: Path) -> dict[str, object]:
    r = runner.invoke(app, ["status", "-c", str(cfg_path), "--json"])
    assert r.exit_code == 0, r.output
    return dict(json.loads(r.output))


def test_status_shows_fill_alarm_and_batches(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    with _spool(cfg_path) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 10)))
        first = s.seal_batch(3)
        second = s.seal_batch(2)
        assert first is not None and second is not None
        s.confirm(first[0], stored=2, dup=1, rej=0)
    st = _status(cfg_path)
    assert st["process"] == "never run" and st["broker_connected"] is False
    fill = st["fill"]
    assert isinstance(fill, dict) and (fill["records"], fill["level"]) == (6, "ok")
    assert st["last_confirmed"] == {**st["last_confirmed"], "bseq": first[0], "stored": 2, "dup": 1}  # type: ignore[dict-item]
    assert st["last_sealed"] == {**st["last_sealed"], "bseq": second[0], "records": 2}  # type: ignore[dict-item]
    r = runner.invoke(app, ["status", "-c", str(cfg_path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "60.0% of 10 records" in r.output and "never run" in r.output
    assert "2 / 1 / 0" in r.output and str(second[0]) in r.output

    with _spool(cfg_path) as s:
        s.add_records(DEV_A, recs(DEV_A, range(10, 12)))  # 8 of 10
    assert _status(cfg_path)["fill"]["level"] == "warn"  # type: ignore[index]
    r = runner.invoke(app, ["status", "-c", str(cfg_path)], env={"COLUMNS": "200"})
    assert "WARNING (from 80%)" in r.output and "80.0% of 10 records" in r.output

    with _spool(cfg_path) as s:
        s.add_records(DEV_A, recs(DEV_A, range(12, 20)))
    st = _status(cfg_path)
    assert st["fill"]["level"] == "full"  # type: ignore[index]
    r = runner.invoke(app, ["status", "-c", str(cfg_path)], env={"COLUMNS": "200"})
    assert "FULL: not pulling devices" in r.output and "100.0% of 10 records" in r.output


def test_spool_confirmed_and_counts(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path, limit=0)
    with _spool(cfg_path) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 15)))
        bseqs = []
        while (b := s.seal_batch(2)) is not None:
            bseqs.append(b[0])
        for bseq in bseqs:
            s.confirm(bseq, stored=2, dup=0, rej=0)
    r = runner.invoke(app, ["spool", "-c", str(cfg_path), "--confirmed"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [x["bseq"] for x in lines] == bseqs[::-1][:5]  # newest first, keep_confirmed = 5
    assert {(x["n_records"], x["status"], x["stored"]) for x in lines} == {(2, "stored", 2)}
    r = runner.invoke(app, ["spool", "-c", str(cfg_path)])
    info = json.loads(r.output)
    assert info["schema"] == len(spool_mod.MIGRATIONS) and info["records"] == 0
    assert info["confirmed_kept"] == 5 and info["fill"]["max_records"] is None


def test_errors_are_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    for cmd in (["status"], ["spool"], ["run"], ["pubkey"]):
        r = runner.invoke(app, [*cmd, "-c", str(missing)])
        assert (r.exit_code, r.output.strip()) == (2, f"error: no config at {missing}"), cmd
    bad = tmp_path / "bad.toml"
    bad.write_text('gateway_id = "zz"\nprivate_key = "k"\nspool = "s"\n')
    r = runner.invoke(app, ["status", "-c", str(bad)])
    assert r.exit_code == 2 and "gateway_id is not hex" in r.output
    bad.write_text("gateway_id = [")
    assert runner.invoke(app, ["status", "-c", str(bad)]).exit_code == 2

    cfg_path = _config(tmp_path)
    r = runner.invoke(app, ["status", "-c", str(cfg_path)])
    assert r.exit_code == 1 and "no spool at" in r.output
    assert not (tmp_path / "state" / "spool.sqlite").exists()  # status never creates one
    with _spool(cfg_path) as s:
        s.db.execute("UPDATE schema_version SET version = 99")
    for cmd in (["status"], ["spool"]):
        r = runner.invoke(app, [*cmd, "-c", str(cfg_path)])
        assert r.exit_code == 2 and "newer than this gateway" in r.output, r.output
        assert "Traceback" not in r.output
    # The service itself: the same message, exit 2 (the unit restarts it; the journal says why).
    p = subprocess.run([sys.executable, "-m", "mcode.cli", "gateway", "run", "-c", str(cfg_path),
                        "--log-format", "json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert any(json.loads(x)["msg"].startswith("spool ") for x in p.stderr.splitlines()
               if x.startswith("{"))
    r = runner.invoke(app, ["run", "-c", str(cfg_path), "--log-format", "xml"])
    assert r.exit_code == 2 and "--log-format" in r.output


def test_json_log_lines_carry_extra_fields() -> None:
    buf = io.StringIO()
    glogs.setup("json", logging.INFO, stream=buf)
    try:
        log = logging.getLogger("gateway.test")
        log.warning("spool %d%% full", 85, extra={"alarm": "warn", "spool_fill": 0.85,
                                                 "device": b"\x01\x02"})
        log.debug("not shown")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        glogs.setup("json", logging.INFO, stream=buf)  # again: replaces, never doubles
        log.info("once")
    finally:
        glogs.setup("text", logging.WARNING)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["spool 85% full", "failed", "once"]
    first = lines[0]
    assert {k: first[k] for k in ("level", "logger", "alarm", "spool_fill", "device")} == \
        {"level": "warning", "logger": "gateway.test", "alarm": "warn", "spool_fill": 0.85,
         "device": "0102"}
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2025-01-01T00:00:00.000Z")
    assert "ValueError: boom" in lines[1]["exc"]


def test_status_of_a_running_gateway_then_broker_down_then_stopped(tmp_path: Path, broker: Broker) -> None:
    cfg_path = _config(tmp_path, port=broker.port)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mcode.cli", "gateway", "run", "--no-ble",
                                 "-c", str(cfg_path), "--log-format", "json"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (tmp_path / "state" / "spool.sqlite").exists(), 60, "spool created")
        wait_for(lambda: _status(cfg_path)["broker_connected"] is True, 60, "status: connected")
        st = _status(cfg_path)
        assert st["process"] == "running" and st["health"]["pid"] == proc.pid  # type: ignore[index]
        r = runner.invoke(app, ["status", "-c", str(cfg_path)], env={"COLUMNS": "200"})
        assert "running" in r.output and f"connected 127.0.0.1:{broker.port}" in r.output
        broker.stop()
        wait_for(lambda: _status(cfg_path)["broker_connected"] is False, 60, "status: disconnected")
        r = runner.invoke(app, ["status", "-c", str(cfg_path)], env={"COLUMNS": "200"})
        assert "DISCONNECTED" in r.output and "running" in r.output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        stop_process(proc, signal.SIGKILL)
    assert _status(cfg_path)["process"] == "stopped"
    lines = log.read_text().splitlines()
    assert lines and all(set(json.loads(x)) >= {"ts", "level", "logger", "msg"} for x in lines)


def test_systemd_unit_verifies_and_its_command_line_is_the_cli(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in ("Restart=always", "User=mcode-gateway", "StateDirectory=mcode-gateway",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert f"\n{line}\n" in text, line
    exec_line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    # the lean entry point (gateway/__main__.py), not `mcode gateway run` (about 11 MB more RSS)
    assert argv[0] == "/opt/mcode/.venv/bin/python" and argv[1:5] == ["-P", "-m", "gateway", "run"]
    # systemd-analyze checks every key and that the command exists: point it at this venv's python.
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze (Debian package systemd) is needed to check the unit"
    unit = tmp_path / "mcode-gateway.service"
    unit.write_text(text.replace(argv[0], sys.executable))
    p = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
    # The unit's arguments parse, run from another directory as the service is (-P: not from the
    # checkout), and `mcode gateway run` takes the same ones: with the config missing both say so
    # (exit 2).
    args = argv[5:]
    args[args.index("--config") + 1] = str(tmp_path / "missing.toml")
    lean = subprocess.run([sys.executable, *argv[1:5], *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=dict(os.environ, LANG="C.UTF-8"))
    assert lean.returncode == 2 and "no config at" in lean.stderr and "Traceback" not in lean.stderr
    r = runner.invoke(app, ["run", *args])
    assert r.exit_code == 2 and "no config at" in r.output


def test_a_typo_in_the_spool_table_is_refused(tmp_path: Path) -> None:
    """A typo'd [spool] key is refused, so a limit is never silently ignored."""
    cfg_path = _config(tmp_path)
    cfg_path.write_text(cfg_path.read_text().replace("max_records", "max_record"))
    r = runner.invoke(app, ["status", "-c", str(cfg_path)])
    assert r.exit_code == 2 and "unknown keys: max_record" in r.output
