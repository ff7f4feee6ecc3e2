# protocol/merkle.py checks that run unchanged under CPython and MicroPython, on the RFC 6962 test
# vectors that Certificate Transparency's libraries share (certificate-transparency-go, Trillian):
# eight leaves, the root of each prefix, two inclusion paths and two consistency proofs.
from protocol import merkle

ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
PATHS = [(0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                 "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
         (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                 "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                 "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"])]
CONSISTENCY = [(1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                       "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                       "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
               (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                       "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                       "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"])]
LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
          b"\x50\x51\x52\x53\x54\x55\x56\x57",
          b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"]


def _hashes(n):
    return [merkle.leaf_hash(x) for x in LEAVES[:n]]


def test_empty_and_known_roots():
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    for n in range(1, 9):
        assert merkle.root(_hashes(n)).hex() == ROOTS[n - 1], n


def test_known_proofs():
    hs = _hashes(8)
    for m, n, want in PATHS:
        assert [p.hex() for p in merkle.inclusion_proof(m, n, hs)] == want
        proof = [bytes.fromhex(p) for p in want]
        assert merkle.verify_inclusion(m, n, hs[m], proof, bytes.fromhex(ROOTS[n - 1]))
    for m, n, want in CONSISTENCY:
        assert [p.hex() for p in merkle.consistency_proof(m, n, hs)] == want
        assert merkle.verify_consistency(m, n, bytes.fromhex(ROOTS[m - 1]), bytes.fromhex(ROOTS[n - 1]),
                                         [bytes.fromhex(p) for p in want])


def test_frontier_matches_root():
    f = merkle.Frontier()
    for i, h in enumerate(_hashes(8)):
        f.append(h)
        assert f.root() == merkle.root(_hashes(i + 1))


def test_proofs_round_trip():
    hs = _hashes(8)
    for n in range(1, 9):
        r = merkle.root(hs[:n])
        for m in range(n):
            assert merkle.verify_inclusion(m, n, hs[m], merkle.inclusion_proof(m, n, hs[:n]), r)
        for m in range(n + 1):
            p = merkle.consistency_proof(m, n, hs[:n])
            assert merkle.verify_consistency(m, n, merkle.root(hs[:m]), r, p)


def test_tampering_refused():
    hs = _hashes(7)
    r = merkle.root(hs)
    p = merkle.inclusion_proof(3, 7, hs)
    bad = bytearray(p[0])
    bad[0] ^= 1
    assert not merkle.verify_inclusion(3, 7, hs[3], [bytes(bad)] + p[1:], r)
    assert not merkle.verify_inclusion(3, 6, hs[3], p, merkle.root(hs[:6]))  # a proof for size 7
    c = merkle.consistency_proof(3, 7, hs)
    assert not merkle.verify_consistency(3, 6, merkle.root(hs[:3]), merkle.root(hs[:6]), c)
