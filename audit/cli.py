"""`mcode witness ...` and `mcode verify BUNDLE`: thin skins over audit/witness.py and audit/verify.py.
Messages follow LANG (zh-CN or en). Exit codes: 0 fine, 1 refused or failed, 2 bad usage,
3 witness alarm (fork or rollback)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from audit.messages import say
from protocol import note
from protocol.bundle import Bundle, BundleError, parse

witness_app = typer.Typer(help="A witness: cosign the log's checkpoints; alarm on a fork or a rollback.",
                          no_args_is_help=True)

VKeyOpt = Annotated[str, typer.Option("--log-key", help="the log's verifier key (name+id+key)")]


def _fail(msg: str, code: int = 1) -> typer.Exit:
    typer.echo(msg, err=True)
    return typer.Exit(code)


def _vkey(s: str) -> note.Verifier:
    try:
        return note.parse_vkey(s)
    except note.NoteError as e:
        raise _fail(say("bad_key", why=e), 2) from None


@witness_app.command()
def keygen(name: Annotated[str, typer.Argument(help="the witness's name, e.g. witness.example.com/w1")],
           out: Annotated[Path, typer.Option("--out", "-o", help="where to write the private key")]) -> None:
    """Make a witness key (Ed25519, cosignature/v1) and print its verifier key."""
    try:
        signer = note.Signer.generate(name, note.COSIGNATURE_V1)
    except note.NoteError as e:
        raise _fail(say("bad_key", why=e), 2) from None
    if out.exists():
        raise _fail(say("no_file", path=out, why="exists; not overwritten"), 2)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey() + "\n")
    typer.echo(say("keygen", path=out, vkey=signer.verifier.vkey()))


@witness_app.command()
def run(url: Annotated[str, typer.Argument(help="the cloud's base URL, e.g. https://cloud.example.com")],
        log_key: VKeyOpt,
        key: Annotated[Path, typer.Option("--key", help="the witness's private key file (keygen)")],
        state: Annotated[Path, typer.Option("--state", help="the witness's state file")],
        interval: Annotated[float, typer.Option(help="repeat every N seconds; 0: once")] = 0.0) -> None:
    """Fetch the latest checkpoint, check it extends the last one cosigned, cosign it."""
    from audit.witness import ALARM, LogClient, Witness

    try:
        signer = note.parse_skey(key.read_text())
    except OSError as e:
        raise _fail(say("no_file", path=key, why=e.strerror), 2) from None
    except note.NoteError as e:
        raise _fail(say("bad_key", why=e), 2) from None
    w = Witness(LogClient(url), _vkey(log_key), signer, state)
    while True:
        out = w.run_once()
        typer.echo(out.message, err=out.status != "cosigned" and out.status != "unchanged")
        if interval <= 0 or out.status == ALARM:
            raise typer.Exit(out.exit_code)
        time.sleep(interval)


def _pairs(items: list[str], what: str, key_len: int, b64: bool) -> dict[bytes, bytes]:
    import base64
    import binascii

    out = {}
    for s in items:
        ident, _, k = s.partition("=")
        try:
            kb = base64.b64decode(k, validate=True) if b64 else bytes.fromhex(k)
            ib = bytes.fromhex(ident)
        except (ValueError, binascii.Error):
            kb = ib = b""
        if len(ib) != 8 or len(kb) != key_len:
            raise _fail(say("bad_key", why=f"{what} is ID_HEX=KEY ({s[:20]}...)"), 2)
        out[ib] = kb
    return out


def _bundle(path: Path) -> Bundle:
    try:
        return parse(path.read_bytes())
    except OSError as e:
        raise _fail(say("no_file", path=path, why=e.strerror)) from None
    except BundleError as e:
        raise _fail(say("bad_bundle", why=e)) from None


def verify_command(
        bundle: Annotated[Path | None, typer.Argument(help="the proof bundle (JSON) to check")] = None,
        log_key: VKeyOpt = "",
        witness_key: Annotated[list[str] | None, typer.Option(
            "--witness-key", help="a witness's verifier key; its cosignature is required (repeatable)")
        ] = None,
        gateway_key: Annotated[list[str] | None, typer.Option(
            help="GWID_HEX=BASE64 Ed25519 key, instead of the one logged (repeatable)")] = None,
        device_key: Annotated[list[str] | None, typer.Option(
            help="DEVID_HEX=KEY_HEX: also check record MACs and the display code (repeatable)")
        ] = None,
        log: Annotated[Path | None, typer.Option(
            "--log", help="instead of a bundle: a whole log and its data (mcode cloud log export DIR)")
        ] = None) -> None:
    """Check a payout's proof bundle offline (log signature, cosignatures, inclusion, chain,
    batches), or with --log DIR a whole exported log and the data it vouches for."""
    from audit.logcheck import check_export
    from audit.verify import Keys, Refused, verify_bundle

    if (bundle is None) == (log is None) or not log_key:
        raise _fail(say("usage"), 2)
    ks = Keys(_vkey(log_key), tuple(_vkey(w) for w in witness_key or []),
              _pairs(gateway_key or [], "--gateway-key", 32, True),
              _pairs(device_key or [], "--device-key", 32, False))
    try:
        if log is not None:
            rep = check_export(log, ks)
        else:
            assert bundle is not None
            rep = verify_bundle(_bundle(bundle), ks)
    except Refused as e:
        raise _fail(say("refused", why=e)) from None
    for what in rep.ok:
        typer.echo(say("check_ok", what=what))
    for what, k in rep.skipped:
        typer.echo(say("check_skip", what=what, needs=say("key_" + k)))
    typer.echo(say("ok"))
