"""Proof bundles built with protocol/ alone (no cloud): a device's signed taps in a batch made the
way gateway/ makes them (protocol.batch.sign), a display entry, two sharers, an order, a posting."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol import batch as pbatch
from protocol import keys, leaves, merkle, note, record, rotation
from protocol.bundle import Bundle, Link
from protocol.hmac256 import HmacKey

DEV = bytes.fromhex("d000000000000001")
DEV_KEY = bytes(range(100, 132))
GW = bytes.fromhex("6777000000000001")
PERIOD, SLOTS, SLOT, DIGITS = 60, 4, 1, 2
T = 1_700_000_040  # unix seconds, inside window T // PERIOD
W = T // PERIOD


@dataclass
class World:
    log: note.Signer
    witness: note.Signer
    gw_key: Ed25519PrivateKey
    leaves: list[bytes]
    envelopes: dict[int, bytes]  # leaf index -> envelope
    subject: list[int]  # indexes of the payout's links


def display_code() -> str:
    rot = rotation.Rotor(keys.rotation_key(DEV_KEY), SLOT, SLOTS, DIGITS)
    return rotation.format_code("4919", rot.value(W), DIGITS)


def taps(n: int) -> list[tuple[bytes, bytes]]:
    rk = HmacKey(keys.record_key(DEV_KEY))
    recs = [(DEV, record.make(rk, DEV, record.KIND_TAP, record.FLAG_CLOCK_SET, 1, 100 + i, T + i,
                              b"n%07d" % i)) for i in range(n)]
    recs.append((bytes(8), bytes(40)))  # another device's record rides along; not ours to judge
    return recs


def build_world(filler: int = 37) -> World:
    log = note.Signer.generate("log.test/demo")
    wit = note.Signer.generate("witness.test/w1", note.COSIGNATURE_V1)
    gw = Ed25519PrivateKey.generate()
    env = pbatch.sign(pbatch.Batch(GW, 9, T * 1000, taps(3)), gw)
    at = T * 1000
    pub = gw.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    chain = [
        leaves.gateway(GW, pub, at - 10**6),
        leaves.batch(GW, 9, env, at + 500),
        leaves.display_entry("e-root", 7, display_code(), DEV, W, PERIOD, SLOTS, at + 1000),
        leaves.share("e-root", 11, "4919-204811", at + 2000),
        leaves.shared_entry("e-mid", 7, "4919-204811", "e-root", at + 3000),
        leaves.share("e-mid", 12, "4919-777777", at + 4000),
        leaves.shared_entry("e-buyer", 7, "4919-777777", "e-mid", at + 5000),
        leaves.order(3, 1, 7, "e-buyer", 10000, 600, "red_balloon", {"halving": 2},
                     [(1, 12, "participant", 300), (2, 11, "participant", 150), (0, None, "charity", 150)],
                     at + 6000),
        leaves.posting(5, "order", 1, 7, 3, [("campaign_budget:7", -600, at), ("sharer:12", 300, at),
                                             ("sharer:11", 150, at), ("charity:1", 150, at)], at + 6000),
    ]
    all_leaves: list[bytes] = []
    subject, envelopes = [], {}
    for i, leaf in enumerate(chain):
        all_leaves += [b"filler %d %d" % (i, j) for j in range(filler)]
        subject.append(len(all_leaves))
        if i == 1:
            envelopes[len(all_leaves)] = env
        all_leaves.append(leaf)
    all_leaves += [b"tail %d" % j for j in range(filler)]
    return World(log, wit, gw, all_leaves, envelopes, subject)


def checkpoint(w: World, size: int | None = None, cosign: bool = True) -> str:
    size = len(w.leaves) if size is None else size
    hashes = [merkle.leaf_hash(x) for x in w.leaves[:size]]
    n = note.sign_checkpoint(note.Checkpoint(w.log.name, size, merkle.root(hashes)), w.log)
    if cosign:
        n = n.with_lines(w.witness.sign_line(n.text, 1_700_000_100))
    return n.render()


def bundle(w: World, size: int | None = None, cosign: bool = True, proof_size: int | None = None) -> Bundle:
    size = len(w.leaves) if size is None else size
    hashes = [merkle.leaf_hash(x) for x in w.leaves]
    links = tuple(Link(i, w.leaves[i], tuple(merkle.inclusion_proof(i, proof_size or size, hashes)),
                       w.envelopes.get(i)) for i in w.subject)
    return Bundle(checkpoint(w, size, cosign), links)
