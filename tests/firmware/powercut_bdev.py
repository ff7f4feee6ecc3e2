# A flash block device for vfs.VfsLfs2 (MicroPython), backed by a bytearray,
# that can lose power after any chosen write. It implements the extended block
# protocol littlefs uses: readblocks/writeblocks with a byte offset inside the
# block, and ioctl 4 (count), 5 (size), 6 (erase), 1/2/3 (init/deinit/sync).
#
# Every program (writeblocks) and every erase (ioctl 6) is one "write op",
# numbered from 1. With cut_after=N the device applies ops 1..N-1 in full; op N
# is applied in full, or only a prefix of it with tear=True (a torn program or
# half-done erase), and then raises PowerCut; every later op is silently
# ignored (a dead chip: e.g. a finalizer closing a file after the cut, which
# runs with the heap locked and must not raise). remount() returns a fresh device holding exactly the
# bytes that survived, as the next boot would see them.
# lfs may call in from a GC finalizer (a file closed by the collector) with the
# heap locked, and it turns a bdev exception into an error code: so the copies
# below allocate nothing (viper), and a test must treat any error raised once
# the device is dead as the power cut.
import micropython


@micropython.viper
def _copy(dst, doff: int, src, soff: int, n: int, mode: int):
    # mode 0: copy; 1: AND (NOR programming only clears bits); 2: fill 0xff
    d = ptr8(dst)  # noqa: F821 (viper builtin)
    s = ptr8(src)  # noqa: F821
    i = 0
    while i < n:
        if mode == 0:
            d[doff + i] = s[soff + i]
        elif mode == 1:
            d[doff + i] = d[doff + i] & s[soff + i]
        else:
            d[doff + i] = 0xFF
        i += 1


class PowerCut(Exception):
    pass


class PowerCutBdev:
    def __init__(self, blocks=64, block_size=512, image=None, cut_after=0, tear=False):
        self.bs = block_size
        self.n = blocks
        self.mem = bytearray(image) if image is not None else bytearray(b"\xff" * (blocks * block_size))
        self.ops = 0
        self.cut_after = cut_after  # 0: never
        self.tear = tear
        self.dead = False

    def remount(self):
        return PowerCutBdev(self.n, self.bs, self.mem)

    def _op(self):
        # True: apply this op in full; False: apply a torn prefix, then cut;
        # None: dead, ignore.
        if self.dead:
            return None
        self.ops += 1
        if self.cut_after and self.ops >= self.cut_after:
            self.dead = True
            return False
        return True

    def readblocks(self, block, buf, off=0):
        _copy(buf, 0, self.mem, block * self.bs + off, len(buf), 0)

    def writeblocks(self, block, buf, off=None):
        a = block * self.bs + (off or 0)
        whole = self._op()
        if whole is None:
            return
        n = len(buf)
        if not whole and self.tear:
            n //= 2
        if whole:
            _copy(self.mem, a, buf, 0, n, 0)
        elif self.tear:
            # A torn program: only the first half got there.
            _copy(self.mem, a, buf, 0, n, 1)
        if not whole:
            raise PowerCut(f"write {self.ops}")

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            whole = self._op()
            if whole is None:
                return 0
            a = arg * self.bs
            n = self.bs if whole else (self.bs // 2 if self.tear else 0)
            _copy(self.mem, a, self.mem, 0, n, 2)
            if not whole:
                raise PowerCut(f"erase {self.ops}")
            return 0
        return 0
