"""protocol/leaves.py: the leaf vectors (leaf_vectors.json) come out of the code byte for byte, and
docs/trust.md prints every one of them; bad leaves are refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import pytest

from protocol import leaves, merkle
from tests.protocol.leaf_cases import build

HERE = Path(__file__).parent
V = json.loads((HERE / "leaf_vectors.json").read_text())
DOC = (HERE.parents[1] / "docs" / "trust.md").read_text()


def test_vectors_match_the_code() -> None:
    built = build()
    assert sorted(built) == sorted(V)
    for name, leaf in built.items():
        assert leaf.hex() == V[name]["hex"], name
        assert merkle.leaf_hash(leaf).hex() == V[name]["leaf_hash"], name
        assert leaves.decode(leaf)["k"] in leaves.SCHEMA


def test_docs_print_every_vector() -> None:
    missing = [n for n, v in V.items() if v["hex"] not in DOC or v["leaf_hash"] not in DOC]
    assert not missing, missing


def test_docs_name_every_field() -> None:
    for kind, fields in leaves.SCHEMA.items():
        for f in fields:
            assert f"`{kind}.{f}`" in DOC, f"{kind}.{f}"


def test_entry_ref_hides_the_entry_id() -> None:
    leaf = build()["shared_entry"]
    assert b"e-shared" not in leaf and b"e-display" not in leaf
    assert leaves.decode(leaf)["parent"] == leaves.entry_ref("e-display")


@pytest.mark.parametrize("bad, reason", [
    (b"", "malformed"), (b"\xff\xff", "malformed"), (cbor2.dumps([1, 2]), "malformed"),
    (cbor2.dumps({"k": "batch", "v": 2}), "malformed"), (cbor2.dumps({"k": "coin", "v": 1}), "unknown_kind"),
    (cbor2.dumps({"k": "gateway", "v": 1, "gw": b"12345678", "pub": b"x" * 32}), "malformed"),
    (cbor2.dumps({"k": "gateway", "v": 1, "gw": b"1234567", "pub": b"x" * 32, "at": 1}), "malformed"),
    (cbor2.dumps({"k": "gateway", "v": 1, "gw": b"12345678", "pub": b"x" * 32, "at": 1, "more": 1}),
     "malformed"),
])
def test_bad_leaves(bad: bytes, reason: str) -> None:
    with pytest.raises(leaves.LeafError) as e:
        leaves.decode(bad)
    assert e.value.reason == reason


def test_one_encoding_per_leaf() -> None:
    m = leaves.decode(build()["gateway"])
    loose = cbor2.dumps(dict(sorted(m.items(), reverse=True)))  # same map, keys out of canonical order
    with pytest.raises(leaves.LeafError) as e:
        leaves.decode(loose)
    assert e.value.reason == "not_canonical"


def test_an_unbalanced_posting_is_refused() -> None:
    with pytest.raises(leaves.LeafError):
        leaves.posting(1, "order", 1, 1, 1, [("a", -5, 0), ("b", 4, 0)], 0)
    with pytest.raises(leaves.LeafError):
        leaves.posting(1, "gift", 1, 1, 1, [("a", -5, 0), ("b", 5, 0)], 0)
