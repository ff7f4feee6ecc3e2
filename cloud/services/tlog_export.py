"""A merchant's own copy of the trust log and of the data it vouches for (docs/trust.md, "A
merchant's own copy"), written to a folder that `mcode verify --log DIR` checks offline:

    checkpoint.txt     the signed (and cosigned) checkpoint of exactly the leaves exported
    log_key.txt        the log's verifier key
    leaves.jsonl       {"index", "kind", "leaf": base64}, every leaf in order
    envelopes.jsonl    {"gateway_id", "bseq", "envelope": base64}: the batches as the gateways signed them
    orders.jsonl       {"order_id", "merchant_id", "campaign_id", "amount_minor", "pool_minor"}
    postings.jsonl     {"txn_id", "kind", "order_id", "lines": [[account, amount, due ms], ...]}
    events.jsonl       {"device_id", "gateway_id", "bseq", "epoch", "seq", "kind", "time", "raw": hex}:
                       every stored record, its columns and its bytes

Entry ids (shoppers' bearer tokens) and visitor tokens are not exported."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cloud.services import tlog
from cloud.store.engine import SessionFactory
from cloud.store.models import BatchEnvelope, Event, LedgerAccount, LedgerEntry, LedgerTxn, LogLeaf, Order
from protocol import note

CHUNK = 5000


def _b64(b: bytes) -> str:
    return base64.b64encode(bytes(b)).decode()


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
            n += 1
    return n


def _postings(sf: SessionFactory) -> Iterable[dict[str, Any]]:
    with sf() as s:
        lines: dict[int, list[list[Any]]] = {}
        for tid, ref, amount, due in s.execute(
                select(LedgerEntry.txn_id, LedgerAccount.ref, LedgerEntry.amount_minor, LedgerEntry.due_at_ms)
                .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id).order_by(LedgerEntry.id)):
            lines.setdefault(int(tid), []).append([ref, int(amount), int(due)])
        for t in s.scalars(select(LedgerTxn).order_by(LedgerTxn.id)):
            yield {"txn_id": t.id, "kind": t.kind, "order_id": t.order_id, "lines": lines.get(t.id, [])}


def export(sf: SessionFactory, signer: note.Signer, out: Path) -> dict[str, int]:
    """Write the folder; returns how many rows of each file. The checkpoint is signed at the
    log's size now (or reused), and exactly that many leaves are written."""
    out.mkdir(parents=True, exist_ok=True)
    cp = tlog.publish(sf, signer)
    size = int(cp.size)
    with sf() as s:
        (out / "checkpoint.txt").write_text(tlog.cosigned(s, cp))
    (out / "log_key.txt").write_text(signer.verifier.vkey() + "\n")
    counts = {}
    with sf() as s:
        counts["leaves"] = _write(out / "leaves.jsonl", (
            {"index": int(i), "kind": k, "leaf": _b64(b)} for i, k, b in s.execute(
                select(LogLeaf.idx, LogLeaf.kind, LogLeaf.leaf).where(LogLeaf.idx < size)
                .order_by(LogLeaf.idx).execution_options(yield_per=CHUNK))))
        counts["envelopes"] = _write(out / "envelopes.jsonl", (
            {"gateway_id": g, "bseq": int(b), "envelope": _b64(e)} for g, b, e in s.execute(
                select(BatchEnvelope.gateway_id, BatchEnvelope.bseq, BatchEnvelope.envelope)
                .order_by(BatchEnvelope.gateway_id, BatchEnvelope.bseq).execution_options(yield_per=CHUNK))))
        counts["orders"] = _write(out / "orders.jsonl", (
            {"order_id": o.id, "merchant_id": o.merchant_id, "campaign_id": o.campaign_id,
             "amount_minor": o.amount_minor, "pool_minor": o.pool_minor}
            for o in s.scalars(select(Order).order_by(Order.id))))
        counts["events"] = _write(out / "events.jsonl", (
            {"device_id": d, "gateway_id": g, "bseq": int(b), "epoch": int(ep), "seq": int(sq),
             "kind": int(k), "time": int(tm), "raw": bytes(r).hex()}
            for d, g, b, ep, sq, k, tm, r in s.execute(
                select(Event.device_id, Event.gateway_id, Event.bseq, Event.epoch, Event.seq, Event.kind,
                       Event.time, Event.raw)
                .order_by(Event.gateway_id, Event.bseq).execution_options(yield_per=CHUNK))))
    counts["postings"] = _write(out / "postings.jsonl", _postings(sf))
    return counts
