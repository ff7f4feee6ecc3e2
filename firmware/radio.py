# BLE glue: the GATT server on the low-level `bluetooth` module. Thin on
# purpose; all decisions are in device.Device.
# The IRQ handler does no flash I/O and no protocol work: it copies each write
# into a preallocated ring slot and wakes the asyncio loop with a
# ThreadSafeFlag. Only the IRQ advances _head and only the loop advances
# _tail, and the loop releases a slot only after it is done with it, so the two
# never touch the same slot at once.
import asyncio

import bluetooth
from micropython import const

from protocol import command, gatt

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_WRITE_NOTIFY = const(0x001C)

_ENOMEM = const(12)  # the stack is out of buffers: a notify can be retried

EV_CONNECT = const(1)
EV_DISCONNECT = const(2)
EV_MTU = const(3)
EV_TAP = const(4)
EV_CONTROL = const(5)

_QLEN = const(8)
_SLOT = const(112)  # longest write we accept: an OP_CONFIG frame, at most 30 + 82 bytes (devconfig.MAX_LEN)


class BleRadio:
    def __init__(self, name, max_conns=2):
        # The ring first, while the heap still has room in one piece for it.
        self._kind = bytearray(_QLEN)
        self._qconn = [0] * _QLEN
        self._qlen = [0] * _QLEN
        self._qdata = memoryview(bytearray(_QLEN * _SLOT))  # the slots' data, one buffer
        ble = bluetooth.BLE()
        self._ble = ble
        ble.active(True)
        try:
            ble.config(mtu=gatt.WANT_MTU)
        except (ValueError, OSError):
            pass  # not every stack lets the peripheral choose; 23 still works for taps
        u = bluetooth.UUID
        svc = (u(gatt.SERVICE), (
            (u(gatt.INFO), _FLAG_READ),
            (u(gatt.TAP), _WRITE_NOTIFY),
            (u(gatt.CONTROL), _WRITE_NOTIFY),
            (u(gatt.LOG), _FLAG_NOTIFY),
        ))
        ((self._h_info, self._h_tap, self._h_ctrl, self._h_log),) = ble.gatts_register_services((svc,))
        # The default attribute buffer is 20 bytes: a command frame would be cut.
        ble.gatts_set_buffer(self._h_tap, _SLOT)
        ble.gatts_set_buffer(self._h_ctrl, _SLOT)
        ble.gatts_set_buffer(self._h_info, gatt.INFO_LEN)
        self._head = 0
        self._tail = 0
        self.flag = asyncio.ThreadSafeFlag()
        self._adv = gatt.advertising_payload(name)
        self._nconn = 0
        self._max = max_conns
        self.ev_conn = 0
        self.ev_len = 0  # data length, or the MTU for EV_MTU
        self.ev_data = None
        ble.irq(self._irq)
        self.advertise()

    # --- IRQ side ----------------------------------------------------------
    def _put(self, kind, conn, data, n):
        h = self._head
        nxt = (h + 1) % _QLEN
        if nxt == self._tail:
            return False
        self._kind[h] = kind
        self._qconn[h] = conn
        if data is not None:
            n = len(data)  # at most _SLOT (_irq checks)
            self._qdata[h * _SLOT:h * _SLOT + n] = data
        self._qlen[h] = n
        self._head = nxt
        self.flag.set()
        return True

    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            conn, h = data
            if h == self._h_tap:
                kind = EV_TAP
            elif h == self._h_ctrl:
                kind = EV_CONTROL
            else:
                return
            v = self._ble.gatts_read(h)
            if len(v) > _SLOT or not self._put(kind, conn, v, 0):
                self._busy(kind, conn, v)
        elif event == _IRQ_CENTRAL_CONNECT:
            self._nconn += 1
            self._put(EV_CONNECT, data[0], None, 0)
            if self._nconn < self._max:
                self.advertise()  # stay connectable: a gateway may come while a phone is on
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if self._nconn:
                self._nconn -= 1
            self._put(EV_DISCONNECT, data[0], None, 0)
            self.advertise()
        elif event == _IRQ_MTU_EXCHANGED:
            self._put(EV_MTU, data[0], None, data[1])

    def _busy(self, kind, conn, v):
        # Queue full or oversized write: answer at once rather than drop silently.
        if kind == EV_TAP:
            self._notify(conn, self._h_tap, bytes((gatt.RECEIPT_REFUSED, command.BUSY)))
        else:
            h = command.header(v)
            if h:
                self._notify(conn, self._h_ctrl, command.pack_reply(h[0], command.BUSY, h[2], 0))

    # --- loop side ---------------------------------------------------------
    def peek(self):
        """Kind of the oldest queued event (0 if none); fills ev_conn, ev_len and
        ev_data (valid until release())."""
        t = self._tail
        if t == self._head:
            return 0
        self.ev_conn = self._qconn[t]
        self.ev_len = self._qlen[t]
        k = self._kind[t]
        if k == EV_TAP or k == EV_CONTROL:
            self.ev_data = self._qdata[t * _SLOT:t * _SLOT + self.ev_len]
        return k

    def release(self):
        self.ev_data = None
        self._tail = (self._tail + 1) % _QLEN

    def advertise(self):
        try:
            self._ble.gap_advertise(gatt.ADV_INTERVAL_US, adv_data=self._adv)
        except OSError:
            pass  # e.g. the stack's connection limit is reached; retried on disconnect

    def _notify(self, conn, h, data):
        try:
            self._ble.gatts_notify(conn, h, data)
            return True
        except OSError as e:
            return False if e.args and e.args[0] == _ENOMEM else None

    # --- device.Device's radio interface -----------------------------------
    def tap_receipt(self, conn, data):
        self._notify(conn, self._h_tap, data)

    def control_reply(self, conn, data):
        self._notify(conn, self._h_ctrl, data)

    def log_frame(self, conn, data):
        return self._notify(conn, self._h_log, data)

    def set_info(self, data):
        self._ble.gatts_write(self._h_info, data)

    def set_tx_power(self, dbm):
        """From a sealed config. MicroPython's bluetooth has no portable TX power
        setting; ports that take `txpower` get it, others keep the board's."""
        self.tx_power = dbm
        try:
            self._ble.config(txpower=dbm)
        except (ValueError, OSError, TypeError):
            pass
