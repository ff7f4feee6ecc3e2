"""`mcode cloud gateway ...`: list gateways with their trust state, revoke one, rotate its key
(cloud/services/gateway_trust.py). The database is --db-url or MCODE_CLOUD_DB_URL. Registered
under `mcode cloud` by mcode/cli.py, as `db` is."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cloud.cli.main import _session_factory
from cloud.settings import ENV_PREFIX

app = typer.Typer(help="Gateways: list, revoke, rotate keys. / 网关：列出、吊销、轮换密钥。",
                  no_args_is_help=True)

DbUrlOpt = Annotated[str | None, typer.Option(help=f"SQLAlchemy URL [env {ENV_PREFIX}DB_URL]")]
GatewayArg = Annotated[str, typer.Argument(help="gateway id, 16 hex / 网关 id，16 位十六进制")]


def _run(fn: Any, db_url: str | None, *args: Any, **kw: Any) -> Any:
    """Call a service; bad input is one line on stderr (en / zh) and exit 2, never a traceback."""
    from cloud.errors import ApiError

    _, sf = _session_factory(db_url)
    try:
        return fn(sf, *args, **kw)
    except ApiError as e:
        typer.echo(f"error: {e.code}: {e.message} / {e.message_zh}", err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_(db_url: DbUrlOpt = None) -> None:
    """Every gateway as a JSON line: key, merchant, revoked, rotation. / 每个网关一行 JSON。"""
    from cloud.services.gateway_trust import list_trust

    for g in _run(list_trust, db_url, None):
        print(json.dumps(g))


@app.command("revoke")
def revoke(gateway: GatewayArg, db_url: DbUrlOpt = None) -> None:
    """Revoke a gateway for good. / 永久吊销网关。

    Its later batches are quarantined as gateway_revoked; delete its broker user too.
    其后的批次以 gateway_revoked 隔离；请同时删除其 broker 用户。"""
    from cloud.services.gateway_trust import revoke as revoke_

    print(json.dumps(_run(revoke_, db_url, gateway)))
    typer.echo(f"next: mosquitto_ctrl ... dynsec deleteClient {gateway.strip().lower()}", err=True)


@app.command("rotate")
def rotate(gateway: GatewayArg,
           public_key: Annotated[str, typer.Option(
               help="the new raw Ed25519 public key, 64 hex / 新的 Ed25519 公钥（64 位十六进制）")],
           grace_s: Annotated[int, typer.Option(
               help="the previous key verifies batches received this long / 旧密钥的宽限秒数")] = 24 * 3600,
           until_bseq: Annotated[int | None, typer.Option(
               help="and only below this bseq (the first signed with the new key) / 且仅限低于此 bseq")]
           = None,
           db_url: DbUrlOpt = None) -> None:
    """Install a gateway's new public key; what it signed before keeps arriving. / 安装网关的新公钥。"""
    from cloud.services.gateway_trust import rotate as rotate_

    print(json.dumps(_run(rotate_, db_url, gateway, public_key, grace_s=grace_s, until_bseq=until_bseq)))
