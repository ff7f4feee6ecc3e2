# The scan log: 40-byte sealed records (protocol.record) in a ring of small
# fixed-size segment files (log.<n>, n increasing) plus a tiny state file.
# Constructing a ScanLog is a boot: the epoch (boot counter) is bumped and
# persisted *before* any record of that epoch is written, then a BOOT record is
# appended and flushed.
#
# Invariants the gateway and cloud rely on (shown under power cuts on littlefs
# by tests/firmware/mp_powercut.py):
#  - a record is durable once flush() returned (littlefs commits a file on
#    sync; plus os.sync if the port has it). THE FLUSH WINDOW: a record that was
#    appended but whose flush() did not return may be lost by a power cut; that
#    is the only loss allowed. The device sends a tap's receipt only after the
#    flush, so a receipt always means durable.
#  - seq is log-wide and never reused, across reboots too. The next seq is
#    recovered as max(state.next, tail.seq + 1, acked + 1, gone + 1); the newest
#    segment is never deleted, so the tail survives a lost state file.
#  - epoch never repeats: max(state.epoch, tail.epoch) + 1.
#  - acked never goes back (persisted before ack() returns).
#
# Bounded size and compaction, without rewriting anything: records go to the
# newest segment until it holds `seg` records, then a new segment is started.
# At most capacity // seg segments exist. Compaction deletes whole segments
# whose records are all acked (or dropped); the newest is always kept. When a
# new segment is needed and the ring is full of unacked records, the oldest
# segment is dropped: its unacked records are added to `dropped` and its last
# seq to `gone` in the state file *before* the file is removed, and any segment
# wholly <= max(acked, gone) found at boot is removed - so a cut anywhere in
# compaction or a drop neither resurrects records nor counts a drop twice.
# Drops are per segment (up to `seg` oldest unacked records at once).
import json
import os
import struct

from micropython import const

from protocol import record

_SEG = const("log.")
_STATE = const("state.json")
_CAPACITY = const(4096)  # records kept at most (160 KB of flash)
_SEG_RECS = const(256)  # records per segment file (10 KB)
_REC = const(40)
_SEQ_OFF = const(8)
_EPOCH_OFF = const(4)
_COPY_RECS = const(16)
# self._segs entries: [segment number, first seq, last seq, record count]
_NUM = const(0)
_FIRST = const(1)
_LAST = const(2)
_CNT = const(3)


def _sync():
    s = getattr(os, "sync", None)
    if s:
        s()


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


class ScanLog:
    def __init__(self, root, rec_hkey, device_id, boot_flags=0, boot_time=0, boot_data=b"\0" * 8,
                 capacity=_CAPACITY, seg=_SEG_RECS):
        self._root = root
        self._state = root + _STATE
        self._key = rec_hkey
        self._id = device_id
        self._seg = seg
        self._nseg = max(2, capacity // seg)
        self._buf = bytearray(_REC)  # the record being written; returned as the receipt
        self._body = memoryview(self._buf)[0:record.BODY_LEN]
        self._u32 = bytearray(4)
        self._f = None
        st = self._load_state()
        self.acked = st.get("acked", 0)
        self.dropped = st.get("dropped", 0)
        self.gone = st.get("gone", 0)  # every seq <= gone was dropped (counted) or acked
        tail_seq, tail_epoch = self._recover()
        self.epoch = max(st.get("epoch", 0), tail_epoch) + 1
        self.next = max(st.get("next", 1), tail_seq + 1, self.acked + 1, self.gone + 1)
        self._save_state()
        self._compact()
        self.append(record.KIND_BOOT, boot_flags, boot_time, boot_data)
        self.flush()

    # --- state -------------------------------------------------------------
    def _load_state(self):
        for p in (self._state, self._state + ".tmp"):
            try:
                with open(p) as f:
                    d = json.load(f)
                if isinstance(d, dict):
                    return d
            except (OSError, ValueError):
                pass
        return {}

    def _save_state(self):
        # Write-then-rename: the old state stays valid until the new one is whole
        # (littlefs renames atomically).
        tmp = self._state + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"epoch": self.epoch, "acked": self.acked, "next": self.next,
                       "dropped": self.dropped, "gone": self.gone}, f)
            f.flush()
        os.rename(tmp, self._state)
        _sync()

    # --- recovery ----------------------------------------------------------
    def _path(self, num):
        return self._root + _SEG + str(num)

    def _recover(self):
        nums = []
        for name in os.listdir(self._root or "."):
            if name.startswith(_SEG) and name[len(_SEG):].isdigit():
                nums.append(int(name[len(_SEG):]))
            elif name == _SEG + "tmp":
                os.remove(self._root + name)  # a torn-tail repair cut short
        nums.sort()
        self._segs = []
        tail_seq = tail_epoch = 0
        for num in nums:
            path = self._path(num)
            size = _size(path)
            if size % _REC:
                size -= size % _REC
                self._cut(path, size)
            if not size:
                os.remove(path)  # created by a rollover cut short
                continue
            with open(path, "rb") as f:
                first = self._u32_at(f, _SEQ_OFF)
                base = size - _REC
                last = self._u32_at(f, base + _SEQ_OFF)
                tail_seq, tail_epoch = last, self._u32_at(f, base + _EPOCH_OFF)
            self._segs.append([num, first, last, size // _REC])
        self._num = self._segs[-1][_NUM] if self._segs else 0
        return tail_seq, tail_epoch

    def _cut(self, path, size):
        # A power cut mid-append left a partial record (not on littlefs, which
        # commits whole syncs, but on a FAT port): keep only whole ones.
        # (No truncate() in MicroPython, so copy and rename.)
        tmp = self._root + _SEG + "tmp"
        buf = bytearray(_REC * _COPY_RECS)
        left = size
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            while left:
                n = src.readinto(memoryview(buf)[0:min(left, len(buf))])
                if not n:
                    break
                dst.write(memoryview(buf)[0:n])
                left -= n
            dst.flush()
        os.rename(tmp, path)
        _sync()

    def _u32_at(self, f, off):
        f.seek(off)
        f.readinto(self._u32)
        return struct.unpack(">I", self._u32)[0]

    # --- compaction --------------------------------------------------------
    def _compact(self):
        """Delete every segment but the newest whose records are all acked or
        dropped. Safe to cut anywhere: the state already says they are gone."""
        done = max(self.acked, self.gone)
        segs = self._segs
        while len(segs) > 1 and segs[0][_LAST] <= done:
            os.remove(self._path(segs[0][_NUM]))
            segs.pop(0)

    def _drop_oldest(self):
        s = self._segs[0]
        # (a seq burnt by a failed write is a gap: hence the min)
        lost = min(s[_CNT], s[_LAST] - max(s[_FIRST] - 1, self.acked, self.gone))
        if lost > 0:
            # Count (and persist) before deleting: a cut in between is repaired
            # at boot by _compact, never counted twice.
            self.dropped += lost
        self.gone = max(self.gone, s[_LAST])
        self._save_state()
        self._compact()

    def _roll(self):
        """Start a new segment, making room first."""
        if self._f:
            self._f.close()
            self._f = None
        self._compact()
        while len(self._segs) >= self._nseg:
            self._drop_oldest()
        self._num += 1
        self._segs.append([self._num, 0, 0, 0])

    # --- writing -----------------------------------------------------------
    @property
    def head(self):
        """seq of the newest record (0 if none was ever written)."""
        return self.next - 1

    @property
    def count(self):
        n = 0
        for s in self._segs:
            n += s[_CNT]
        return n

    def append(self, kind, flags, time, data, off=0):
        """Seal and write one record (data[off:off + 8] as its data); returns it
        as a 40-byte buffer that stays valid until the next append. Not durable
        until flush() returns."""
        segs = self._segs
        if not segs or segs[-1][_CNT] >= self._seg:
            self._roll()
        s = segs[-1]
        if self._f is None:
            self._f = open(self._path(s[_NUM]), "ab")
        seq = self.next
        buf = self._buf
        record.pack_body_into(buf, kind, flags, self.epoch, seq, time, data, off)
        record.seal_into(buf, self._key, self._id, self._body)
        # Advance first: if the write fails half way the seq is burnt, never reused.
        self.next = seq + 1
        self._f.write(buf)
        if not s[_CNT]:
            s[_FIRST] = seq
        s[_LAST] = seq
        s[_CNT] += 1
        return buf

    def flush(self):
        if self._f:
            self._f.flush()
        _sync()

    def ack(self, through):
        """Everything up to `through` is stored upstream. Returns the acked seq;
        ValueError if `through` is beyond the head (nobody can have stored it).
        Acked is persisted before return; fully acked segments are then deleted."""
        if through > self.head:
            raise ValueError("ack beyond head")
        if through > self.acked:
            self.acked = through
            self._save_state()
            self._compact()
        return self.acked

    # --- reading -----------------------------------------------------------
    def _index(self, f, n, first, seq):
        """Index of the first record whose seq >= seq in a segment (n records)."""
        i = seq - first
        if i <= 0:
            return 0
        if i < n and self._u32_at(f, i * _REC + _SEQ_OFF) == seq:
            return i  # the usual case: seqs are contiguous in the file
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if self._u32_at(f, mid * _REC + _SEQ_OFF) < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def read_from(self, seq, buf):
        """Copy records with seq >= `seq`, oldest first, into buf (a multiple of
        40 bytes); returns how many (from one segment at a time; call again from
        the next seq). Reads only what it copies."""
        if seq > self.head:
            return 0
        for s in self._segs:
            if s[_CNT] and s[_LAST] >= seq:
                break
        else:
            return 0
        if self._f and s is self._segs[-1]:
            self._f.flush()  # make this handle's own writes visible to the reader
        mv = memoryview(buf)
        with open(self._path(s[_NUM]), "rb") as f:
            i = self._index(f, s[_CNT], s[_FIRST], seq)
            n = min(len(buf) // _REC, s[_CNT] - i)
            if n <= 0:
                return 0
            f.seek(i * _REC)
            got = f.readinto(mv[0:n * _REC])
        return (got or 0) // _REC

    def close(self):
        if self._f:
            self._f.close()
            self._f = None
