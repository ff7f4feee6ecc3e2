# Device logic with no BLE in it: taps, gateway commands, INFO, the rotating
# code. It talks to the radio through a narrow interface, so tests and the host
# can drive it directly:
#   radio.tap_receipt(conn, data)    notify on TAP
#   radio.control_reply(conn, data)  notify on CONTROL
#   radio.log_frame(conn, data)      notify on LOG -> True sent, False congested
#                                    (try again soon), None connection gone
#   radio.set_info(data)             new INFO value (gatts_write)
# Every wire rule comes from protocol/; nothing here re-implements one.
import asyncio
import os
import struct
import time

# asyncio loads these on first use (asyncio.event, asyncio.funcs): at import,
# while the heap is tidy, not at a later wake when it may have no room (seen at
# 60K: the display task died for the 464 bytes).
from asyncio import Event, wait_for_ms

from micropython import const

import config
from clock import Clock
from display import ST_BATTERY_LOW, ST_CLOCK_STALE, ST_CLOCK_UNSET, ST_NO_GATEWAY
from protocol import command, devconfig, gatt, keys, record, rotation
from protocol.hmac256 import HmacKey
from scanlog import ScanLog

_MIN_UNIX = const(1577836800)  # 2020-01-01: an OP_TIME before this is a broken gateway clock
_CLOCK_JUMP = const(2)  # log a CLOCK_SET record when the clock moves this much or more
_SEND_TRIES = const(100)  # LOG notify retries while the stack is out of buffers
_SEND_WAIT_MS = const(10)
_MAX_CONNS = const(8)  # per-connection table bound, in case a disconnect was missed
_MAX_WAIT_MS = const(30000)  # display task wakes at least this often
# The no-gateway mark: no authenticated READ or ACK (a gateway collecting the
# log) for this long; a fresh boot gets as long before the mark shows.
_NO_GW_S = const(3600)
_BAT_HYST_MV = const(50)  # battery-low clears only this far above the threshold

# Per-connection state: [mtu, tap tokens, ticks_ms of the last refill]
_MTU = const(0)
_TOKENS = const(1)
_REFILL_AT = const(2)
# Tap rate limit, a token bucket per connection: a burst of _TAP_BURST taps,
# then one more every _TAP_EVERY_MS. A phone taps once per connection; a flood
# is refused with RATE_LIMITED before it reaches the flash, so it costs the
# gateway's LOG stream (another connection) nothing.
_TAP_BURST = const(4)
_TAP_EVERY_MS = const(500)
_DEFAULT_MTU = const(23)
# The READ under way (one at a time): [conn, ctr, next seq, send tries left,
# records in the buffer not yet sent (0: none)]
_RD_CONN = const(0)
_RD_CTR = const(1)
_RD_SEQ = const(2)
_RD_TRIES = const(3)
_RD_HELD = const(4)


class Device:
    def __init__(self, cfg, root, radio, display, clock=None, nonce=None, reset_cause=0,
                 safe=False, battery=None):
        self.cfg = cfg
        self._radio = radio
        self._display = display
        self.clock = clock or Clock()
        # Fresh per boot: a command frame is bound to it, so no frame outlives a reboot.
        self.nonce = nonce or os.urandom(8)
        self._rec = HmacKey(keys.record_key(cfg.key))
        self._rotor = rotation.Rotor(keys.rotation_key(cfg.key), cfg.slot, cfg.slots, cfg.digits)
        self.root = root
        self._gw_id = None  # cache of the last gateway's derived key
        self._gw_key = None
        self.last_ctr = 0
        self._conns = {}
        self._refused = bytearray(2)
        self._refused[0] = gatt.RECEIPT_REFUSED
        self._window = -1
        self._code = None
        self._shown = False  # nothing drawn yet (None means 'drew the unsynced screen')
        self._marks = -1  # the display.ST_* marks drawn (-1: none yet)
        self.clock_changed = Event()  # wakes the display task
        self.safe = safe  # safe mode (main.py): INFO says so
        self._battery = battery  # hw.make_battery: (read_mv, low_mv), None on mains
        self._gw_at = self.clock.uptime()  # the last READ or ACK, or the boot
        self._info_st = 0  # the status in the last INFO value
        self._info = bytearray(gatt.INFO_LEN)
        # A READ allocates nothing big: its LOG frame buffer is made now (one
        # notification at the MTU the device asks for: 6 records at 247), and
        # read_step streams it without a coroutine of its own (main.serve).
        self._rbuf = bytearray(1 + gatt.log_capacity(gatt.WANT_MTU) * record.RECORD_LEN)
        self._rmv = memoryview(self._rbuf)
        self._rd = None  # the READ under way (_RD_*)
        # BOOT data: fw (u16), reset cause (u8, record.RESET_*), zero pad.
        self.log = ScanLog(root, self._rec, cfg.device_id, 0, self.clock.uptime(),
                           struct.pack(record.BOOT_FMT, cfg.fw, reset_cause))
        self._info_changed()

    # --- INFO --------------------------------------------------------------
    def status(self):
        """INFO status bits (battery low as last drawn)."""
        c = self.clock
        st = gatt.STATUS_CLOCK_SET if c.is_set() else 0
        if c.stale():
            st |= gatt.STATUS_CLOCK_STALE
        if self.safe:
            st |= gatt.STATUS_SAFE_MODE
        if self._marks > 0 and self._marks & ST_BATTERY_LOW:
            st |= gatt.STATUS_BATTERY_LOW
        return st

    def info(self):
        """The INFO value, packed into a kept buffer (valid until the next call)."""
        status = self._info_st = self.status()
        lg = self.log
        gatt.pack_info_into(self._info, self.cfg.device_id, lg.epoch, lg.head, lg.acked,
                            lg.dropped, status, self.last_ctr, self.nonce, self.cfg.fw)
        return self._info

    def _info_changed(self):
        self._radio.set_info(self.info())

    # --- connections -------------------------------------------------------
    def _conn(self, conn):
        st = self._conns.get(conn)
        if st is None:
            if len(self._conns) >= _MAX_CONNS:
                self._conns.clear()
            st = [_DEFAULT_MTU, _TAP_BURST, time.ticks_ms()]
            self._conns[conn] = st
        return st

    def on_connect(self, conn):
        self._conns.pop(conn, None)
        self._conn(conn)

    def on_disconnect(self, conn):
        self._conns.pop(conn, None)

    def on_mtu(self, conn, mtu):
        self._conn(conn)[_MTU] = mtu

    # --- records -----------------------------------------------------------
    def on_tap(self, conn, data):
        """A phone's TAP write. The receipt (the sealed record) is notified only
        after the record is flushed to flash. Returns what was notified."""
        if len(data) != gatt.TAP_LEN or data[0] != gatt.TAP_VERSION:
            return self._refuse(conn, command.MALFORMED)
        st = self._conns.get(conn)
        if st is not None and not self._tap_token(st):
            return self._refuse(conn, command.RATE_LIMITED)
        # Stamped inline, no tuple: unix time if set, else uptime without the flag.
        t = self.clock.now()
        flags = record.FLAG_CLOCK_SET
        if t is None:
            t = self.clock.uptime()
            flags = 0
        try:
            rec = self.log.append(record.KIND_TAP, flags, t, data, 1)  # the nonce: data[1:9]
            self.log.flush()
        except OSError:
            # Flash full or failing: the phone must not get a receipt for it.
            return self._refuse(conn, command.BUSY)
        self._radio.tap_receipt(conn, rec)
        self._info_changed()
        return rec

    def _tap_token(self, st):
        # Ints only: no allocation per tap. Every connection the radio reports has
        # state (on_connect); host drivers that call on_tap without one are not limited.
        now = time.ticks_ms()
        n = time.ticks_diff(now, st[_REFILL_AT]) // _TAP_EVERY_MS
        if n > 0:
            st[_TOKENS] = min(_TAP_BURST, st[_TOKENS] + n)
            st[_REFILL_AT] = time.ticks_add(st[_REFILL_AT], n * _TAP_EVERY_MS)
        if st[_TOKENS] >= _TAP_BURST:
            st[_REFILL_AT] = now  # a full bucket does not bank time
        if st[_TOKENS] <= 0:
            return False
        st[_TOKENS] -= 1
        return True

    def _refuse(self, conn, status):
        self._refused[1] = status
        self._radio.tap_receipt(conn, self._refused)
        return self._refused

    # --- gateway commands --------------------------------------------------
    def _gateway_key(self, gw):
        if gw != self._gw_id:
            self._gw_key = HmacKey(keys.gateway_key(self.cfg.key, gw))
            self._gw_id = gw
        return self._gw_key

    def _reply(self, conn, op, status, ctr, value):
        r = command.pack_reply(op, status, ctr, value)
        self._radio.control_reply(conn, r)
        return r

    async def on_control(self, conn, frame):
        """A CONTROL write. Replies on CONTROL (after streaming LOG for a READ);
        returns the reply. (main.serve uses command and read_step instead.)"""
        r = self.command(conn, frame)
        if r is None:  # a READ taken: stream it here
            r = self.read_step()
            while isinstance(r, int):
                await asyncio.sleep_ms(r)
                r = self.read_step()
        return r

    def command(self, conn, frame):
        """A CONTROL write, handled at once (frame is not kept): returns the
        reply, already notified; None for a READ taken, whose LOG frames and
        reply read_step sends."""
        h = command.header(frame)
        if h is None:
            return self._reply(conn, frame[1] if len(frame) > 1 else 0, command.MALFORMED, 0, 0)
        op, gw, ctr = h
        if not command.authentic(self._gateway_key(gw), self.nonce, frame):
            return self._reply(conn, op, command.BAD_TAG, ctr, 0)
        if ctr <= self.last_ctr:
            return self._reply(conn, op, command.REPLAY, ctr, 0)
        # Authentic and fresh: the counter is spent whatever the op turns out to be.
        self.last_ctr = ctr
        self._info_changed()
        if op == command.OP_READ or op == command.OP_ACK:
            # A gateway is collecting: clear the no-gateway mark now, not at the next wake.
            self._gw_at = self.clock.uptime()
            if self._marks > 0 and self._marks & ST_NO_GATEWAY:
                self.clock_changed.set()
        if op == command.OP_CONFIG:
            return self._configure(conn, ctr, bytes(command.payload(frame)))
        fmt = command.PAYLOAD_FMT.get(op)
        if fmt is None:
            return self._reply(conn, op, command.UNKNOWN_OP, ctr, 0)
        p = command.payload(frame)
        if len(p) != struct.calcsize(fmt):
            return self._reply(conn, op, command.MALFORMED, ctr, 0)
        args = struct.unpack(fmt, p)
        if op == command.OP_TIME:
            return self._set_time(conn, ctr, args[0], args[1])
        if op == command.OP_ACK:
            try:
                acked = self.log.ack(args[0])
            except ValueError:
                return self._reply(conn, op, command.BAD_ARG, ctr, self.log.acked)
            except OSError:
                return self._reply(conn, op, command.BUSY, ctr, self.log.acked)
            self._info_changed()
            return self._reply(conn, op, command.OK, ctr, acked)
        return self._read(conn, ctr, args[0])

    def _configure(self, conn, ctr, blob):
        """OP_CONFIG: a blob sealed by the cloud with the config key (the gateway
        only carries it). Verified, checked fresh against the persisted version,
        persisted atomically, then applied."""
        op = command.OP_CONFIG
        cfg = self.cfg
        # The config key is derived per CONFIG (rare), not kept: its pads cost heap.
        st, s = devconfig.unseal(HmacKey(keys.config_key(cfg.key)), cfg.device_id, blob)
        if s is None:
            return self._reply(conn, op, st, ctr, cfg.version)
        if s.version <= cfg.version:
            return self._reply(conn, op, command.STALE_VERSION, ctr, cfg.version)
        try:
            rotor = rotation.Rotor(keys.rotation_key(cfg.key), s.slot, s.slots, s.digits)
            config.save_overlay(self.root, bytes(blob))
        except ValueError:
            return self._reply(conn, op, command.BAD_VALUE, ctr, cfg.version)
        except OSError:
            return self._reply(conn, op, command.BUSY, ctr, cfg.version)
        cfg.apply(s, self.root + config.OVERLAY)
        self._rotor = rotor
        self._window = -1  # recompute the code
        self._shown = False  # redraw: the label may have changed alone
        set_tx = getattr(self._radio, "set_tx_power", None)
        if set_tx is not None:
            set_tx(s.tx_power)
        self.clock_changed.set()  # wake the display task
        return self._reply(conn, op, command.OK, ctr, cfg.version)

    def _set_time(self, conn, ctr, unix_s, ms):
        op = command.OP_TIME
        if ms > 999 or unix_s < _MIN_UNIX:
            return self._reply(conn, op, command.BAD_ARG, ctr, 0)
        old = self.clock.now()
        # Reply value: how far off the clock was (its time minus the time set, in
        # ms) as a two's-complement i32, clamped; 0x80000000: it was unset.
        off = -0x80000000
        if old is not None:
            off = (old - unix_s) * 1000 + self.clock.now_ms_part() - ms
            off = max(-0x7FFFFFFF, min(0x7FFFFFFF, off))
        up = self.clock.uptime()
        self.clock.set(unix_s, ms)
        if old is None or abs(unix_s - old) >= _CLOCK_JUMP:
            # CLOCK_SET data: uptime at the set (u32) and the previous unix time
            # (u32, 0 if unset) so the cloud can place this epoch's uptime stamps.
            try:
                self.log.append(record.KIND_CLOCK_SET, record.FLAG_CLOCK_SET, unix_s,
                                struct.pack(">II", up, old or 0))
                self.log.flush()
            except OSError:
                pass  # the clock is still right; only the audit record is lost
        self._info_changed()
        self.clock_changed.set()
        return self._reply(conn, op, command.OK, ctr, off & 0xFFFFFFFF)

    def _read(self, conn, ctr, start):
        op = command.OP_READ
        if gatt.log_capacity(self._conn(conn)[_MTU]) <= 0:
            return self._reply(conn, op, command.BAD_ARG, ctr, self.log.head)
        if self._rd is not None:  # one at a time: the gateway reads again later
            return self._reply(conn, op, command.BUSY, ctr, self.log.head)
        self._rd = [conn, ctr, start, _SEND_TRIES, 0]
        return None

    def read_step(self):
        """One step of the READ under way: notify its next LOG frame, or once
        the log is sent (or the link is gone or hopelessly congested: BUSY, the
        gateway re-reads from its cursor) its reply. Returns ms to wait before
        the next step, the reply when the READ is over, or None if there is no
        READ. A plain call: main.serve steps a READ between radio events."""
        rd = self._rd
        if rd is None:
            return None
        conn = rd[_RD_CONN]
        st = self._conns.get(conn)
        status = command.BUSY
        if st is not None:
            rl = record.RECORD_LEN
            mv = self._rmv
            k = rd[_RD_HELD]
            if not k:  # the next records, as many as the MTU and the buffer take
                n = min(gatt.log_capacity(st[_MTU]), (len(mv) - 1) // rl)
                k = self.log.read_from(rd[_RD_SEQ], mv[1:1 + n * rl])
                mv[0] = k
            if not k:
                status = command.OK
            else:
                r = self._radio.log_frame(conn, mv[0:1 + k * rl])
                if r:
                    rd[_RD_SEQ] = record.seq_of(mv[1 + (k - 1) * rl:1 + k * rl]) + 1
                    rd[_RD_TRIES] = _SEND_TRIES
                    rd[_RD_HELD] = 0
                    return 0  # let taps and other events in between frames
                rd[_RD_HELD] = k
                rd[_RD_TRIES] -= 1
                if r is False and rd[_RD_TRIES] > 0:
                    return _SEND_WAIT_MS  # the stack is out of buffers: again soon
        self._rd = None
        return self._reply(conn, command.OP_READ, status, rd[_RD_CTR], self.log.head)

    def read_abort(self):
        """Drop the READ under way without a reply (e.g. no heap for a step)."""
        self._rd = None

    # --- the rotating code -------------------------------------------------
    def code(self):
        """The code for the current window, or None while the clock is unset."""
        t = self.clock.now()
        if t is None:
            return None
        w = rotation.window(t, self.cfg.period)
        if w != self._window:
            self._code = rotation.format_code(self.cfg.base, self._rotor.value(w), self.cfg.digits)
            self._window = w
        return self._code

    def refresh(self):
        """Redraw if what should be shown changed: the code or a status mark (clock
        unset or stale, no gateway for a while, battery low). Keeps INFO's status
        current. Returns ms to wait before the next check."""
        code = self.code()
        c = self.clock
        m = 0 if c.is_set() else ST_CLOCK_UNSET
        if c.stale():
            m = ST_CLOCK_STALE
        if c.uptime() - self._gw_at >= _NO_GW_S:
            m |= ST_NO_GATEWAY
        b = self._battery
        if b is not None:
            low = self._marks > 0 and self._marks & ST_BATTERY_LOW
            mv = b[0]()
            if mv is not None:  # low below low_mv; clears only _BAT_HYST_MV above it
                low = mv < b[1] + (_BAT_HYST_MV if low else 0)
            if low:
                m |= ST_BATTERY_LOW
        # The window bar: steps of the window still to run (1..steps), and the
        # ms until it loses one; a panel without a bar has steps 0.
        steps = getattr(self._display, "steps", 0)
        t = c.now()
        rem = _MAX_WAIT_MS
        left = 0
        if t is not None:
            pm = self.cfg.period * 1000
            rem = pm - (t % self.cfg.period) * 1000 - c.now_ms_part()
            if steps:
                left = (rem * steps + pm - 1) // pm
                rem -= (left - 1) * pm // steps
        if code != self._shown or m | left << 8 != self._marks:
            self._display.show(code, self.cfg, m, left)
            self._shown = code
            self._marks = m | left << 8  # the bar's step above the ST_* marks
        if self.status() != self._info_st:
            self._info_changed()  # the clock went stale, the battery low: tell the gateway
        return min(rem, _MAX_WAIT_MS)

    async def display_task(self):
        ev = self.clock_changed
        while True:
            try:
                wait = self.refresh()
            except OSError as e:
                # A panel or flash hiccup must not stop taps being served.
                print("display:", repr(e))
                wait = 1000
            except MemoryError:  # nor a heap short for one redraw: again in a second
                print("display: out of memory")
                wait = 1000
            ev.clear()
            try:
                # +2 ms so the wake-up lands just past the boundary, not just before.
                await wait_for_ms(ev.wait(), wait + 2)
            except asyncio.TimeoutError:
                pass
