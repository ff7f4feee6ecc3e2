"""Pages rendered from templates/: each function takes the page's data and returns HTML.
Labels come in zh-CN and en; the template shows both, each marked with its `lang`."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# (zh-CN, en) for every label on the merchant page
MERCHANT_LABELS = {
    "title": ("商户数据", "Merchant data"),
    "device": ("设备", "Device"),
    "label": ("标签", "Label"),
    "location": ("M店 / 位置", "Location"),
    "code": ("基础码 / 槽位", "Base code / slot"),
    "scans": ("扫码（触碰）", "Scans (taps)"),
    "events": ("事件", "Events"),
    "gaps": ("缺失", "Gaps"),
    "entries": ("进店", "Entries"),
    "total": ("合计", "Total"),
    "orders": ("订单", "Orders"),
    "paid": ("付给酬客（不含已退款订单）", "Paid to sharers (refunds excluded)"),
    "none": ("尚无设备", "No devices yet"),
    "access": ("账号与分享链接", "People and shared links"),
    "devices": ("各设备", "Each device"),
    "gaps_note": ("缺失：设备日志序号中未收到的记录数。",
                  "Gaps: records missing from a device's log sequence."),
    "logout": ("退出登录", "Sign out"),
}
# (zh-CN, en) for the login form; errors by the code the route gives
LOGIN_LABELS = {
    "title": ("商户登录", "Merchant sign-in"),
    "key": ("商户密钥", "Merchant key"),
    "hint": ("以 mk_ 开头，由 mcode 管理员发给您。请勿放进网址或转发。",
             "Starts with mk_; your mcode operator gave it to you. Never put it in a link or forward it."),
    "submit": ("登录", "Sign in"),
    "ttl": ("{h} 小时后自动退出。", "You are signed out after {h} hours."),
    "err_key": ("密钥错误，请重试。", "Wrong key. Try again."),
    "err_role": ("这不是商户密钥。", "This is not a merchant key."),
    "err_csrf": ("表单已过期，请重试。", "The form expired. Try again."),
    "err_password": ("登录名或密码错误。", "Wrong login or password."),
    "err_limited": ("尝试次数过多，请 {m} 分钟后再试。", "Too many tries. Try again in {m} minutes."),
    "login": ("登录名", "Login"),
    "password": ("密码", "Password"),
    "or_person": ("或使用登录名和密码", "Or with a login and password"),
}


@cache
def environment() -> Environment:
    """The one Jinja2 environment (made on first use, not at import): autoescaped HTML."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def merchant_page(merchant_name: str, stats: dict[str, Any], csrf: str | None = None,
                  owner: bool = False, dashboard: str = "") -> str:
    """The merchant page (商户页) from `stats.merchant_stats`; with a login's `csrf` token, a
    sign-out button."""
    return environment().get_template("merchant.html").render(
        L=MERCHANT_LABELS, merchant_name=merchant_name, stats=stats, totals=stats["totals"], csrf=csrf,
        owner=owner, dashboard=dashboard)


def login_page(csrf: str, error: str | None, ttl_s: int, wait_min: int = 0) -> str:
    """The login form (商户登录); `error` is "key", "password", "role", "csrf" or "limited" (then
    `wait_min` says how long)."""
    hours = max(1, ttl_s // 3600)
    ttl = (LOGIN_LABELS["ttl"][0].format(h=hours), LOGIN_LABELS["ttl"][1].format(h=hours))
    message = LOGIN_LABELS.get(f"err_{error}") if error else None
    if message is not None and error == "limited":
        message = (message[0].format(m=wait_min), message[1].format(m=wait_min))
    return environment().get_template("login.html").render(L=LOGIN_LABELS, csrf=csrf, error=message, ttl=ttl)


def docs_page(title: str, assets_url: str) -> str:
    """Swagger UI's page: its start script is static/swagger-init.js (no inline script)."""
    return environment().get_template("docs.html").render(title=title, assets=assets_url)
