# MicroPython `bluetooth` for the unix port, backed by the mcode virtual radio.
#
# Implements the subset of the real module that the firmware uses, with its
# documented semantics: BLE() singleton, active, config, irq, gap_advertise,
# gap_disconnect, gatts_register_services, gatts_read/write/notify/indicate,
# gatts_set_buffer, UUID and the FLAG_* constants. The BLE stack itself runs in the
# radio hub (sim/radio/device_port.py documents the line protocol); this module
# talks to it over TCP at MCODE_RADIO=host:port.
#
# Commands are fire-and-forget (handles are computed here, as the real module
# assigns them), so nothing blocks on the hub. Events arrive in an asyncio task
# started by active(True) and are delivered to the irq handler synchronously, like
# the real scheduled callbacks.
#
# Limits: peripheral role only (no scanning, no GATT client, no pairing, no L2CAP);
# no _IRQ_GATTS_READ_REQUEST; the scan response is not delivered separately by the
# virtual controller (scanners see the advertising data twice).
import asyncio
import binascii
import json
import os
import select
import socket
import sys

from micropython import const

FLAG_BROADCAST = const(0x0001)
FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)
FLAG_AUTHENTICATED_SIGNED_WRITE = const(0x0040)
FLAG_AUX_WRITE = const(0x0100)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_EPERM = const(1)
_EINVAL = const(22)
_ENOTCONN = const(107)
_ADV_MAX = const(31)
_DEFAULT_BUF = const(20)
_DEFAULT_MTU = const(256)  # NimBLE's preferred MTU
_ATT_MTU_MIN = const(23)


class UUID:
    # Stored as lowercase hex: 4 or 8 digits, or the 36-character dashed form.
    def __init__(self, value):
        if isinstance(value, UUID):
            s = value._s
        elif isinstance(value, int):
            s = ("%04x" if value < 0x10000 else "%08x") % value
        elif isinstance(value, (bytes, bytearray, memoryview)):
            b = bytes(reversed(bytes(value)))  # the buffer form is little-endian
            s = binascii.hexlify(b).decode()
            if len(b) == 16:
                s = "%s-%s-%s-%s-%s" % (s[0:8], s[8:12], s[12:16], s[16:20], s[20:32])
            elif len(b) not in (2, 4):
                raise ValueError("invalid UUID")
        else:
            s = str(value).lower()
            if s.startswith("0x"):
                s = s[2:]
            if len(s) == 36:
                if s[8] != "-" or s[13] != "-" or s[18] != "-" or s[23] != "-":
                    raise ValueError("invalid UUID")
            elif len(s) not in (4, 8):
                raise ValueError("invalid UUID")
            int(s.replace("-", ""), 16)  # raises ValueError on non-hex digits
        self._s = s

    def __eq__(self, other):
        return isinstance(other, UUID) and self._s == other._s

    def __hash__(self):
        return hash(self._s)

    def __str__(self):
        return self._s

    def __repr__(self):
        if len(self._s) == 36:
            return "UUID('%s')" % self._s
        return "UUID(0x%s)" % self._s


def _hex(data):
    return binascii.hexlify(data).decode() if data else "-"


def _unhex(tok):
    return b"" if tok == b"-" else binascii.unhexlify(tok)


class _BLE:
    def __init__(self):
        self._sock = None
        self._poll = None
        self._task = None
        self._irq = None
        self._mac = None
        self._addr = None
        self._name = "MPY NIMBLE"
        self._mtu = _DEFAULT_MTU
        self._addr_mode = 0
        self._vals = {}  # value handle -> bytes
        self._bufs = {}  # value handle -> [buffer length, append]
        self._conns = {}  # conn handle -> [addr_type, addr, mtu]
        self._adv = None
        self._resp = None

    # -- lifecycle -----------------------------------------------------------
    def active(self, state=None):
        if state is None:
            return self._sock is not None
        if state and self._sock is None:
            self._open()
        elif not state and self._sock is not None:
            self._close()
        return self._sock is not None

    def _open(self):
        radio = os.getenv("MCODE_RADIO")
        if not radio:
            raise OSError(_EPERM)  # no radio: behave like a board without BLE
        i = radio.rfind(":")
        addr = socket.getaddrinfo(radio[:i], int(radio[i + 1:]))[0][-1]
        s = socket.socket()
        s.connect(addr)
        s.setblocking(False)
        self._sock = s
        self._poll = select.poll()
        self._poll.register(s, select.POLLOUT)
        # Name and MTU first: "A" powers the hub's stack on, which builds the GAP service.
        self._send("P %s" % _hex(self._name.encode()))
        self._send("M %d" % self._mtu)
        self._send("A %s" % _hex(self._address()))
        self._task = asyncio.create_task(self._rx(s))

    def _close(self):
        s, self._sock = self._sock, None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._conns = {}
        s.close()

    def _address(self):
        if self._addr is None:
            env = os.getenv("MCODE_RADIO_ADDR")
            if self._mac is not None:
                a = bytearray(self._mac)
            elif env:
                a = bytearray(binascii.unhexlify(env.replace(":", "")))
            else:
                a = bytearray(os.urandom(6))
            if len(a) != 6:
                raise ValueError("address must be 6 bytes")
            a[0] |= 0xC0  # random static: the two top bits set
            self._addr = bytes(a)
        return self._addr

    def _send(self, line):
        self._write((line + "\n").encode())

    def _write(self, b):
        s = self._sock
        if s is None:
            raise OSError(_EPERM)
        buf = memoryview(b)
        off = 0
        while off < len(buf):
            n = s.write(buf[off:])
            if n:
                off += n
            elif not self._poll.poll(5000):
                raise OSError(_ENOTCONN)  # the radio stopped reading

    # -- events ------------------------------------------------------------
    async def _rx(self, s):
        reader = asyncio.StreamReader(s)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                self._event(line)
        except OSError:
            pass
        if self._sock is s:  # the hub went away: every link is lost
            for conn, c in list(self._conns.items()):
                del self._conns[conn]
                self._fire(_IRQ_CENTRAL_DISCONNECT, (conn, c[0], memoryview(c[1])))

    def _event(self, line):
        op = line[0:1]
        if op == b"E":
            print("bluetooth(sim): hub refused:", line[2:].decode().rstrip())
            return
        a = line.split()
        conn = int(a[1])
        if op == b"C":
            addr = binascii.unhexlify(a[3])
            self._conns[conn] = [int(a[2]), addr, _ATT_MTU_MIN]
            self._fire(_IRQ_CENTRAL_CONNECT, (conn, int(a[2]), memoryview(addr)))
        elif op == b"D":
            c = self._conns.pop(conn, None)
            if c is not None:
                self._fire(_IRQ_CENTRAL_DISCONNECT, (conn, c[0], memoryview(c[1])))
        elif op == b"W":
            h = int(a[2])
            data = _unhex(a[3])
            b = self._bufs.get(h)
            if b is None:
                return
            self._vals[h] = ((self._vals[h] + data) if b[1] else data)[: b[0]]
            self._fire(_IRQ_GATTS_WRITE, (conn, h))
        elif op == b"M":
            mtu = int(a[2])
            if conn in self._conns:
                self._conns[conn][2] = mtu
            self._fire(_IRQ_MTU_EXCHANGED, (conn, mtu))

    def _fire(self, event, data):
        if self._irq is None:
            return
        try:
            self._irq(event, data)
        except Exception as e:  # the real stack prints and carries on
            print("Unhandled exception in IRQ callback handler")
            sys.print_exception(e)

    def irq(self, handler):
        self._irq = handler

    # -- configuration -----------------------------------------------------
    def config(self, *args, **kwargs):
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("config takes one name or keywords")
            k = args[0]
            if k == "mac":
                return (1, self._address())
            if k == "gap_name":
                return self._name
            if k == "mtu":
                return self._mtu
            if k == "addr_mode":
                return self._addr_mode
            raise ValueError("unknown config param")
        for k, v in kwargs.items():
            if k == "mac":
                self._mac = bytes(v)
                self._addr = None
                if self._sock is not None:
                    self._send("A %s" % _hex(self._address()))
            elif k == "gap_name":
                self._name = v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
                if self._sock is not None:
                    self._send("P %s" % _hex(self._name.encode()))
            elif k == "mtu":
                if not _ATT_MTU_MIN <= v <= 517:
                    raise ValueError("mtu")
                self._mtu = v
                if self._sock is not None:
                    self._send("M %d" % v)
            elif k == "addr_mode":
                self._addr_mode = v  # the virtual radio always uses a random static address
            elif k not in ("rxbuf", "io", "bond", "mitm", "le_secure"):
                raise ValueError("unknown config param")
        return None

    # -- GAP ---------------------------------------------------------------
    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if interval_us is None:
            self._send("X")
            return
        if adv_data is not None:
            self._adv = bytes(adv_data)
        if resp_data is not None:
            self._resp = bytes(resp_data)
        adv = self._adv or b""
        resp = self._resp or b""
        if len(adv) > _ADV_MAX or len(resp) > _ADV_MAX:
            raise OSError(_EINVAL)
        self._send("G %d %s %s %d" % (interval_us, _hex(adv), _hex(resp), 1 if connectable else 0))

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self._conns:
            return False
        self._send("D %d" % conn_handle)
        return True

    # -- GATT server -------------------------------------------------------
    def gatts_register_services(self, services_definition):
        if self._sock is None:
            raise OSError(_EPERM)
        h = 0
        result = []
        spec = []
        vals = {}
        bufs = {}
        for service in services_definition:
            h += 1  # service declaration
            handles = []
            chars = []
            for ch in service[1]:
                flags = ch[1]
                h += 2  # characteristic declaration, then its value
                value_handle = h
                handles.append(h)
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    h += 1  # the stack adds the CCCD itself
                descs = []
                for d in ch[2] if len(ch) > 2 else ():
                    h += 1
                    handles.append(h)
                    descs.append([str(UUID(d[0])), d[1], h])
                chars.append([str(UUID(ch[0])), flags, value_handle, descs])
            result.append(tuple(handles))
            spec.append([str(UUID(service[0])), chars])
        for t in result:
            for x in t:
                vals[x] = b""
                bufs[x] = [_DEFAULT_BUF, False]
        self._vals = vals
        self._bufs = bufs
        self._send("S " + json.dumps(spec))
        return tuple(result)

    def gatts_read(self, value_handle):
        v = self._vals.get(value_handle)
        if v is None:
            raise OSError(_EINVAL)
        if self._bufs[value_handle][1]:
            self._vals[value_handle] = b""  # append mode: reading consumes
        return v

    def gatts_write(self, value_handle, data, send_update=False):
        if value_handle not in self._vals:
            raise OSError(_EINVAL)
        v = bytes(data)
        self._vals[value_handle] = v
        self._send("V %d %s %d" % (value_handle, _hex(v), 1 if send_update else 0))

    def _push(self, op, conn_handle, value_handle, data):
        c = self._conns.get(conn_handle)
        if c is None:
            raise OSError(_ENOTCONN)
        if data is None:
            data = self._vals[value_handle]
        # Like NimBLE, a notification carries at most MTU - 3 bytes.
        n = min(len(data), c[2] - 3)
        if not n:
            self._send("%s %d %d -" % (op, conn_handle, value_handle))
            return
        # Hex in small pieces: this module stands in for C code that costs the device's heap
        # nothing, so it must not need one big block per notify (a 64K heap fragments).
        self._write(b"%s %d %d " % (op, conn_handle, value_handle))
        mv = memoryview(data)
        for i in range(0, n, 32):
            self._write(binascii.hexlify(mv[i:min(i + 32, n)]))
        self._write(b"\n")

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._push("N", conn_handle, value_handle, data)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._push("I", conn_handle, value_handle, data)

    def gatts_set_buffer(self, value_handle, length, append=False):
        self._bufs[value_handle] = [length, bool(append)]
        self._send("B %d %d %d" % (value_handle, length, 1 if append else 0))


_ble = None


def BLE():
    global _ble
    if _ble is None:
        _ble = _BLE()
    return _ble
