"""Offline verification of a proof bundle (protocol/bundle.py): every hash recomputed, every
signature checked that the keys at hand allow, and the chain walked from the posting to the taps.

Which check needs which key:
- the checkpoint: the log's public key (always required);
- the cosignatures: each witness's public key (--witness-key; each one given is required);
- the batches: the gateway's Ed25519 key, taken from the gateway leaf in the bundle (itself
  proved in the log) unless --gateway-key overrides it;
- the device's records (MACs) and the display code: the device key, which only the cloud and the
  device hold (--device-key); without it those checks are reported as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol import batch as pbatch
from protocol import keys, leaves, merkle, note, record, rotation
from protocol.bundle import Bundle, Link
from protocol.errors import ReasonError
from protocol.hmac256 import HmacKey


class Refused(ReasonError):
    """The bundle does not prove what it claims; `detail` says where."""


@dataclass
class Report:
    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, which key)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Keys:
    log: note.Verifier
    witnesses: tuple[note.Verifier, ...] = ()
    gateways: dict[bytes, bytes] = field(default_factory=dict)  # gateway id -> raw Ed25519 key
    devices: dict[bytes, bytes] = field(default_factory=dict)  # device id -> 32-byte device key


@dataclass(frozen=True)
class _Leaf:
    link: Link
    m: dict[str, Any]


def _prove(b: Bundle, ks: Keys, rep: Report) -> list[_Leaf]:
    try:
        cp, _, cosigned = note.open_checkpoint(b.checkpoint, ks.log, ks.witnesses)
    except note.NoteError as e:
        raise Refused(e.reason, f"checkpoint: {e.detail}") from None
    rep.ok.append(f"checkpoint {cp.origin} size {cp.size}, signed by the log key")
    for w, ts in cosigned.items():
        rep.ok.append(f"cosigned by witness {w.name} at unix time {ts}")
    if not ks.witnesses:
        rep.skipped.append(("witness cosignature (split-view protection)", "witness"))
    rep.facts["checkpoint"] = {"origin": cp.origin, "size": cp.size}
    out = []
    for i, link in enumerate(b.links):
        if not merkle.verify_inclusion(link.index, cp.size, merkle.leaf_hash(link.leaf), list(link.proof),
                                       cp.root):
            raise Refused("not_included", f"link {i} (leaf {link.index}) is not in the checkpoint of size "
                                          f"{cp.size}: a changed leaf, a changed proof, or a proof for "
                                          "another tree")
        try:
            m = leaves.decode(link.leaf)
        except leaves.LeafError as e:
            raise Refused(e.reason, f"link {i}: {e.detail}") from None
        out.append(_Leaf(link, m))
    rep.ok.append(f"{len(out)} leaves, each proved included in that checkpoint")
    return out


def _one(found: list[_Leaf], what: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    hits = [x.m for x in found if pred(x.m)]
    if not hits:
        raise Refused("broken_chain", f"the bundle has no {what}")
    return hits[0]


def _walk(found: list[_Leaf], rep: Report) -> dict[str, Any]:
    """posting -> order -> entries and shares -> the display entry. Returns the display entry."""
    posting = _one(found, "posting", lambda m: m["k"] == leaves.POSTING)
    if sum(ln[1] for ln in posting["lines"]) != 0:
        raise Refused("bad_posting", f"posting {posting['txn']} does not balance")
    if posting["order"] is None:
        raise Refused("broken_chain", "the posting names no order")
    order = _one(found, f"order {posting['order']}",
                 lambda m: m["k"] == leaves.ORDER and m["order"] == posting["order"])
    if sum(p[3] for p in order["payouts"]) != order["pool"]:
        raise Refused("bad_split", f"order {order['order']}: payouts do not sum to the pool")
    booked = {(ln[0], ln[1]) for ln in posting["lines"]}
    sign = -1 if posting["kind"] == "refund" else 1
    for _level, pid, _, amount in order["payouts"]:
        if pid is not None and amount and (f"sharer:{pid}", sign * amount) not in booked:  # 0: no line
            raise Refused("bad_posting", f"the posting does not pay participant {pid} its {amount}")
    rep.ok.append(f"posting {posting['txn']} ({posting['kind']}) books order {order['order']}'s split")
    entry = _one(found, "the order's entry",
                 lambda m: m["k"] == leaves.ENTRY and m["entry"] == order["entry"])
    chain: list[int] = []
    while entry["parent"] is not None:
        parent = entry["parent"]
        sh = _one(found, f"share for code {entry['code']}",
                  lambda m, p=parent: m["k"] == leaves.SHARE and m["entry"] == p)  # type: ignore[misc]
        if sh["code"] != entry["code"]:
            raise Refused("broken_chain", f"code {entry['code']} was not the code the parent shared")
        chain.append(sh["participant"])
        if len(chain) > 1000:
            raise Refused("broken_chain", "the chain does not end")
        entry = _one(found, "a parent entry",
                     lambda m, p=parent: m["k"] == leaves.ENTRY and m["entry"] == p)  # type: ignore[misc]
    paid = {p[1] for p in order["payouts"] if p[1] is not None}
    if not paid <= set(chain):
        raise Refused("broken_chain", f"participants {sorted(paid - set(chain))} are paid but not in "
                                      "the chain")
    rep.facts.update({"order": order["order"], "amount": order["amount"], "pool": order["pool"],
                      "chain": chain, "display_code": entry["code"], "window": entry["window"],
                      "device": entry["device"].hex() if entry["device"] is not None else None})
    if entry["device"] is None:  # typed as the bare base code: the campaign's, no device, no taps
        rep.ok.append(f"share chain of {len(chain)} sharer(s) {chain} ends at the bare base code "
                      f"{entry['code']}")
        rep.skipped.append((f"presence: {entry['code']} names no display", "none"))
        return entry
    rep.ok.append(f"share chain of {len(chain)} sharer(s) {chain} ends at display code {entry['code']}")
    return entry


def gateway_signed(body: bytes, sig: bytes, pub: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return pbatch.verify(body, sig, Ed25519PublicKey.from_public_bytes(pub))
    except ValueError:
        return False


def _code_check(entry: dict[str, Any], dkey: bytes) -> None:
    split = rotation.split_code(entry["code"])
    if split is None:
        raise Refused("bad_code", f"{entry['code']} is not BASE-SUFFIX")
    digits, value = len(split[1]), int(split[1])
    try:
        loc = rotation.locate(value, entry["slots"], digits)
        ok = loc is not None and rotation.Rotor(keys.rotation_key(dkey), loc[0], entry["slots"],
                                                 digits).value(entry["window"]) == value
    except ValueError:
        ok = False
    if not ok:
        raise Refused("bad_code", f"{entry['code']} is not what the device showed in window "
                                  f"{entry['window']}")


def _taps(found: list[_Leaf], entry: dict[str, Any], ks: Keys, rep: Report) -> None:
    dev, w, period = entry["device"], entry["window"], entry["period"]
    gw_keys: dict[bytes, list[bytes]] = {}  # a rotated gateway has had several keys logged
    for m in (x.m for x in found):
        if m["k"] == leaves.GATEWAY:
            gw_keys.setdefault(m["gw"], []).append(m["pub"])
    gw_keys.update({g: [k] for g, k in ks.gateways.items()})
    dkey = ks.devices.get(dev)
    taps = batches = 0
    for x in found:
        if x.m["k"] != leaves.BATCH:
            continue
        env = x.link.envelope
        if env is None or leaves.batch(x.m["gw"], x.m["bseq"], env, x.m["at"]) != x.link.leaf:
            raise Refused("bad_batch", f"batch {x.m['bseq']}: the envelope is missing or not the logged one")
        try:
            body, sig, b = pbatch.open_envelope(env)
        except pbatch.BatchError as e:
            raise Refused("bad_batch", f"batch {x.m['bseq']}: {e}") from None
        pubs = gw_keys.get(b.gateway_id)
        if not pubs or b.gateway_id != x.m["gw"] or b.bseq != x.m["bseq"]:
            raise Refused("bad_batch", f"batch {x.m['bseq']}: no key for gateway {b.gateway_id.hex()}")
        if not any(gateway_signed(body, sig, pub) for pub in pubs):
            raise Refused("bad_signature", f"batch {x.m['bseq']}: the gateway's signature does not verify")
        batches += 1
        for d, rec in b.records:
            if d != dev:
                continue
            if dkey is not None and not record.verify(HmacKey(keys.record_key(dkey)), d, rec):
                raise Refused("bad_mac", f"batch {x.m['bseq']}: a record of {dev.hex()} fails its MAC")
            f = record.unpack(rec)
            in_window = w is not None and f[5] // period == w
            if f[1] == record.KIND_TAP and f[2] & record.FLAG_CLOCK_SET and in_window:
                taps += 1
    rep.ok.append(f"{batches} batch(es) signed by their gateway; {taps} tap(s) by device {dev.hex()} "
                  f"in window {w}")
    rep.facts["taps_in_window"] = taps
    if dkey is None:
        rep.skipped.append((f"device {dev.hex()}: record MACs and the display code", "device"))
    elif w is None:  # a printed code: it never rotates, so there is no window to check it in
        rep.ok.append(f"record MACs checked with the device key; {entry['code']} is a printed code")
    else:
        _code_check(entry, dkey)
        rep.ok.append(f"record MACs and display code {entry['code']} checked with the device key")


def verify_bundle(b: Bundle, ks: Keys) -> Report:
    """Raises Refused with the first reason found; returns what was checked and what was skipped."""
    rep = Report()
    found = _prove(b, ks, rep)
    entry = _walk(found, rep)
    if entry["device"] is not None:
        _taps(found, entry, ks, rep)
    return rep
