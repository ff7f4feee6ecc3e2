# A test double of MicroPython's low-level `bluetooth` module, only for
# checking firmware/radio.py's glue (IRQ -> queue -> loop -> notify) where no
# radio exists. The real host radio is sim/micropython's shim; this is not it.
# Like the real stack it keeps a 20-byte default attribute buffer and
# truncates longer writes, so a missing gatts_set_buffer shows up.
FLAG_READ = 0x0002
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010


class UUID:
    def __init__(self, s):
        self.s = str(s).lower()


class _Ble:
    def __init__(self):
        self.reset()

    def reset(self):
        self.handler = None
        self.is_active = False
        self.cfg = {}
        self.db = {}
        self.bufsize = {}
        self.by_uuid = {}
        self.notified = []  # (conn, uuid, bytes)
        self.adverts = []  # (interval_us, adv_data)
        self.conns = set()
        self.enomem = 0  # fail this many notifies with ENOMEM

    # --- the API the firmware uses ---
    def active(self, v=None):
        if v is not None:
            self.is_active = bool(v)
        return self.is_active

    def config(self, **kw):
        self.cfg.update(kw)

    def irq(self, handler):
        self.handler = handler

    def gatts_register_services(self, services):
        out = []
        h = 1
        for svc_uuid, chars in services:
            hs = []
            for c in chars:
                h += 1
                self.by_uuid[c[0].s] = h
                self.db[h] = b""
                self.bufsize[h] = 20
                hs.append(h)
                h += 1
            out.append(tuple(hs))
        return tuple(out)

    def gatts_set_buffer(self, h, n, append=False):
        self.bufsize[h] = n

    def gatts_write(self, h, data, send_update=False):
        self.db[h] = bytes(data)

    def gatts_read(self, h):
        return self.db[h]

    def gatts_notify(self, conn, h, data=None):
        if conn not in self.conns:
            raise OSError(107)
        if self.enomem:
            self.enomem -= 1
            raise OSError(12)
        name = [u for u, hh in self.by_uuid.items() if hh == h][0]
        self.notified.append((conn, name, bytes(self.db[h] if data is None else data)))

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        self.adverts.append((interval_us, adv_data))

    # --- what a central does, for tests ---
    def connect(self, conn):
        self.conns.add(conn)
        self.handler(1, (conn, 0, b"\0" * 6))

    def disconnect(self, conn):
        self.conns.discard(conn)
        self.handler(2, (conn, 0, b"\0" * 6))

    def exchange_mtu(self, conn, mtu):
        self.handler(21, (conn, mtu))

    def write(self, conn, uuid, data):
        h = self.by_uuid[uuid]
        self.db[h] = bytes(data[0:self.bufsize[h]])
        self.handler(3, (conn, h))

    def read(self, uuid):
        return self.db[self.by_uuid[uuid]]

    def take(self, uuid):
        out = [(c, d) for c, u, d in self.notified if u == uuid]
        self.notified = [n for n in self.notified if n[1] != uuid]
        return out


_BLE = _Ble()


def BLE():
    return _BLE
