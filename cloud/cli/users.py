"""`mcode cloud user ...` and `mcode cloud shared-link ...`: people who sign in to the merchant
console (invite, list, disable) and read-only dashboard links (create, list, revoke). The database
is --db-url or MCODE_CLOUD_DB_URL. Codes are printed after '#' in the link, the one place they are
shown: a browser never sends what follows '#' to a server, so no log holds them."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from cloud.cli.gateways import DbUrlOpt, _run

users_app = typer.Typer(help="Console users: invite, list, disable. / 后台账号：邀请、列出、停用。",
                        no_args_is_help=True)
links_app = typer.Typer(help="Read-only dashboard links: create, list, revoke. / "
                             "只读数据链接：新建、列出、撤销。",
                        no_args_is_help=True)

MerchantOpt = Annotated[int, typer.Option("--merchant", min=1, help="merchant id / 商户 id")]
UrlOpt = Annotated[str, typer.Option("--url", help="the cloud's public address / 云端的公网地址")]


def _now_ms() -> int:
    return int(time.time() * 1000)


@users_app.command("invite")
def invite(merchant: MerchantOpt,
           role: Annotated[str, typer.Option(help="owner, staff (the till only) or viewer / "
                                                  "owner、staff（仅收银）或 viewer")] = "staff",
           url: UrlOpt = "http://127.0.0.1:8000", days: Annotated[int, typer.Option(min=1, max=30)] = 7,
           db_url: DbUrlOpt = None) -> None:
    """Print a one-time invitation link for a new person. / 打印一次性邀请链接。"""
    from cloud.services import users

    inv = _run(users.invite, db_url, merchant, role, _now_ms(), days * 24 * 3600)
    print(json.dumps({"link": f"{url.rstrip('/')}/invite#{inv['code']}", "role": inv["role"],
                      "merchant_id": inv["merchant_id"], "expires_at_ms": inv["expires_at_ms"]}))


@users_app.command("list")
def list_users(merchant: MerchantOpt, db_url: DbUrlOpt = None) -> None:
    """The merchant's people as JSON lines. / 每个账号一行 JSON。"""
    from cloud.services import users

    for u in _run(users.list_users, db_url, merchant):
        print(json.dumps(u))


@users_app.command("disable")
def disable(merchant: MerchantOpt, login: Annotated[str, typer.Argument(help="login / 登录名")],
            db_url: DbUrlOpt = None) -> None:
    """Disable a person at once; their sessions end. / 立即停用账号，其会话随即失效。"""
    from cloud.services import users

    print(json.dumps(_run(users.disable, db_url, merchant, login, _now_ms())))


@links_app.command("create")
def create_link(merchant: MerchantOpt, label: Annotated[str, typer.Option(help="a note / 备注")] = "",
                url: UrlOpt = "http://127.0.0.1:8000", db_url: DbUrlOpt = None) -> None:
    """Print a new read-only link (shown only now). / 打印新的只读链接（仅此一次显示）。"""
    from cloud.services import shared_links

    made = _run(shared_links.create, db_url, merchant, label, _now_ms())
    print(json.dumps({"link": url.rstrip("/") + made["path"], "link_id": made["link_id"]}))


@links_app.command("list")
def list_links(merchant: MerchantOpt, db_url: DbUrlOpt = None) -> None:
    """The merchant's read-only links as JSON lines. / 每个只读链接一行 JSON。"""
    from cloud.services import shared_links

    for x in _run(shared_links.list_for, db_url, merchant):
        print(json.dumps(x))


@links_app.command("revoke")
def revoke_link(merchant: MerchantOpt, link_id: Annotated[int, typer.Argument(min=1)],
                db_url: DbUrlOpt = None) -> None:
    """Revoke a link; the sessions it opened end. / 撤销链接，其会话随即失效。"""
    from cloud.services import shared_links

    print(json.dumps(_run(shared_links.revoke, db_url, merchant, link_id, _now_ms())))
