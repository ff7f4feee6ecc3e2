"""protocol/merkle.py against a tree computed independently here (the RFC 9162 recursion written
out naively), for every size up to 64 and random larger ones; tampered proofs are refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import merkle
from tests.mp.harness import micropython_exe
from tests.protocol import merkle_cases

ROOT = Path(__file__).resolve().parents[2]


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, straight from the text: d holds the leaves' data, not their hashes."""
    if not d:
        return H(b"")
    if len(d) == 1:
        return H(b"\x00" + d[0])
    k = k_of(len(d))
    return H(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = k_of(len(d))
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = k_of(len(d))
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def data(n: int) -> list[bytes]:
    return [b"leaf %d" % i for i in range(n)]


def flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    b = bytearray(out[i])
    b[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(b)
    return out


@pytest.mark.parametrize("n", range(0, 65))
def test_root_and_every_inclusion_proof(n: int) -> None:
    d = data(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    want = mth(d)
    assert merkle.root(hashes) == want
    f = merkle.Frontier()
    for h in hashes:
        f.append(h)
    assert f.root() == want and f.size == n
    for m in range(n):
        p = merkle.inclusion_proof(m, n, hashes)
        assert p == path(m, d)
        assert merkle.verify_inclusion(m, n, hashes[m], p, want)
        assert not merkle.verify_inclusion(m, n, merkle.leaf_hash(b"other"), p, want)
        if n > 1:
            assert not merkle.verify_inclusion((m + 1) % n, n, hashes[m], p, want)


@pytest.mark.parametrize("n", range(1, 65))
def test_every_consistency_proof(n: int) -> None:
    d = data(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    new = mth(d)
    for m in range(0, n + 1):
        p = merkle.consistency_proof(m, n, hashes)
        if 0 < m < n:
            assert p == subproof(m, d, True)
        else:
            assert p == []
        old = mth(d[:m])
        assert merkle.verify_consistency(m, n, old, new, p)
        if 0 < m < n:
            assert not merkle.verify_consistency(m, n, mth(data(m + 1)[1:]), new, p)  # another old root
            assert not merkle.verify_consistency(m, n, old, mth(d[:-1] + [b"x"]), p)  # a forked new root
            for i in range(len(p)):
                assert not merkle.verify_consistency(m, n, old, new, flip(p, i, 7 * i % 256))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(65, 3000), data_=st.data())
def test_random_larger_trees(n: int, data_: st.DataObject) -> None:
    d = data(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    want = mth(d)
    m = data_.draw(st.integers(0, n - 1))
    old = data_.draw(st.integers(1, n))
    src = merkle.ListSource(hashes)
    assert merkle.root(src, n) == want
    p = merkle.inclusion_proof(m, n, src)
    assert p == path(m, d)
    assert merkle.verify_inclusion(m, n, hashes[m], p, want)
    c = merkle.consistency_proof(old, n, src)
    assert merkle.verify_consistency(old, n, merkle.root(src, old), want, c)
    if p:
        i = data_.draw(st.integers(0, len(p) - 1))
        bit = data_.draw(st.integers(0, 255))
        assert not merkle.verify_inclusion(m, n, hashes[m], flip(p, i, bit), want)
    if c:
        i = data_.draw(st.integers(0, len(c) - 1))
        assert not merkle.verify_consistency(old, n, merkle.root(src, old), want, flip(c, i, 3))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 300), other=st.integers(1, 300), data_=st.data())
def test_a_proof_for_another_tree_size_is_refused(n: int, other: int, data_: st.DataObject) -> None:
    d = data(max(n, other))
    hashes = [merkle.leaf_hash(x) for x in d]
    m = data_.draw(st.integers(0, min(n, other) - 1))
    if other == n:
        return
    p = merkle.inclusion_proof(m, other, hashes)
    # the proof is for a tree of `other` leaves; checked against the checkpoint of n leaves it fails.
    # (Size and root only mean something together: that is why a checkpoint signs both.)
    assert not merkle.verify_inclusion(m, n, hashes[m], p, merkle.root(hashes, n))


def test_frontier_hands_out_every_perfect_node_and_reloads() -> None:
    hashes = [merkle.leaf_hash(x) for x in data(100)]
    f = merkle.Frontier()
    store: dict[tuple[int, int], bytes] = {}
    for h in hashes:
        for lv, idx, made in f.append(h):
            store[(lv, idx)] = made
    src = merkle.ListSource(hashes)
    assert all(src(lv, idx) == made for (lv, idx), made in store.items())
    assert len(store) == 100 + 50 + 25 + 12 + 6 + 3 + 1

    def node(lv: int, idx: int) -> bytes:
        return store[(lv, idx)]

    for n in (1, 37, 64, 99, 100):
        g = merkle.Frontier.at(n, node)
        assert g.root() == merkle.root(hashes[:n])
        assert merkle.inclusion_proof(n - 1, n, node) == merkle.inclusion_proof(n - 1, n, hashes)
        assert merkle.consistency_proof(n // 3, n, node) == merkle.consistency_proof(n // 3, n, hashes)
    g = merkle.Frontier(f.size, f.hashes)
    g.append(merkle.leaf_hash(b"next"))
    assert g.root() == merkle.root(hashes + [merkle.leaf_hash(b"next")])


def test_bad_input_is_refused_not_crashed() -> None:
    with pytest.raises(ValueError):
        merkle.Frontier(3, [b"\0" * 32])
    with pytest.raises(ValueError):
        merkle.Frontier().append(b"short")
    with pytest.raises(ValueError):
        merkle.inclusion_proof(5, 5, [b"\0" * 32] * 5)
    with pytest.raises(ValueError):
        merkle.consistency_proof(6, 5, [b"\0" * 32] * 5)
    h = merkle.leaf_hash(b"a")
    assert not merkle.verify_inclusion(0, 1, h, [b"x"], h)
    assert not merkle.verify_inclusion(0, 1, h, [h], h)  # sn is 0 before the proof ends
    assert not merkle.verify_consistency(2, 1, h, h, [])
    assert not merkle.verify_consistency(0, 1, h, h, [h])  # old size 0: the proof must be empty


@pytest.mark.parametrize("name", sorted(n for n in dir(merkle_cases) if n.startswith("test_")))
def test_cpython_cases(name: str) -> None:
    getattr(merkle_cases, name)()


def test_micropython_runs_the_same_cases() -> None:
    env = dict(os.environ, MICROPYPATH=f"{ROOT}:{ROOT / 'tests' / 'mp'}")
    p = subprocess.run([micropython_exe(), "-X", "heapsize=256K", str(ROOT / "tests" / "mp" / "runner.py"),
                        "tests.protocol.merkle_cases"], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert " 0 failed" in out and "PASS test_" in out, out
