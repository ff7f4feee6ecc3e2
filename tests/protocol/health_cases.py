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
