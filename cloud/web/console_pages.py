"""The merchant console's access pages: accepting an invitation, opening a shared read-only link,
and the owner's list of users and links. Labels in zh-CN and en."""

from __future__ import annotations

from typing import Any

from cloud.web.pages import environment

ACCESS_LABELS = {
    "invite_title": ("接受邀请", "Accept an invitation"),
    "invite_code": ("邀请码", "Invitation code"),
    "invite_hint": ("邀请链接 # 号后的部分；从链接打开时已自动填好。",
                    "The part of the invitation link after #; filled in when you open the link."),
    "login": ("登录名", "Login"),
    "password": ("密码（至少 12 个字符）", "Password (at least 12 characters)"),
    "create": ("创建账号并登录", "Create the account and sign in"),
    "shared_title": ("只读数据链接", "Read-only dashboard link"),
    "shared_code": ("链接码", "Link code"),
    "shared_hint": ("只读链接 # 号后的部分；从链接打开时已自动填好。",
                    "The part of the read-only link after #; filled in when you open the link."),
    "open": ("查看数据", "Open the dashboard"),
    "access_title": ("账号与分享链接", "People and shared links"),
    "users": ("账号", "People"),
    "role": ("角色", "Role"),
    "state": ("状态", "State"),
    "disabled": ("已停用", "disabled"),
    "active": ("有效", "active"),
    "links": ("只读链接", "Read-only links"),
    "label": ("备注", "Label"),
    "new_link": ("新建只读链接", "New read-only link"),
    "revoke": ("撤销", "Revoke"),
    "revoked": ("已撤销", "revoked"),
    "made": ("新链接（只显示这一次，请立即复制）：", "New link (shown only this once: copy it now):"),
    "invite_cli": ("邀请新账号：mcode cloud user invite --merchant ID --role owner|staff|viewer",
                   "Invite a person: mcode cloud user invite --merchant ID --role owner|staff|viewer"),
    "back": ("返回数据页", "Back to the dashboard"),
    "err_bad_invite": ("邀请码无效、已使用或已过期，请索取新的邀请。",
                       "This invitation is unknown, used or expired: ask for a new one."),
    "err_login_taken": ("该登录名已被使用，请另选。", "This login is taken: choose another."),
    "err_bad_login": ("登录名须为 3 至 100 个字符，不含空格。",
                      "A login is 3 to 100 characters without spaces."),
    "err_weak_password": ("密码须为 12 至 200 个字符。", "A password has 12 to 200 characters."),
    "err_bad_link": ("此链接无效或已被撤销。", "This link is unknown or was revoked."),
    "err_csrf": ("表单已过期，请重试。", "The form expired. Try again."),
}


def _err(error: str | None) -> tuple[str, str] | None:
    return ACCESS_LABELS.get(f"err_{error}") if error else None


def invite_page(csrf: str, error: str | None = None) -> str:
    return environment().get_template("console/invite.html").render(L=ACCESS_LABELS, csrf=csrf,
                                                                     error=_err(error))


def shared_page(csrf: str, error: str | None = None) -> str:
    return environment().get_template("console/shared.html").render(L=ACCESS_LABELS, csrf=csrf,
                                                                     error=_err(error))


def access_page(merchant_name: str, users: list[dict[str, Any]], links: list[dict[str, Any]], csrf: str,
                new_link: str | None = None) -> str:
    return environment().get_template("console/access.html").render(
        L=ACCESS_LABELS, merchant_name=merchant_name, users=users, links=links, csrf=csrf, new_link=new_link)
