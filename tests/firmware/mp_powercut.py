# Power-cut torture for the scan log on littlefs (vfs.VfsLfs2), under MicroPython.
#
# A deterministic workload (boots, appends + flushes, acks, compaction, a full
# ring dropping its oldest unacked records) runs on a PowerCutBdev; it is run
# once whole to count its flash write ops, then again with power cut after
# many chosen ops (every STRIDE-th op, torn and clean alternately). After each
# cut the surviving bytes are remounted, the log is reopened (the device must
# boot) and checked against what the workload was promised before the cut:
#  - every record whose flush() returned is there, byte for byte, MAC valid,
#    unless it was acked or counted as dropped (the flush window - appended but
#    flush() not returned - is the only loss allowed, and is not promised here);
#  - acked never goes back, and acked records do not come back (compaction that
#    finished stays finished: at most one partly-acked segment remains);
#  - seqs in the log strictly increase; the new boot's seq is above every seq
#    handed out before the cut and its epoch above every earlier epoch;
#  - dropped never goes back and covers every missing unacked flushed record.
import vfs
from micropython import const

from protocol import record
from scanlog import ScanLog
from tests.firmware import fwtest as T
from tests.firmware.powercut_bdev import PowerCutBdev

MNT = "/pc"
ROOT = MNT + "/"
CAP = const(24)
SEGR = const(6)
BLOCKS = 128  # of 512 bytes: 64 KB of flash


def _open():
    return ScanLog(ROOT, T.REC_KEY, T.DEVICE_ID, capacity=CAP, seg=SEGR)


class Oracle:
    def __init__(self):
        self.durable = {}  # seq -> record bytes, for each record whose flush() returned
        self.max_seq = 0  # highest seq made known: flush() returned for it
        self.acked = 0  # last value ack() returned
        self.epoch = 0  # epoch of the last log whose constructor returned
        self.dropped = 0  # last dropped count seen after an operation returned
        self.lg = None


def _note(o, lg):
    # called only after a flush returned: head is then durable
    o.dropped = lg.dropped
    o.max_seq = max(o.max_seq, lg.head)


def _boot(o):
    lg = o.lg = _open()
    o.epoch = lg.epoch
    buf = bytearray(40)
    assert lg.read_from(lg.head, buf) == 1
    o.durable[lg.head] = bytes(buf)
    _note(o, lg)
    return lg


def workload(o):
    lg = _boot(o)
    for step in range(60):
        rec = lg.append(record.KIND_TAP, 0, step, bytes([step]) * 8)
        r = bytes(rec)
        lg.flush()
        o.durable[record.seq_of(r)] = r
        _note(o, lg)
        if step < 25 and step % 4 == 3:
            o.acked = lg.ack(lg.head - 2)  # compaction of acked segments
        if step == 20:
            lg.close()  # a clean reboot mid-run
            lg = _boot(o)
        # steps 25..59: the gateway is away; the ring fills and drops the oldest
    o.acked = lg.ack(lg.head - 10)
    _note(o, lg)
    lg.close()
    return lg


def _fresh():
    bd = PowerCutBdev(blocks=BLOCKS, block_size=512)
    vfs.VfsLfs2.mkfs(bd)
    return bd.mem


def _mount(bd):
    fs = vfs.VfsLfs2(bd)
    vfs.mount(fs, MNT)


def _umount():
    try:
        vfs.umount(MNT)
    except Exception:
        pass


def _records(lg):
    out = []
    buf = bytearray(40 * 4)
    seq = 0
    while True:
        n = lg.read_from(seq, buf)
        if not n:
            return out
        for i in range(n):
            r = bytes(buf[i * 40:(i + 1) * 40])
            assert record.verify(T.REC_KEY, T.DEVICE_ID, r), "bad MAC"
            out.append(r)
        seq = record.seq_of(out[-1]) + 1


def check_after_cut(bd, o, label):
    _mount(bd.remount())
    try:
        lg = _open()  # the device boots
        recs = _records(lg)
        seqs = [record.seq_of(r) for r in recs]
        for i in range(1, len(seqs)):
            assert seqs[i] > seqs[i - 1], (label, "order", seqs)
        assert seqs[-1] == lg.head and record.unpack(recs[-1])[1] == record.KIND_BOOT, label
        assert lg.head > o.max_seq, (label, "seq reused", lg.head, o.max_seq)
        assert lg.epoch > o.epoch, (label, "epoch", lg.epoch, o.epoch)
        for r in recs[:-1]:
            assert record.unpack(r)[3] < lg.epoch, label
        assert lg.acked >= o.acked, (label, "acked went back", lg.acked, o.acked)
        assert lg.dropped >= o.dropped, (label, "dropped went back")
        done = max(lg.acked, lg.gone)
        assert sum(1 for s in seqs if s <= done) <= SEGR, (label, "acked records came back", seqs, done)
        have = {}
        for r in recs:
            have[record.seq_of(r)] = r
        missing = 0
        for s, r in o.durable.items():
            if s in have:
                assert have[s] == r, (label, "changed", s)
            elif s > lg.acked:
                assert s <= lg.gone, (label, "flushed record lost", s, seqs)
                missing += 1
        assert missing <= lg.dropped, (label, "silent drop", missing, lg.dropped)
        lg.close()
        lg = _open()  # and boots again from what the recovery left
        assert lg.head == seqs[-1] + 1 and lg.epoch == record.unpack(recs[-1])[3] + 1, label
        lg.close()
    finally:
        _umount()


def test_workload_uncut():
    bd = PowerCutBdev(image=_fresh(), blocks=BLOCKS, block_size=512)
    _mount(bd)
    try:
        o = Oracle()
        lg = workload(o)
        assert lg.dropped > 0 and lg.acked > 0
    finally:
        _umount()
    check_after_cut(bd, o, "uncut")


def _torture(blocks, bs):
    """Cut power after every write op of the workload, clean and torn."""
    bd = PowerCutBdev(blocks=blocks, block_size=bs)
    vfs.VfsLfs2.mkfs(bd)
    image = bytearray(bd.mem)
    bd = PowerCutBdev(image=image, blocks=blocks, block_size=bs)
    _mount(bd)
    try:
        workload(Oracle())
    finally:
        _umount()
    total = bd.ops
    points = 0
    for i in range(2 * total):
        k, tear = i // 2 + 1, bool(i % 2)
        bd = PowerCutBdev(image=image, blocks=blocks, block_size=bs, cut_after=k, tear=tear)
        o = Oracle()
        _mount(bd)
        try:
            workload(o)
            raise AssertionError(f"no cut at {k} of {total}") from None
        except Exception as e:  # PowerCut, or the error code lfs made of it
            if not bd.dead:
                raise AssertionError(f"not a power cut: {e!r} at {k}") from e
            # Close the dead log's file now (its writes go nowhere): left to
            # the GC, its finalizer would run with the heap locked.
            try:
                o.lg.close()
            except Exception:
                pass
        finally:
            _umount()
        check_after_cut(bd, o, (bs, k, tear))
        points += 1
    print(f"block size {bs}: power cut after each of {total} write ops,",
          f"clean and torn: {points} cuts checked")
    assert points == 2 * total and total >= 100, (points, total)


def test_power_cut_torture_512b_blocks():
    _torture(BLOCKS, 512)


def test_power_cut_torture_4k_blocks():
    _torture(32, 4096)  # the ESP32's flash sector


def test_full_log_drops_oldest_unacked_and_counts_them():
    bd = PowerCutBdev(image=_fresh(), blocks=BLOCKS, block_size=512)
    _mount(bd)
    try:
        lg = _open()  # BOOT = seq 1
        for i in range(40):
            lg.append(record.KIND_TAP, 0, i, bytes(8))
            lg.flush()
        assert lg.count <= CAP
        seqs = [record.seq_of(r) for r in _records(lg)]
        assert seqs == list(range(seqs[0], 42)), seqs  # the newest are kept
        assert lg.dropped == seqs[0] - 1 > 0  # every missing one is counted
        dropped = lg.dropped
        lg.close()
        lg = _open()
        assert lg.dropped == dropped  # the count survives a reboot
        # acked records go first: ack everything but the last 2, fill again
        lg.ack(lg.head - 2)
        for i in range(CAP - SEGR):
            lg.append(record.KIND_TAP, 0, i, bytes(8))
            lg.flush()
        assert lg.dropped == dropped, (lg.dropped, dropped, lg._segs)  # room came from the acked records
        lg.close()
    finally:
        _umount()
