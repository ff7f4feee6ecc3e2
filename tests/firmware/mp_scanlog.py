# scanlog under MicroPython: append, read, reboot recovery, torn tail.
import os

from protocol import record
from scanlog import ScanLog
from tests.firmware import fwtest as T


def _open(root):
    return ScanLog(root, T.REC_KEY, T.DEVICE_ID)


def _taps(lg, n):
    for i in range(n):
        lg.append(record.KIND_TAP, 0, i, bytes([i]) * 8)
    lg.flush()


def _all(lg, start=0, per=5):
    out = []
    buf = bytearray(40 * per)
    seq = start
    while True:
        n = lg.read_from(seq, buf)
        if not n:
            return out
        for i in range(n):
            r = bytes(buf[i * 40:(i + 1) * 40])
            assert record.verify(T.REC_KEY, T.DEVICE_ID, r)
            out.append(r)
        seq = record.seq_of(out[-1]) + 1


def test_append_and_read():
    root = T.flashdir()
    try:
        lg = _open(root)
        assert lg.epoch == 1 and lg.head == 1 and lg.count == 1  # the BOOT record
        _taps(lg, 12)
        assert lg.head == 13
        recs = _all(lg)
        assert [record.seq_of(r) for r in recs] == list(range(1, 14))
        assert record.unpack(recs[0])[1] == record.KIND_BOOT
        assert record.unpack(recs[5])[1] == record.KIND_TAP
        assert record.unpack(recs[5])[6] == bytes([4]) * 8
        assert [record.seq_of(r) for r in _all(lg, 9, per=2)] == list(range(9, 14))
        assert lg.read_from(14, bytearray(40)) == 0
        assert lg.read_from(0, bytearray(40)) == 1
        assert len(T.logbytes(root)) == 13 * 40
        lg.close()
    finally:
        T.wipe(root)


def test_reboot_recovery_seq_epoch_acked():
    root = T.flashdir()
    try:
        for boot in range(1, 4):
            lg = _open(root)
            assert lg.epoch == boot
            _taps(lg, 3)
            if boot == 1:
                assert lg.ack(3) == 3
                try:
                    lg.ack(lg.head + 1)
                    raise AssertionError("ack beyond head accepted")
                except ValueError:
                    pass
            assert lg.acked == 3
            assert lg.ack(2) == 3  # never goes back
            lg.close()
        lg = _open(root)
        recs = _all(lg)
        seqs = [record.seq_of(r) for r in recs]
        assert seqs == list(range(1, len(recs) + 1)), seqs  # unique, gapless, ordered
        epochs = [record.unpack(r)[3] for r in recs if record.unpack(r)[1] == record.KIND_BOOT]
        assert epochs == [1, 2, 3, 4]
        assert lg.acked == 3
        lg.close()
    finally:
        T.wipe(root)


def test_lost_state_file_never_reuses_seq_or_epoch():
    root = T.flashdir()
    try:
        lg = _open(root)
        _taps(lg, 4)
        lg.close()
        os.remove(root + "state.json")
        lg = _open(root)
        assert lg.epoch == 2 and lg.head == 6
        lg.close()
    finally:
        T.wipe(root)


def test_torn_tail_is_cut():
    root = T.flashdir()
    try:
        lg = _open(root)
        _taps(lg, 2)
        lg.close()
        with open(root + "log.1", "ab") as f:
            f.write(b"\x01" * 17)  # half a record, as a power cut mid-write leaves
        lg = _open(root)
        assert lg.head == 4 and lg.count == 4
        assert [record.seq_of(r) for r in _all(lg)] == [1, 2, 3, 4]
        lg.close()
    finally:
        T.wipe(root)
