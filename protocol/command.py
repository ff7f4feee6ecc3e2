# Authenticated gateway commands on the CONTROL characteristic.
#   frame = version(1) op(1) gateway_id(8) ctr(u32) payload tag(16)
#   tag   = HMAC-SHA256(gateway_key, nonce || frame[:-16])[0:16]
# nonce is the device's random per-boot value from INFO; ctr must exceed the
# last counter the device accepted this boot, so a captured frame cannot be
# replayed and a phone (which has no gateway key) cannot make one.
import struct

from protocol.hmac256 import equal

VERSION = 1
HEADER = ">BB8sI"
HEADER_LEN = 14
TAG_LEN = 16

OP_TIME = 1  # payload u32 unix seconds, u16 milliseconds
OP_READ = 2  # payload u32 first seq wanted; the device streams LOG frames, then replies
OP_ACK = 3  # payload u32 seq: every record up to and including it is durably stored upstream
OP_CONFIG = 4  # payload: a cloud-sealed config blob (protocol/devconfig.py); reply value: config version

OK = 0
BAD_TAG = 1
REPLAY = 2
MALFORMED = 3
UNKNOWN_OP = 4
BAD_ARG = 5
BUSY = 6
RATE_LIMITED = 7
STALE_VERSION = 8  # CONFIG: version not greater than the device's current one
BAD_CONFIG_TAG = 9  # CONFIG: the blob's tag is not the cloud's (config key)
BAD_VALUE = 10  # CONFIG: authentic, but a value is out of range
STATUS_NAMES = {OK: "ok", BAD_TAG: "bad_tag", REPLAY: "replay", MALFORMED: "malformed",
                UNKNOWN_OP: "unknown_op", BAD_ARG: "bad_arg", BUSY: "busy",
                RATE_LIMITED: "rate_limited", STALE_VERSION: "stale_version",
                BAD_CONFIG_TAG: "bad_config_tag", BAD_VALUE: "bad_value"}

# Reply notification on CONTROL: op, status, ctr, value (op-specific: READ -> head
# seq, ACK -> acked seq, TIME -> the old clock minus the time set in ms as a
# two's-complement i32, 0x80000000 if it was unset; CONFIG -> the device's config
# version after the write).
REPLY_FMT = ">BBII"
REPLY_LEN = 10

# Fixed-size payloads; OP_CONFIG's is variable (protocol/devconfig.py).
PAYLOAD_FMT = {OP_TIME: ">IH", OP_READ: ">I", OP_ACK: ">I"}


def build(gw_hkey, nonce, op, gateway_id, ctr, payload):
    head = struct.pack(HEADER, VERSION, op, gateway_id, ctr) + payload
    return head + gw_hkey.mac(nonce, head)[0:TAG_LEN]


def header(frame):
    """(op, gateway_id, ctr) or None if the frame is too short or of another version."""
    if len(frame) < HEADER_LEN + TAG_LEN or frame[0] != VERSION:
        return None
    v, op, gw, ctr = struct.unpack(HEADER, frame[0:HEADER_LEN])
    return op, gw, ctr


def authentic(gw_hkey, nonce, frame):
    n = len(frame) - TAG_LEN
    return equal(gw_hkey.mac(nonce, frame[0:n])[0:TAG_LEN], frame[n:])


def payload(frame):
    return frame[HEADER_LEN:len(frame) - TAG_LEN]


def pack_reply(op, status, ctr, value):
    return struct.pack(REPLY_FMT, op, status, ctr, value)


def unpack_reply(b):
    return struct.unpack(REPLY_FMT, b[0:REPLY_LEN])
