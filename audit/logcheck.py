"""Offline check of a whole exported log (`mcode cloud log export DIR`, cloud/services/tlog_export.py):
the leaves are the tree the checkpoint signed, every batch envelope is the one logged and is signed
by its gateway, and the data the cloud shows (orders, postings, stored records) is what the log
says. This is how a merchant re-verifies its cloud on its own machine: `mcode verify --log DIR`."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.verify import Keys, Refused, Report, gateway_signed
from protocol import batch as pbatch
from protocol import leaves, merkle, note, record


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with open(path) as f:
            for n, line in enumerate(f, start=1):
                try:
                    yield json.loads(line)
                except ValueError:
                    raise Refused("malformed", f"{path.name} line {n} is not JSON") from None
    except OSError as e:
        raise Refused("malformed", f"{path}: {e.strerror}") from None


def _log(d: Path, ks: Keys, rep: Report) -> dict[str, list[dict[str, Any]]]:
    try:
        cp, _, cosigned = note.open_checkpoint((d / "checkpoint.txt").read_bytes(), ks.log, ks.witnesses)
    except OSError as e:
        raise Refused("malformed", f"checkpoint.txt: {e.strerror}") from None
    except note.NoteError as e:
        raise Refused(e.reason, f"checkpoint: {e.detail}") from None
    rep.ok.append(f"checkpoint {cp.origin} size {cp.size}, signed by the log key")
    for w, ts in cosigned.items():
        rep.ok.append(f"cosigned by witness {w.name} at unix time {ts}")
    hashes, by_kind = [], {}  # type: ignore[var-annotated]
    for i, r in enumerate(_rows(d / "leaves.jsonl")):
        leaf = base64.b64decode(r.get("leaf", ""))
        if r.get("index") != i:
            raise Refused("not_included", f"leaf {i} is missing (found index {r.get('index')})")
        try:
            m = leaves.decode(leaf)
        except leaves.LeafError as e:
            raise Refused(e.reason, f"leaf {i}: {e.detail}") from None
        hashes.append(merkle.leaf_hash(leaf))
        by_kind.setdefault(m["k"], []).append(m)
    if len(hashes) != cp.size or merkle.root(hashes) != cp.root:
        raise Refused("not_included", f"the {len(hashes)} leaves are not the tree of size {cp.size} the "
                                      "checkpoint signed: a leaf was changed, removed or added")
    rep.ok.append(f"{len(hashes)} leaves recomputed: their root is the checkpoint's")
    return by_kind


def _batches(d: Path, by_kind: dict[str, list[dict[str, Any]]], rep: Report) -> dict[tuple[str, int], bytes]:
    keys: dict[bytes, list[bytes]] = {}
    for m in by_kind.get(leaves.GATEWAY, []):
        keys.setdefault(m["gw"], []).append(m["pub"])
    envs = {(r["gateway_id"], int(r["bseq"])): base64.b64decode(r["envelope"])
            for r in _rows(d / "envelopes.jsonl")}
    for m in by_kind.get(leaves.BATCH, []):
        env = envs.get((m["gw"].hex(), m["bseq"]))
        if env is None or hashlib.sha256(env).digest() != m["env"]:
            raise Refused("bad_batch", f"batch {m['gw'].hex()}/{m['bseq']}: the envelope is missing or not "
                                       "the one logged")
        try:
            body, sig, _ = pbatch.open_envelope(env)
        except pbatch.BatchError as e:
            raise Refused("bad_batch", f"batch {m['bseq']}: {e}") from None
        if not any(gateway_signed(body, sig, k) for k in keys.get(m["gw"], [])):
            raise Refused("bad_signature", f"batch {m['gw'].hex()}/{m['bseq']}: no logged key of its "
                                           "gateway verifies it")
    rep.ok.append(f"{len(by_kind.get(leaves.BATCH, []))} batch envelope(s): each the one logged, signed by "
                  "its gateway")
    return envs


def _data(d: Path, by_kind: dict[str, list[dict[str, Any]]], envs: dict[tuple[str, int], bytes],
          rep: Report) -> None:
    orders = {m["order"]: m for m in by_kind.get(leaves.ORDER, [])}
    for r in _rows(d / "orders.jsonl"):
        m = orders.get(r["order_id"])
        if m is None or (m["amount"], m["pool"], m["merchant"]) != (r["amount_minor"], r["pool_minor"],
                                                                     r["merchant_id"]):
            raise Refused("data_mismatch", f"order {r['order_id']}: the cloud's row is not what the log says")
    postings = {m["txn"]: m for m in by_kind.get(leaves.POSTING, [])}
    seen = set()
    for r in _rows(d / "postings.jsonl"):
        m = postings.get(r["txn_id"])
        if m is None or sorted(map(tuple, m["lines"])) != sorted(map(tuple, r["lines"])):
            raise Refused("data_mismatch", f"posting {r['txn_id']}: the ledger's lines are not what the log "
                                           "says")
        seen.add(r["txn_id"])
    if set(postings) - seen:
        raise Refused("data_mismatch", f"postings {sorted(set(postings) - seen)[:5]} are logged but gone "
                                       "from the ledger")
    recs = {key: {dev.hex() + rec.hex() for dev, rec in pbatch.open_envelope(env)[2].records}
            for key, env in envs.items()}
    n = 0
    for r in _rows(d / "events.jsonl"):
        _, kind, _, epoch, seq, t, _ = record.unpack(bytes.fromhex(r["raw"]))
        if r["device_id"] + r["raw"] not in recs.get((r["gateway_id"], int(r["bseq"])), set()) or (
                r["epoch"], r["seq"], r["kind"], r["time"]) != (epoch, seq, kind, t):
            raise Refused("data_mismatch", f"a stored record of device {r['device_id']} is in no envelope of "
                                           f"batch {r['gateway_id']}/{r['bseq']}: it was changed or made up")
        n += 1
    rep.ok.append(f"{len(orders)} order(s), {len(seen)} posting(s) and {n} stored record(s) match the log")


def check_export(d: Path, ks: Keys) -> Report:
    """Raises Refused with the first reason found."""
    rep = Report()
    by_kind = _log(d, ks, rep)
    envs = _batches(d, by_kind, rep)
    _data(d, by_kind, envs, rep)
    rep.skipped.append(("record MACs of each device", "device"))
    return rep
