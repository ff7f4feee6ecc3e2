# The gateway status format (protocol/health.py), checked unchanged under CPython and
# MicroPython: what the gateway encodes, the cloud decodes; bad payloads are refused clearly.
import json

from protocol import health


def _figures():
    return {"ts": 1700000000, "up_s": 12, "spool_records": 250, "spool_unbatched": 50,
            "spool_batches": 2, "spool_fill": 0.25, "spool_alarm": "ok", "oldest_unbatched_s": 1,
            "inflight": 2, "confirmed_bseq": 1700000000123, "confirmed_batches": 7,
            "confirmed_records": 700, "records_per_s": 35.5, "connects": 2, "disconnects": 1}


def _refused(payload):
    try:
        health.decode(payload)
    except health.HealthError:
        return True
    return False


def test_round_trip():
    f = _figures()
    got = health.decode(health.encode_online(f))
    assert got["state"] == health.ONLINE
    for k in f:
        assert got[k] == f[k], k


def test_nulls_where_allowed():
    f = _figures()
    f["confirmed_bseq"] = None
    f["oldest_unbatched_s"] = None
    got = health.decode(health.encode_online(f))
    assert got["confirmed_bseq"] is None and got["oldest_unbatched_s"] is None


def test_offline_is_plain_bytes():
    assert health.OFFLINE_PAYLOAD == b"offline"
    assert health.decode(b"offline") == {"state": health.OFFLINE}


def test_encoder_wants_every_figure():
    f = _figures()
    del f["inflight"]
    try:
        health.encode_online(f)
    except health.HealthError:
        return
    raise AssertionError("missing figure accepted")


def test_encoder_refuses_bad_values():
    for k, v in (("inflight", -1), ("spool_records", None), ("connects", True), ("ts", "now"),
                 ("records_per_s", -0.5)):
        f = _figures()
        f[k] = v
        try:
            health.encode_online(f)
        except health.HealthError:
            continue
        raise AssertionError("bad %s accepted" % k)


def test_decoder_refuses_garbage():
    good = json.loads(health.encode_online(_figures()).decode())
    assert not _refused(json.dumps(good).encode())
    bad = [b"", b"online", b"\xff\xfe", b"[1, 2]", b"{", b"x" * (health.MAX_PAYLOAD + 1)]
    for change in (("v", 2), ("state", "offline"), ("inflight", "3"), ("up_s", -4)):
        m = dict(good)
        m[change[0]] = change[1]
        bad.append(json.dumps(m).encode())
    m = dict(good)
    del m["spool_batches"]
    bad.append(json.dumps(m).encode())
    for p in bad:
        assert _refused(p), p


def test_unknown_keys_are_ignored():
    m = json.loads(health.encode_online(_figures()).decode())
    m["added_later"] = [1, 2]
    got = health.decode(json.dumps(m).encode())
    assert "added_later" not in got and got["inflight"] == 2


def test_devices_round_trip():
    devs = [["a1a2a3a4a5a6a7a8", 1700000000, 1, 3, -61], ["b1b2b3b4b5b6b7b8", None, None, None, None]]
    got = health.decode(health.encode_online(_figures(), devs))
    assert got["devs"] == [tuple(d) for d in devs]
    assert health.decode(health.encode_online(_figures()))["devs"] == []


def test_devices_refused_when_bad():
    good = json.loads(health.encode_online(_figures()).decode())
    for devs in ({"a": 1}, [["A1A2A3A4A5A6A7A8", 1, 0, 1, 0]], [["a1a2", 1, 0, 1, 0]],
                 [["a1a2a3a4a5a6a7a8", 1, 2, 1, 0]], [["a1a2a3a4a5a6a7a8", -1, 0, 1, 0]],
                 [["a1a2a3a4a5a6a7a8", 1, 0, 70000, 0]], [["a1a2a3a4a5a6a7a8", 1, 0, 1]],
                 [["a1a2a3a4a5a6a7a8", 1, True, 1, 0]]):
        m = dict(good)
        m["devs"] = devs
        assert _refused(json.dumps(m).encode()), devs
        try:
            health.encode_online(_figures(), devs if isinstance(devs, list) else [])
        except health.HealthError:
            continue
        assert not isinstance(devs, list), devs


def test_too_many_devices_refused():
    try:
        health.encode_online(_figures(), [["a1a2a3a4a5a6a7a8", 1, 0, 1, 0]] * (health.MAX_DEVICES + 1))
    except health.HealthError:
        return
    raise AssertionError("too many devices accepted")
