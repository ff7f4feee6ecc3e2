"""`mcode witness` against a real HTTP log (tests/audit/logserver.py): it cosigns what extends what
it cosigned before, and raises an alarm, kept in its state file, on a fork or a rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.witness import ALARM, ERROR, OK, UNCHANGED, LogClient, Witness
from protocol import note
from tests.audit.cliapp import app
from tests.audit.logserver import Log, LogServer

LOG = note.Signer.generate("log.test/demo")
WIT = note.Signer.generate("witness.test/w1", note.COSIGNATURE_V1)


@pytest.fixture
def served() -> Iterator[tuple[Log, LogServer]]:
    log = Log(LOG)
    log.append(*[b"leaf %d" % i for i in range(10)])
    with LogServer(log) as srv:
        yield log, srv


def witness(srv: LogServer, state: Path, t: list[float] | None = None) -> Witness:
    clock = t or [1_700_000_000.0]
    return Witness(LogClient(srv.url), LOG.verifier, WIT, state, clock=lambda: clock[0])


def test_cosigns_growth_and_the_cosignature_verifies(served: tuple[Log, LogServer], tmp_path: Path) -> None:
    log, srv = served
    w = witness(srv, tmp_path / "w.json")
    assert w.run_once().status == OK
    assert w.run_once().status == UNCHANGED
    log.append(*[b"more %d" % i for i in range(23)])
    assert w.run_once().status == OK
    state = json.loads((tmp_path / "w.json").read_text())
    assert state["size"] == 33 and state["delivered"] is True
    assert len(log.cosignatures) == 2
    # what the log received verifies as a cosignature of its own checkpoint at size 33
    n = note.parse_note(log.checkpoint()).with_lines(log.cosignatures[-1].split("\n\n", 1)[1])
    cp, _, cosigned = note.open_checkpoint(n.render(), LOG.verifier, (WIT.verifier,))
    assert cp.size == 33 and cosigned[WIT.verifier] == 1_700_000_000


@pytest.mark.parametrize("lie", ["fork_same_size", "fork_grown", "rollback", "bad_proof"])
def test_alarm_on_a_lie(served: tuple[Log, LogServer], tmp_path: Path, lie: str) -> None:
    log, srv = served
    state = tmp_path / "w.json"
    w = witness(srv, state)
    assert w.run_once().status == OK
    if lie == "fork_same_size":
        log.fork(3)  # an edited event: same size, another root
    elif lie == "fork_grown":
        log.fork(3)
        log.append(b"new")
    elif lie == "rollback":
        log.rollback(7)  # a deleted posting
    else:
        log.append(b"new", b"newer")
        log.bad_proofs = True
    out = w.run_once()
    assert out.status == ALARM and out.exit_code == 3
    assert ("ROLLBACK" if lie == "rollback" else "FORK") in out.message
    a = json.loads(state.read_text())["alarm"]
    assert a["kind"] == ("rollback" if lie == "rollback" else "fork")
    assert a["cosigned_size"] == 10
    # the evidence is the log's own signed checkpoint
    assert note.open_checkpoint(a["seen_checkpoint"], LOG.verifier)[0].size == a["seen_size"]
    assert len(log.cosignatures) == 1  # nothing cosigned after the lie
    # the alarm stands, even once the log looks fine again
    log.bad_proofs = False
    assert w.run_once().status == ALARM


def test_a_checkpoint_not_signed_by_the_log_is_refused(served: tuple[Log, LogServer], tmp_path: Path) -> None:
    log, srv = served
    log.key = note.Signer.generate("log.test/demo")  # same name, another key
    out = witness(srv, tmp_path / "w.json").run_once()
    assert out.status == ERROR and "unknown_key" in out.message
    assert not (tmp_path / "w.json").exists() and not log.cosignatures


def test_unreachable_log(tmp_path: Path) -> None:
    out = Witness(LogClient("http://127.0.0.1:9"), LOG.verifier, WIT, tmp_path / "w.json").run_once()
    assert out.status == ERROR and "cannot reach" in out.message


def test_cli_keygen_run_and_alarm_in_chinese(served: tuple[Log, LogServer], tmp_path: Path) -> None:
    log, srv = served
    r = CliRunner()
    key = tmp_path / "w.key"
    out = r.invoke(app, ["witness", "keygen", "witness.test/cli", "--out", str(key)])
    assert out.exit_code == 0, out.output
    vkey = out.output.strip().splitlines()[-1]
    assert note.parse_vkey(vkey).sig_type == note.COSIGNATURE_V1
    args = ["witness", "run", srv.url, "--log-key", LOG.verifier.vkey(), "--key", str(key),
            "--state", str(tmp_path / "s.json")]
    out = r.invoke(app, args)
    assert out.exit_code == 0 and "cosigned" in out.output
    log.rollback(4)
    out = r.invoke(app, args, env={"LANG": "zh_CN.UTF-8"})
    assert out.exit_code == 3 and "警报：回滚" in out.output
    out = r.invoke(app, ["witness", "run", srv.url, "--log-key", "nonsense", "--key", str(key),
                         "--state", str(tmp_path / "s.json")])
    assert out.exit_code == 2 and "bad key" in out.output and "Traceback" not in out.output
