"""What the trust log's leaves hold, byte for byte (CPython only: the cloud, the verifier).

A leaf is deterministic CBOR (RFC 8949 section 4.2, cbor2 canonical=True) of one map:
    {"k": kind, "v": 1, ...fields}
and its Merkle leaf hash is SHA-256(0x00 || those bytes) (protocol/merkle.py). The kinds and their
fields are in SCHEMA below and in docs/trust.md, with test vectors. Times are unix milliseconds.

Entries are named by entry_ref(id), never by their id: an entry id is a shopper's bearer token,
and bundles travel. Visitor tokens and sharer account references never enter the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import cbor2

from protocol.errors import ReasonError
from protocol.merkle import leaf_hash

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

VERSION = 1
BATCH, GATEWAY, ENTRY, SHARE, ORDER, POSTING = "batch", "gateway", "entry", "share", "order", "posting"
SETTLEMENT = "settlement"
POSTING_KINDS = ("order", "refund", "reject", "settlement")
MAX_LEAF = 64 * 1024


class LeafError(ReasonError):
    """Bytes that are not a leaf of this log; `reason` is malformed, not_canonical, unknown_kind."""


def _uint(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _bytes(n: int) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, bytes) and len(x) == n


def _text(x: Any) -> bool:
    return isinstance(x, str) and 0 < len(x) <= 200


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


def _rows(*cols: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, list) and len(x) <= 1000 and all(
        isinstance(r, list) and len(r) == len(cols) and all(c(v) for c, v in zip(cols, r, strict=True))
        for r in x)


def _params(x: Any) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) for k in x)


_REF = _bytes(32)
_ID8 = _bytes(8)
SCHEMA: dict[str, dict[str, Callable[[Any], bool]]] = {
    # an accepted batch: SHA-256 of the envelope exactly as the gateway signed and sent it
    BATCH: {"gw": _ID8, "bseq": _uint, "env": _bytes(32), "at": _uint},
    # a gateway's Ed25519 public key, logged when registered: the key batches are checked with
    GATEWAY: {"gw": _ID8, "pub": _bytes(32), "at": _uint},
    # a typed code: a display code (device, window, period, slots) or a share code (parent)
    ENTRY: {"entry": _REF, "campaign": _uint, "code": _text, "device": _opt(_ID8), "window": _opt(_uint),
            "period": _opt(_uint), "slots": _opt(_uint), "parent": _opt(_REF), "at": _uint},
    # an entry's shopper became a sharer: participant id and personal code (BASE-NNNNNN)
    SHARE: {"entry": _REF, "participant": _uint, "code": _text, "at": _uint},
    # an order and its pool's split: [level, participant or null, payee, amount]
    ORDER: {"order": _uint, "merchant": _uint, "campaign": _uint, "entry": _REF, "amount": _uint,
            "pool": _uint, "rule": _text, "params": _params,
            "payouts": _rows(_uint, _opt(_uint), _text, _uint), "at": _uint},
    # a balanced ledger transaction: [account ref, signed amount, due time]
    POSTING: {"txn": _uint, "kind": lambda x: x in POSTING_KINDS, "merchant": _uint, "campaign": _uint,
              "order": _opt(_uint), "lines": _rows(_text, _int, _uint), "at": _uint},
    # a batch of due payouts marked paid: [participant, amount, the settlement posting's txn]
    SETTLEMENT: {"settlement": _uint, "merchant": _uint, "paid": _rows(_uint, _uint, _uint), "at": _uint},
}


def entry_ref(entry_id: str) -> bytes:
    return hashlib.sha256(b"mcode/v0/entry\n" + entry_id.encode()).digest()


def encode(kind: str, fields: dict[str, Any]) -> bytes:
    """The leaf bytes for `fields` of `kind`; raises LeafError if a field is missing or wrong."""
    m = {"k": kind, "v": VERSION}
    m.update(fields)  # not {**fields}: mpy-cross refuses it, and the device build compiles protocol/
    leaf = cbor2.dumps(m, canonical=True)
    decode(leaf)
    return leaf


def decode(leaf: bytes) -> dict[str, Any]:
    """Parse and check a leaf: canonical, a known kind and version, every field of its schema
    and nothing else. Returns the map."""
    if not isinstance(leaf, bytes) or len(leaf) > MAX_LEAF:
        raise LeafError("malformed", "a leaf is at most 64 KiB of bytes")
    try:
        m = cbor2.loads(leaf)
    except Exception as e:  # cbor2 raises several types on garbage
        raise LeafError("malformed", str(e)[:200]) from None
    if not isinstance(m, dict) or m.get("v") != VERSION:
        raise LeafError("malformed", "a leaf is a map with v = 1")
    schema = SCHEMA.get(m.get("k"))  # type: ignore[arg-type]
    if schema is None:
        raise LeafError("unknown_kind", repr(m.get("k"))[:40])
    if set(m) != set(schema) | {"k", "v"}:
        raise LeafError("malformed", f"{m['k']}: fields {sorted(map(str, m))}")
    bad = [f for f, check in schema.items() if not check(m[f])]
    if bad:
        raise LeafError("malformed", f"{m['k']}: bad {', '.join(bad)}")
    if cbor2.dumps(m, canonical=True) != leaf:
        raise LeafError("not_canonical", "the same leaf has one encoding only")
    return m


def hash_of(leaf: bytes) -> bytes:
    return leaf_hash(leaf)


def batch(gateway_id: bytes, bseq: int, envelope: bytes, at_ms: int) -> bytes:
    return encode(BATCH, {"gw": gateway_id, "bseq": bseq, "env": hashlib.sha256(envelope).digest(),
                          "at": at_ms})


def gateway(gateway_id: bytes, public_key: bytes, at_ms: int) -> bytes:
    return encode(GATEWAY, {"gw": gateway_id, "pub": public_key, "at": at_ms})


def display_entry(entry_id: str, campaign: int, code: str, device_id: bytes, window: int, period_s: int,
                  slots: int, at_ms: int) -> bytes:
    return encode(ENTRY, {"entry": entry_ref(entry_id), "campaign": campaign, "code": code,
                          "device": device_id, "window": window, "period": period_s, "slots": slots,
                          "parent": None, "at": at_ms})


def shared_entry(entry_id: str, campaign: int, code: str, parent_entry_id: str, at_ms: int) -> bytes:
    """An entry through a sharer's code; parent is the entry that made that sharer."""
    return encode(ENTRY, {"entry": entry_ref(entry_id), "campaign": campaign, "code": code,
                          "device": None, "window": None, "period": None, "slots": None,
                          "parent": entry_ref(parent_entry_id), "at": at_ms})


def share(entry_id: str, participant: int, code: str, at_ms: int) -> bytes:
    return encode(SHARE, {"entry": entry_ref(entry_id), "participant": participant, "code": code,
                          "at": at_ms})


def order(order_id: int, merchant: int, campaign: int, entry_id: str, amount_minor: int, pool_minor: int,
          rule: str, params: dict[str, Any], payouts: Sequence[tuple[int, int | None, str, int]],
          at_ms: int) -> bytes:
    return encode(ORDER, {"order": order_id, "merchant": merchant, "campaign": campaign,
                          "entry": entry_ref(entry_id), "amount": amount_minor, "pool": pool_minor,
                          "rule": rule, "params": params, "payouts": [list(p) for p in payouts],
                          "at": at_ms})


def posting(txn_id: int, kind: str, merchant: int, campaign: int, order_id: int | None,
            lines: Sequence[tuple[str, int, int]], at_ms: int) -> bytes:
    """A ledger transaction; its lines (account ref, signed minor units, due ms) must sum to zero."""
    if sum(a for _, a, _ in lines) != 0:
        raise LeafError("malformed", "a posting's lines sum to zero")
    return encode(POSTING, {"txn": txn_id, "kind": kind, "merchant": merchant, "campaign": campaign,
                            "order": order_id, "lines": [list(x) for x in lines], "at": at_ms})


def settlement(settlement_id: int, merchant: int, paid: Sequence[tuple[int, int, int]], at_ms: int) -> bytes:
    """A settlement batch: each (participant, amount paid, txn id of its settlement posting)."""
    return encode(SETTLEMENT, {"settlement": settlement_id, "merchant": merchant,
                               "paid": [list(x) for x in paid], "at": at_ms})
