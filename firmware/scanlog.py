# The scan log: an append-only file of 40-byte sealed records (protocol.record)
# plus a tiny state file. Constructing a ScanLog is a boot: the epoch (boot
# counter) is bumped and persisted *before* any record of that epoch is
# written, then a BOOT record is appended and flushed.
#
# Invariants the gateway and cloud rely on:
#  - seq is log-wide and never reused, across reboots too. The next seq is
#    recovered as max(state.next, tail.seq + 1, acked + 1), so it survives a
#    lost or stale state file as long as the log survives, and vice versa.
#  - epoch never repeats: max(state.epoch, tail.epoch) + 1.
#  - a record is durable once flush() returned (file flush + os.sync if the
#    port has it; littlefs commits on flush).
#
# v0 limits, on purpose: the log grows without bound (no compaction), and the
# only torn-write repair is cutting a partial trailing record. The layout is
# ready for compaction: records carry their own seq, reads locate a seq by
# search rather than by position, and state keeps `next` and `dropped` so a
# log rewritten to start later (or emptied) still never reuses a seq.
import json
import os
import struct

from micropython import const

from protocol import record

LOG = "log.bin"
STATE = "state.json"
_REC = const(40)
_SEQ_OFF = const(8)
_EPOCH_OFF = const(4)
_COPY_RECS = const(16)


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
    def __init__(self, root, rec_hkey, device_id, boot_flags=0, boot_time=0, boot_data=b"\0" * 8):
        self._path = root + LOG
        self._state = root + STATE
        self._key = rec_hkey
        self._id = device_id
        self._buf = bytearray(_REC)  # the record being written; returned as the receipt
        self._u32 = bytearray(4)
        st = self._load_state()
        tail_seq, tail_epoch = self._recover()
        self.epoch = max(st.get("epoch", 0), tail_epoch) + 1
        self.acked = st.get("acked", 0)
        self.dropped = st.get("dropped", 0)
        self.next = max(st.get("next", 1), tail_seq + 1, self.acked + 1)
        self._save_state()
        self._f = open(self._path, "ab")
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
        # Write-then-rename: the old state stays valid until the new one is whole.
        tmp = self._state + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"epoch": self.epoch, "acked": self.acked, "next": self.next,
                       "dropped": self.dropped}, f)
            f.flush()
        os.rename(tmp, self._state)
        _sync()

    # --- recovery ----------------------------------------------------------
    def _recover(self):
        size = _size(self._path)
        if size % _REC:
            size -= size % _REC
            self._cut(size)
        self._count = size // _REC
        self._first = 0
        if not self._count:
            return 0, 0
        with open(self._path, "rb") as f:
            self._first = self._u32_at(f, _SEQ_OFF)
            base = (self._count - 1) * _REC
            return self._u32_at(f, base + _SEQ_OFF), self._u32_at(f, base + _EPOCH_OFF)

    def _cut(self, size):
        # A power cut mid-append left a partial record: keep only whole ones.
        # (No truncate() in MicroPython, so copy and rename.)
        tmp = self._path + ".tmp"
        buf = bytearray(_REC * _COPY_RECS)
        left = size
        with open(self._path, "rb") as src, open(tmp, "wb") as dst:
            while left:
                n = src.readinto(memoryview(buf)[0:min(left, len(buf))])
                if not n:
                    break
                dst.write(memoryview(buf)[0:n])
                left -= n
            dst.flush()
        os.rename(tmp, self._path)
        _sync()

    def _u32_at(self, f, off):
        f.seek(off)
        f.readinto(self._u32)
        return struct.unpack(">I", self._u32)[0]

    # --- writing -----------------------------------------------------------
    @property
    def head(self):
        """seq of the newest record (0 if none was ever written)."""
        return self.next - 1

    @property
    def count(self):
        return self._count

    def append(self, kind, flags, time, data):
        """Seal and write one record; returns it as a 40-byte buffer that stays
        valid until the next append. Not durable until flush()."""
        seq = self.next
        buf = self._buf
        record.pack_body_into(buf, kind, flags, self.epoch, seq, time, data)
        record.seal_into(buf, self._key, self._id)
        # Advance first: if the write fails half way the seq is burnt, never reused.
        self.next = seq + 1
        self._f.write(buf)
        if not self._count:
            self._first = seq
        self._count += 1
        return buf

    def flush(self):
        self._f.flush()
        _sync()

    def ack(self, through):
        """Everything up to `through` is stored upstream. Returns the acked seq;
        ValueError if `through` is beyond the head (nobody can have stored it)."""
        if through > self.head:
            raise ValueError("ack beyond head")
        if through > self.acked:
            self.acked = through
            self._save_state()
        return self.acked

    # --- reading -----------------------------------------------------------
    def _index(self, f, seq):
        """Index of the first record whose seq >= seq (== count if none)."""
        n = self._count
        i = seq - self._first
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
        40 bytes); returns how many. Reads only what it copies."""
        if not self._count or seq > self.head:
            return 0
        mv = memoryview(buf)
        with open(self._path, "rb") as f:
            i = self._index(f, seq)
            n = min(len(buf) // _REC, self._count - i)
            if n <= 0:
                return 0
            f.seek(i * _REC)
            got = f.readinto(mv[0:n * _REC])
        return (got or 0) // _REC

    def close(self):
        self._f.close()
