"""What `mcode witness` and `mcode verify` say, in zh-CN and en (chosen by LANG / LC_ALL)."""

from __future__ import annotations

import os

EN: dict[str, str] = {
    "cosigned": "cosigned {origin} at size {size} (was {old})",
    "unchanged": "{origin} is still at size {size}: nothing new to cosign",
    "alarm_fork": "ALARM: FORK. {origin} showed two different trees of size {size}, or a tree that does "
                  "not extend the one cosigned at size {old}. Keep {state}: it is the evidence.",
    "alarm_rollback": "ALARM: ROLLBACK. {origin} now shows size {size}, smaller than size {old} already "
                      "cosigned. Keep {state}: it is the evidence.",
    "alarm_stands": "ALARM: the alarm raised at {at} ({kind}) still stands; the witness cosigns nothing "
                    "until an operator moves {state} away",
    "bad_checkpoint": "refused the checkpoint: {why}",
    "unreachable": "cannot reach the log at {url}: {why}. Check the address and try again.",
    "post_failed": "cosigned, but the log did not take the cosignature ({why}); it is kept in {state} "
                   "and sent again next run",
    "bad_key": "bad key: {why}",
    "keygen": "witness key written to {path} (keep it secret). Give this verifier key to the log and "
              "to verifiers:\n{vkey}",
    "bad_state": "cannot read the witness state {state}: {why}",
    "ok": "VERIFIED",
    "refused": "REFUSED: {why}",
    "check_ok": "  ok    {what}",
    "check_skip": "  skip  {what} (needs {needs})",
    "bad_bundle": "not a proof bundle: {why}",
    "no_file": "cannot read {path}: {why}",
    "key_device": "the device key, held only by the cloud and the device",
    "key_witness": "--witness-key",
    "key_none": "a display code: no key can add it",
    "usage": "give a BUNDLE or --log DIR (not both), and --log-key",
}

ZH: dict[str, str] = {
    "cosigned": "已为 {origin} 副签，树大小 {size}（此前 {old}）",
    "unchanged": "{origin} 仍为大小 {size}：没有新的检查点需要副签",
    "alarm_fork": "警报：分叉。{origin} 给出了大小为 {size} 的两棵不同的树，"
                  "或一棵不延续已副签的大小 {old} 的树。请保留 {state}：它是证据。",
    "alarm_rollback": "警报：回滚。{origin} 现在的大小为 {size}，小于已副签的大小 {old}。"
                      "请保留 {state}：它是证据。",
    "alarm_stands": "警报：{at} 发出的警报（{kind}）仍然有效；在运维人员移走 {state} 之前，见证者不再副签",
    "bad_checkpoint": "拒绝该检查点：{why}",
    "unreachable": "无法连接日志 {url}：{why}。请检查地址后重试。",
    "post_failed": "已副签，但日志未接收副签（{why}）；已保存在 {state}，下次运行时重发",
    "bad_key": "密钥无效：{why}",
    "keygen": "见证者私钥已写入 {path}（请保密）。把下面的验证公钥交给日志和验证者：\n{vkey}",
    "bad_state": "无法读取见证者状态 {state}：{why}",
    "ok": "验证通过",
    "refused": "拒绝：{why}",
    "check_ok": "  通过  {what}",
    "check_skip": "  跳过  {what}（需要{needs}）",
    "bad_bundle": "不是证明包：{why}",
    "no_file": "无法读取 {path}：{why}",
    "key_device": "设备密钥（只有云端和设备持有）",
    "key_witness": "见证者公钥 --witness-key",
    "key_none": "展示码，任何密钥都无法补上",
    "usage": "请给出证明包 BUNDLE 或 --log 目录（二者选一），以及 --log-key",
}


def is_zh() -> bool:
    lang = os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG") or ""
    return lang.lower().startswith("zh")


def say(msg: str, **kw: object) -> str:
    return (ZH if is_zh() else EN)[msg].format(**kw)
