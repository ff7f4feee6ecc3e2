# Checks of sim/micropython/bluetooth.py under the real MicroPython interpreter
# (run by tests/sim/test_shim.py through tests/mp/runner.py, with a live radio hub).
import bluetooth

_SVC = bluetooth.UUID("4d430001-2f8b-4c1e-9a57-6d636f646500")
_N = bluetooth.FLAG_NOTIFY
_R = bluetooth.FLAG_READ
_W = bluetooth.FLAG_WRITE


def _ble():
    b = bluetooth.BLE()
    assert b is bluetooth.BLE()  # singleton
    b.active(True)
    return b


def test_uuid():
    assert bluetooth.UUID(0x180F) == bluetooth.UUID("180f") == bluetooth.UUID("0x180F")
    assert bluetooth.UUID(_SVC) == _SVC
    assert bluetooth.UUID(b"\x0f\x18") == bluetooth.UUID(0x180F)
    assert repr(bluetooth.UUID(0x2902)) == "UUID(0x2902)"
    assert str(_SVC) == "4d430001-2f8b-4c1e-9a57-6d636f646500"
    for bad in ("12345", "4d430001x2f8b-4c1e-9a57-6d636f646500", "zzzz"):
        try:
            bluetooth.UUID(bad)
            raise AssertionError("accepted " + bad)
        except ValueError:
            pass


def test_handles_like_the_real_module():
    b = _ble()
    svcs = (
        (_SVC, ((bluetooth.UUID(0x2A00), _R), (bluetooth.UUID(0x2A01), _W | _N),
                (bluetooth.UUID(0x2A02), _R, ((bluetooth.UUID(0x2901), _R),)))),
        (bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), _R | _N),)),
    )
    handles = b.gatts_register_services(svcs)
    # One tuple per service: characteristic value handles and descriptor handles, in order.
    assert len(handles) == 2 and len(handles[0]) == 4 and len(handles[1]) == 1, handles
    flat = handles[0] + handles[1]
    assert len(set(flat)) == 5 and list(flat) == sorted(flat)
    h = handles[0][0]
    assert b.gatts_read(h) == b""
    b.gatts_write(h, b"abc")
    assert b.gatts_read(h) == b"abc"
    b.gatts_set_buffer(handles[0][1], 64, True)


def test_config_and_address():
    b = _ble()
    addr_type, addr = b.config("mac")
    assert addr_type == 1 and len(addr) == 6 and addr[0] & 0xC0 == 0xC0
    b.config(gap_name="mc-1234", mtu=247)
    assert b.config("gap_name") == "mc-1234" and b.config("mtu") == 247
    try:
        b.config("nonsense")
        raise AssertionError("unknown config accepted")
    except ValueError:
        pass


def test_advertising_limit():
    b = _ble()
    b.gap_advertise(100000, b"\x02\x01\x06")
    try:
        b.gap_advertise(100000, bytes(32))
        raise AssertionError("32-byte advert accepted")
    except OSError:
        pass
    b.gap_advertise(None)


def test_notify_unknown_connection():
    b = _ble()
    ((h,),) = b.gatts_register_services(((_SVC, ((bluetooth.UUID(0x2A00), _R | _N),)),))
    assert b.gap_disconnect(7) is False
    try:
        b.gatts_notify(7, h, b"x")
        raise AssertionError("notify to no connection accepted")
    except OSError:
        pass


def test_z_deactivate():
    b = _ble()
    assert b.active()
    b.active(False)
    assert not b.active()
