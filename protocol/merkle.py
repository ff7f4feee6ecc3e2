# Merkle tree hashing, proofs and an append-only frontier, as RFC 9162 section 2.1 specifies:
#   leaf hash  = SHA-256(0x00 || data)
#   node hash  = SHA-256(0x01 || left || right)
#   MTH({})    = SHA-256("")
#   MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n
# Proofs are lists of 32-byte hashes ordered from the leaf's level upward (RFC 9162 2.1.3, 2.1.4).
#
# A "node source" is a callable node(level, index) returning the hash of the perfect subtree of
# 2**level leaves that starts at leaf index * 2**level. Any MTH(D[a:b]) the proofs need is built
# from O(log n) such nodes, so a store that keeps the perfect nodes (Frontier.append hands them
# out) serves every proof without rereading the leaves. ListSource is the in-memory one.
#
# Plain Python on hashlib only: it also runs under MicroPython (tests/protocol/test_merkle.py).
import hashlib

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

HASH_LEN = 32
_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data):
    h = hashlib.sha256(_LEAF)
    h.update(data)
    return h.digest()


def node_hash(left, right):
    h = hashlib.sha256(_NODE)
    h.update(left)
    h.update(right)
    return h.digest()


def _split(n):
    """The largest power of two strictly below n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _level(n):
    """log2(n) if n is a power of two, else -1."""
    if n < 1 or n & (n - 1):
        return -1
    lv = 0
    while n > 1:
        n >>= 1
        lv += 1
    return lv


class ListSource:
    """node(level, index) over a list of leaf hashes, each level computed once (O(n) memory)."""

    def __init__(self, leaf_hashes):
        self._levels = [list(leaf_hashes)]

    def __call__(self, level, index):
        while len(self._levels) <= level:
            below = self._levels[-1]
            self._levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
        return self._levels[level][index]


def _source(leaves_or_node):
    return leaves_or_node if callable(leaves_or_node) else ListSource(leaves_or_node)


def _mth(node, start, end):
    # MTH(D[start:end]) for the ranges RFC 9162's recursions produce: start is aligned to the
    # largest power of two not above end - start, so the left part is always a perfect node.
    n = end - start
    lv = _level(n)
    if lv >= 0 and start % n == 0:
        return node(lv, start >> lv)
    k = _split(n)
    return node_hash(_mth(node, start, start + k), _mth(node, start + k, end))


def root(leaves_or_node, size=None):
    """MTH of the first `size` leaves (all of them for a list)."""
    if size is None:
        size = len(leaves_or_node)
    if size == 0:
        return EMPTY_ROOT
    return _mth(_source(leaves_or_node), 0, size)


def inclusion_proof(index, size, leaves_or_node):
    """PATH(index, D[0:size]) of RFC 9162 2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    node = _source(leaves_or_node)
    top_down = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            top_down.append(_mth(node, start + k, end))
            end = start + k
        else:
            top_down.append(_mth(node, start, start + k))
            start += k
    top_down.reverse()
    return top_down


def consistency_proof(old_size, size, leaves_or_node):
    """PROOF(old_size, D[0:size]) of RFC 9162 2.1.4.1; empty when old_size is 0 or equals size."""
    if not 0 <= old_size <= size:
        raise ValueError("old size must be between 0 and the tree size")
    if old_size == 0 or old_size == size:
        return []
    node = _source(leaves_or_node)
    outer = []
    start, end, m, whole = 0, size, old_size, True
    while end - start != m:
        k = _split(end - start)
        if m <= k:
            outer.append(_mth(node, start + k, end))
            end = start + k
        else:
            outer.append(_mth(node, start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        outer.append(_mth(node, start, end))
    outer.reverse()
    return outer


def _ok_hashes(proof):
    for p in proof:
        if not isinstance(p, (bytes, bytearray)) or len(p) != HASH_LEN:
            return False
    return True


def verify_inclusion(index, size, leaf, proof, root_hash):
    """RFC 9162 2.1.3.2: True iff `proof` places leaf hash `leaf` at `index` under `root_hash`."""
    if not 0 <= index < size or not _ok_hashes(proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(old_size, size, old_root, new_root, proof):
    """RFC 9162 2.1.4.2: True iff `proof` shows the tree of `old_size` leaves with `old_root` is a
    prefix of the tree of `size` leaves with `new_root`. Equal sizes need equal roots and no proof;
    the empty tree is a prefix of every tree (tlog-witness: its proof is empty)."""
    if not 0 <= old_size <= size or not _ok_hashes(proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if _level(old_size) >= 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class Frontier:
    """The compact state of an append-only tree: the roots of its perfect subtrees, largest first
    (one per set bit of `size`). append() and root() cost O(log n) and never read old leaves."""

    def __init__(self, size=0, hashes=()):
        hashes = list(hashes)
        if size < 0 or len(hashes) != bin(size).count("1") or not _ok_hashes(hashes):
            raise ValueError("a frontier holds one 32-byte hash per set bit of its size")
        self.size = size
        self.hashes = hashes

    @classmethod
    def at(cls, size, leaves_or_node):
        """The frontier of the first `size` leaves, read from a node source (or a list)."""
        node = _source(leaves_or_node)
        hashes = []
        start = 0
        for lv in range(size.bit_length() - 1, -1, -1):
            if size >> lv & 1:
                hashes.append(node(lv, start >> lv))
                start += 1 << lv
        return cls(size, hashes)

    def append(self, leaf):
        """Add one leaf hash. Returns the perfect nodes completed by it, as (level, index, hash),
        the leaf itself first: a store that keeps them can serve node(level, index)."""
        if not isinstance(leaf, (bytes, bytearray)) or len(leaf) != HASH_LEN:
            raise ValueError("a leaf hash is 32 bytes")
        made = [(0, self.size, bytes(leaf))]
        h = bytes(leaf)
        index, lv = self.size, 0
        while index & 1:
            h = node_hash(self.hashes.pop(), h)
            index >>= 1
            lv += 1
            made.append((lv, index, h))
        self.hashes.append(h)
        self.size += 1
        return made

    def root(self):
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for i in range(len(self.hashes) - 2, -1, -1):
            r = node_hash(self.hashes[i], r)
        return r
