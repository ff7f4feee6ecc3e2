"""The console's payout pages (/merchant/payouts): the due list with a "mark paid" form, the history of
settlements with their CSV, and one sharer's statement, zh-CN and en. Renders what
cloud/services/payouts.py computes; knows nothing of requests. The settlement CSV is built here too:
one line per sharer paid, money in minor units and formatted."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from cloud.web.pages import environment
from cloud.web.sales_pages import money

PAYOUT_LABELS = {
    "title": ("分成结算", "Payouts"),
    "back": ("返回数据页", "Back to the dashboard"),
    "due_title": ("应付分成（已过冻结期）", "Due to sharers (past their hold)"),
    "due_note": ("冻结期内的分成，以及被风控标记（待审或暂扣）的订单的分成不在此列。",
                 "Credits still inside their hold, and those of orders with a fraud flag open or held, "
                 "are not listed."),
    "held_total": ("仍在冻结中", "Still held"),
    "sharer": ("分享者", "Sharer"),
    "campaign": ("活动", "Campaign"),
    "earned": ("已赚", "Earned"),
    "refunded": ("已退回", "Refunded"),
    "held": ("冻结中", "Held"),
    "paid": ("已付", "Paid"),
    "due": ("应付", "Due"),
    "total": ("合计", "Total"),
    "pick": ("选择", "Pick"),
    "none_due": ("目前没有应付分成。", "Nothing is due now."),
    "pay_selected": ("将所选标记为已付", "Mark the selected as paid"),
    "pay_all": ("全部标记为已付", "Mark all due as paid"),
    "pay_hint": ("请先在银行或支付平台实际付款，再在此标记；每次标记生成一条结算记录和 CSV。",
                 "Pay through your bank or payment service first, then mark it here; each batch makes "
                 "one settlement with its CSV."),
    "read_only": ("只读：只有所有者可以标记付款。", "Read only: only an owner marks payouts paid."),
    "history": ("结算记录", "Settlements"),
    "settlement": ("结算编号", "Settlement"),
    "when": ("时间（UTC）", "Time (UTC)"),
    "by": ("操作人", "By"),
    "sharers": ("人数", "Sharers"),
    "n_sharers": ("位分享者", "sharers"),
    "amount": ("金额", "Amount"),
    "csv": ("下载 CSV", "Download CSV"),
    "no_history": ("还没有结算记录。", "No settlements yet."),
    "statement": ("分享者对账单", "Sharer statement"),
    "orders": ("各订单分成", "Credits per order"),
    "order": ("订单", "Order"),
    "credited": ("分成", "Credit"),
    "reversed": ("退回", "Reversed"),
    "net": ("净额", "Net"),
    "due_at": ("到期（UTC）", "Due at (UTC)"),
    "state": ("状态", "State"),
    "proof": ("证明", "Proof"),
    "download_proof": ("下载证明", "Proof bundle"),
    "state_held": ("冻结中", "held"),
    "state_flagged": ("风控标记", "flagged"),
    "state_cleared": ("已到期", "cleared"),
    "state_reversed": ("已退回", "reversed"),
    "paid_in": ("付款记录", "Paid in settlements"),
    "done": ("已标记付款：结算 #{id}，共 {n} 人，{total}。",
             "Marked paid: settlement #{id}, {n} sharers, {total}."),
    "err_other": ("出错了，请重试。", "Something went wrong. Try again."),
    "err_csrf": ("表单已过期，请重试。", "The form expired. Try again."),
    "err_nothing_due": ("所选分享者目前没有应付分成。", "None of the selected sharers has anything due now."),
    "err_none_picked": ("请至少选择一位分享者，或点“全部标记为已付”。",
                        "Pick at least one sharer, or use \"Mark all due as paid\"."),
    "err_idempotency_conflict": ("该表单已提交过另一批分享者，请刷新页面。",
                                 "This form was already used for other sharers: reload the page."),
}

CSV_FIELDS = ("settlement_id", "paid_at", "sharer_id", "share_code", "amount_minor", "amount", "currency")


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def payouts_page(merchant_name: str, due: dict[str, Any], history: list[dict[str, Any]], csrf: str | None,
                 owner: bool, idem: str, notice: tuple[str, str] | None = None,
                 error: tuple[str, str] | None = None) -> str:
    """The due list (its totals per currency are the sums of its rows), the form to mark payouts
    paid (owners only, with the session's CSRF token and a one-use idempotency key), the history."""
    return environment().get_template("console/payouts.html").render(
        L=PAYOUT_LABELS, merchant_name=merchant_name, due=due, history=history, csrf=csrf, owner=owner,
        idem=idem, notice=notice, error=error, money=money, when=when)


def statement_page(merchant_name: str, st: dict[str, Any], proof_base: str) -> str:
    """One sharer: totals, each order's credit with its proof bundle's link, each settlement."""
    return environment().get_template("console/payout_statement.html").render(
        L=PAYOUT_LABELS, merchant_name=merchant_name, st=st, money=money, when=when, proof_base=proof_base)


def done_notice(answer: dict[str, Any]) -> tuple[str, str]:
    by: dict[str, int] = {}
    for ln in answer["lines"]:
        by[ln["currency"]] = by.get(ln["currency"], 0) + ln["amount_minor"]
    total = " + ".join(money(v, c) for c, v in sorted(by.items()))
    zh, en = PAYOUT_LABELS["done"]
    n = len(answer["lines"])
    return zh.format(id=answer["settlement_id"], n=n, total=total), en.format(id=answer["settlement_id"], n=n,
                                                                             total=total)


def settlement_csv(answer: dict[str, Any]) -> str:
    """One line per sharer paid: ids, the amount in minor units and formatted, currency, time (UTC)."""
    out = io.StringIO()
    w = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    paid_at = dt.datetime.fromtimestamp(answer["paid_at_ms"] / 1000, dt.UTC).isoformat(timespec="seconds")
    for ln in answer["lines"]:
        w.writerow({"settlement_id": answer["settlement_id"], "paid_at": paid_at,
                    "sharer_id": ln["participant_id"], "share_code": ln["share_code"],
                    "amount_minor": ln["amount_minor"], "amount": money(ln["amount_minor"], ln["currency"]),
                    "currency": ln["currency"]})
    return out.getvalue()
