# The BLE GATT profile of an mcode display (see docs/protocol.md, "GATT").
import struct

SERVICE = "4d430001-2f8b-4c1e-9a57-6d636f646500"
INFO = "4d430002-2f8b-4c1e-9a57-6d636f646500"  # read
TAP = "4d430003-2f8b-4c1e-9a57-6d636f646500"  # write (phone tap), notify (receipt)
CONTROL = "4d430004-2f8b-4c1e-9a57-6d636f646500"  # write (gateway command), notify (reply)
LOG = "4d430005-2f8b-4c1e-9a57-6d636f646500"  # notify (record stream)

PROTO_VERSION = 0
MIN_MTU = 48  # a 40-byte record plus ATT and frame headers must fit one PDU
WANT_MTU = 247
ADV_INTERVAL_US = 20000  # 20 ms: quick connects (see FACTS: 1 s adverts cost ~0.8 s per connect)
ADV_MAX = 31

# INFO value, 40 bytes
INFO_FMT = ">B8sIIIIBI8sH"
INFO_LEN = 40
# INFO status bits
STATUS_CLOCK_SET = 1
STATUS_SAFE_MODE = 2  # booted in safe mode after repeated failed boots: BLE only, no display
STATUS_CLOCK_STALE = 4  # set, but drifting: no sync for a day, or the last sync corrected a lot
STATUS_BATTERY_LOW = 8


def pack_info(device_id, epoch, head_seq, acked_seq, dropped, status, last_ctr, nonce, fw):
    return struct.pack(INFO_FMT, PROTO_VERSION, device_id, epoch, head_seq, acked_seq,
                       dropped, status, last_ctr, nonce, fw)


def pack_info_into(buf, device_id, epoch, head_seq, acked_seq, dropped, status, last_ctr, nonce, fw):
    struct.pack_into(INFO_FMT, buf, 0, PROTO_VERSION, device_id, epoch, head_seq, acked_seq,
                     dropped, status, last_ctr, nonce, fw)


def unpack_info(b):
    """(proto, device_id, epoch, head_seq, acked_seq, dropped, status, last_ctr, nonce, fw)"""
    return struct.unpack(INFO_FMT, b[0:INFO_LEN])


# TAP write: version, the phone's 8-byte nonce. Receipt: the 40-byte record, or
# (0xFF, status) when the tap was refused.
TAP_VERSION = 1
TAP_LEN = 9
RECEIPT_REFUSED = 0xFF


def pack_tap(nonce):
    return bytes([TAP_VERSION]) + nonce


# LOG notification: count n, then n records.
def log_capacity(mtu):
    return (mtu - 3 - 1) // 40


# Advertising payload: flags, the 128-bit service UUID, a short name.
def _uuid_le(uuid):
    b = bytes.fromhex(uuid.replace("-", ""))
    return bytes(reversed(b))


def advertising_payload(name):
    flags = b"\x02\x01\x06"
    svc = bytes([17, 0x07]) + _uuid_le(SERVICE)
    nm = name.encode() if isinstance(name, str) else name
    payload = flags + svc + bytes([len(nm) + 1, 0x09]) + nm
    if len(payload) > ADV_MAX:
        raise ValueError("advertising payload over 31 bytes")
    return payload
