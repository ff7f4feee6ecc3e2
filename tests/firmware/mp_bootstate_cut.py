# Boot bookkeeping (firmware/bootstate.py) under power cuts, under MicroPython:
# a run of boots, restarts and watchdog notes on littlefs (PowerCutBdev), cut
# after each of its flash write ops, clean and torn. After every cut the next
# boot must read either the last state whose write returned or the one being
# written (never a mix, never an error), and begin() must work on it.
import vfs

import bootstate
from protocol import record
from tests.firmware.powercut_bdev import PowerCutBdev

MNT = "/bc"
ROOT = MNT + "/"
BLOCKS = 32  # of 4 KiB: the ESP32's flash sector


class Oracle:
    def __init__(self):
        self.done = (0, 0, 0)  # the last state whose write returned
        self.trying = None  # the state being written when power went


def _tracked(o):
    write = bootstate.state

    def state(root, b=None):
        if b is None:
            return write(root)
        o.trying = tuple(b)
        write(root, b)
        o.done = tuple(b)
        return b

    return state


def workload(o):
    orig = bootstate.state
    bootstate.state = _tracked(o)  # begin/stable/note write through it
    try:
        bootstate.begin(ROOT)  # first boot
        bootstate.stable(ROOT)
        bootstate.note(ROOT, record.RESET_SOFT)  # a deliberate restart
        bootstate.begin(ROOT)
        bootstate.begin(ROOT)  # died pending: a failed boot
        bootstate.note(ROOT, record.RESET_WDT)  # the watchdog fired
        bootstate.begin(ROOT)
        bootstate.stable(ROOT)
    finally:
        bootstate.state = orig


def _umount():
    try:
        vfs.umount(MNT)
    except Exception:
        pass


def _fresh():
    bd = PowerCutBdev(blocks=BLOCKS, block_size=4096)
    vfs.VfsLfs2.mkfs(bd)
    return bd.mem


def _check(bd, o, label):
    vfs.mount(vfs.VfsLfs2(bd.remount()), MNT)
    try:
        got = bootstate.state(ROOT)
        assert got in (o.done, o.trying), (label, got, o.done, o.trying)
        cause, fails = bootstate.begin(ROOT)  # the next boot
        assert bootstate.state(ROOT) == (1, fails, 0), label
        assert cause in (got[2] or record.RESET_POWER_ON, record.RESET_CRASH), (label, cause)
    finally:
        _umount()


def test_state_survives_a_power_cut_at_every_write():
    image = _fresh()
    bd = PowerCutBdev(image=image, blocks=BLOCKS, block_size=4096)
    vfs.mount(vfs.VfsLfs2(bd), MNT)
    try:
        workload(Oracle())
    finally:
        _umount()
    total = bd.ops
    points = 0
    for i in range(2 * total):
        k, tear = i // 2 + 1, bool(i % 2)
        bd = PowerCutBdev(image=image, blocks=BLOCKS, block_size=4096, cut_after=k, tear=tear)
        o = Oracle()
        vfs.mount(vfs.VfsLfs2(bd), MNT)
        try:
            workload(o)
            raise AssertionError(f"no cut at {k} of {total}")
        except Exception as e:  # PowerCut, or the error code lfs made of it
            if not bd.dead:
                raise AssertionError(f"not a power cut: {e!r} at {k}") from e
        finally:
            _umount()
        _check(bd, o, (k, tear))
        points += 1
    print("boot.bin: power cut after each of", total, "write ops, clean and torn:", points, "cuts checked")
    assert points == 2 * total and total >= 16, (points, total)


def test_begin_boots_when_the_state_cannot_be_written():
    bd = PowerCutBdev(image=_fresh(), blocks=BLOCKS, block_size=4096)
    vfs.mount(vfs.VfsLfs2(bd), MNT)
    try:
        bootstate.state(ROOT, (1, 2, 0))
        vfs.umount(MNT)
        vfs.mount(vfs.VfsLfs2(bd), MNT, readonly=True)  # every write now fails
        cause, fails = bootstate.begin(ROOT)
        assert (cause, fails) == (record.RESET_CRASH, 3)
    finally:
        _umount()
