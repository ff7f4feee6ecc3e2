# Key derivation. Each device has one 32-byte secret, known to the device and
# the cloud only. Every other key is derived from it under a label, so one
# compromise of a derived key never reveals another (HMAC is a PRF).
from protocol.hmac256 import hmac_sha256

DEVICE_KEY_LEN = 32
ID_LEN = 8

ROTATION = b"mcode/v0/rotation"
RECORD = b"mcode/v0/record"
GATEWAY = b"mcode/v0/gateway/"
CONFIG = b"mcode/v0/config"


def rotation_key(device_key):
    return hmac_sha256(device_key, ROTATION)


def record_key(device_key):
    return hmac_sha256(device_key, RECORD)


def config_key(device_key):
    """Seals configuration blobs (protocol/devconfig.py). Only the device and the
    cloud hold it: a gateway carries a sealed blob but cannot make or alter one."""
    return hmac_sha256(device_key, CONFIG)


def gateway_key(device_key, gateway_id):
    """The key a given gateway uses to command a given device.

    The cloud hands it to the gateway; the device derives it on demand from
    the gateway id in the command. The gateway never sees the device key, so
    it cannot forge records or predict codes."""
    if len(gateway_id) != ID_LEN:
        raise ValueError("gateway id must be 8 bytes")
    return hmac_sha256(device_key, GATEWAY + gateway_id)
