"""Regenerate tests/protocol/vectors.json (run by hand; the checked-in file is the contract).

Computed with CPython's stdlib hmac, independently of protocol.hmac256, so the
vectors also check our HMAC."""

import hashlib
import hmac
import json
import struct
from pathlib import Path


def h(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def main() -> None:
    dev_key = bytes(range(32))
    dev_id = bytes.fromhex("0102030405060708")
    gw_id = bytes.fromhex("a1a2a3a4a5a6a7a8")
    rot = h(dev_key, b"mcode/v0/rotation")
    rec = h(dev_key, b"mcode/v0/record")
    gwk = h(dev_key, b"mcode/v0/gateway/" + gw_id)
    cfk = h(dev_key, b"mcode/v0/config")
    slots, digits, slot = 4, 2, 3
    m = 10**digits // slots
    windows = [0, 1, 29_000_000, 0xFFFFFFFF]
    rot_vals = []
    for w in windows:
        r = struct.unpack(">I", h(rot, b"rot" + struct.pack(">I", w))[:4])[0] % m
        rot_vals.append({"window": w, "secret": r, "value": slot + slots * r,
                         "code": "4919-%02d" % (slot + slots * r)})
    body = struct.pack(">BBHIII8s", 1, 1, 1, 7, 42, 1_763_900_000, bytes.fromhex("f0e1d2c3b4a59687"))
    record = body + h(rec, dev_id + body)[:16]
    nonce = bytes.fromhex("0011223344556677")
    head = struct.pack(">BB8sI", 1, 3, gw_id, 5) + struct.pack(">I", 42)
    frame = head + h(gwk, nonce + head)[:16]
    # Config blob: fmt 1, version 3, slot 3, slots 4, digits 2, period 60, tx -4 dBm, base, label.
    label = "Oat milk 1L".encode()
    cbody = (struct.pack(">BIHHBIbB", 1, 3, 3, 4, 2, 60, -4, 4) + b"4919" + bytes([len(label)]) + label)
    cblob_v1 = cbody + h(cfk, dev_id + cbody)[:16]
    # Format 2: the same, then the host and one 10x2 label bitmap (2 bytes a row).
    host = b"m.mcode.cn"
    art = bytes.fromhex("ffc0a580")
    cbody = (struct.pack(">BIHHBIbB", 2, 3, 3, 4, 2, 60, -4, 4) + b"4919" + bytes([len(label)]) + label
             + bytes([len(host)]) + host + b"\x01" + struct.pack(">BHH", 1, 10, 2) + art)
    cblob = cbody + h(cfk, dev_id + cbody)[:16]
    out = {
        "device_key": dev_key.hex(), "device_id": dev_id.hex(), "gateway_id": gw_id.hex(),
        "rotation_key": rot.hex(), "record_key": rec.hex(), "gateway_key": gwk.hex(),
        "rotation": {"base": "4919", "slots": slots, "digits": digits, "slot": slot, "windows": rot_vals},
        "record": {"kind": 1, "flags": 1, "epoch": 7, "seq": 42, "time": 1_763_900_000,
                   "data": "f0e1d2c3b4a59687", "hex": record.hex()},
        "ack_command": {"nonce": nonce.hex(), "ctr": 5, "through": 42, "hex": frame.hex()},
        "config_key": cfk.hex(),
        "config": {"version": 3, "base": "4919", "slot": 3, "slots": 4, "digits": 2, "period": 60,
                   "label": "Oat milk 1L", "tx_power": -4, "host": host.decode(),
                   "art": [[1, 10, 2, art.hex()]], "hex": cblob.hex(), "hex_v1": cblob_v1.hex()},
    }
    Path(__file__).with_name("vectors.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
