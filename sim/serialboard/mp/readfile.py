# Read one file from a copy of a virtual board's flash image, without touching the board:
#   micropython readfile.py IMAGE BLOCKS NAME   -> the file's bytes as hex, or "-" if absent
import sys

import vfs

_BS = 4096


class ImageBdev:
    def __init__(self, path, blocks):
        self.f = open(path, "rb")
        self.n = blocks

    def readblocks(self, block, buf, off=0):
        self.f.seek(block * _BS + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=0):
        raise OSError(30)  # EROFS: a look, not a write

    def ioctl(self, op, arg):
        return self.n if op == 4 else _BS if op == 5 else 0


vfs.mount(vfs.VfsLfs2(ImageBdev(sys.argv[1], int(sys.argv[2]))), "/flash", readonly=True)
try:
    with open("/flash/" + sys.argv[3], "rb") as f:
        print(f.read().hex())
except OSError:
    print("-")
