"""protocol/note.py: C2SP signed notes, checkpoints and cosignatures. The signed-note spec's own
example must verify; our vectors (note_vectors.json, fixed keys, Ed25519 is deterministic) must
come out byte for byte; key ids and the cosigned message are recomputed here by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import merkle, note

V = json.loads((Path(__file__).with_name("note_vectors.json")).read_text())

# c2sp.org/signed-note, section "Example"
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncA"
             "lTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")


def test_the_spec_example_verifies() -> None:
    v = note.parse_vkey(SPEC_VKEY)
    n = note.parse_note(SPEC_NOTE)
    assert n.text == "This is an example message.\n"
    assert note.verify(n, [v]) == {v: 0}
    with pytest.raises(note.NoteError) as e:
        note.verify(note.parse_note(SPEC_NOTE.replace("example message", "example massage")), [v])
    assert e.value.reason == "bad_signature"


def test_our_vectors_are_reproduced() -> None:
    log, wit = note.parse_skey(V["log_skey"]), note.parse_skey(V["witness_skey"])
    assert log.verifier.vkey() == V["log_vkey"] and wit.verifier.vkey() == V["witness_vkey"]
    leaves = [merkle.leaf_hash(b"leaf %d" % i) for i in range(5)]
    n = note.sign_checkpoint(note.Checkpoint(log.name, 5, merkle.root(leaves)), log)
    assert n.render() == V["checkpoint"]
    assert n.with_lines(wit.sign_line(n.text, V["cosign_time"])).render() == V["cosigned"]


def test_key_id_and_cosigned_message_by_hand() -> None:
    wv = note.parse_vkey(V["witness_vkey"])
    raw = base64.b64decode(V["witness_vkey"].split("+")[2])
    assert raw[0] == 0x04
    want_id = hashlib.sha256(wv.name.encode() + b"\n\x04" + raw[1:]).digest()[:4]
    assert wv.key_id == want_id
    cosig = note.parse_note(V["cosigned"]).signatures[1]
    assert cosig.key_id == want_id
    ts = struct.unpack(">Q", cosig.sig[:8])[0]
    assert ts == V["cosign_time"]
    text = V["checkpoint"].split("\n\n")[0] + "\n"
    msg = f"cosignature/v1\ntime {ts}\n{text}".encode()
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(cosig.sig[8:], msg)  # raises if wrong


def test_open_checkpoint_with_and_without_the_witness() -> None:
    lv, wv = note.parse_vkey(V["log_vkey"]), note.parse_vkey(V["witness_vkey"])
    cp, _, cosigned = note.open_checkpoint(V["cosigned"], lv, (wv,))
    assert cp.size == 5 and cosigned == {wv: V["cosign_time"]}
    cp2, _, none = note.open_checkpoint(V["checkpoint"], lv)
    assert cp2 == cp and none == {}
    with pytest.raises(note.NoteError) as e:
        note.open_checkpoint(V["checkpoint"], lv, (wv,))
    assert e.value.reason == "missing_cosignature"


def flip_bit(s: str, at: int) -> str:
    b = bytearray(s.encode())
    b[at] ^= 0x01
    return b.decode()


@pytest.mark.parametrize("where", ["size", "root", "logsig", "cosig"])
def test_tampering_is_refused_with_a_reason(where: str) -> None:
    lv, wv = note.parse_vkey(V["log_vkey"]), note.parse_vkey(V["witness_vkey"])
    good = V["cosigned"]
    if where == "size":
        bad = good.replace("\n5\n", "\n4\n", 1)
    elif where == "root":
        bad = good.replace("NBUVmC1l", "NBUVmC1m", 1)
    elif where == "logsig":
        bad = good.replace("lwMd0vw1pyCe", "lwMd0vw1pyCf", 1)
    else:
        bad = good.replace("GQcCguGh", "GQcCguGi", 1)
    with pytest.raises(note.NoteError) as e:
        note.open_checkpoint(bad, lv, (wv,))
    assert e.value.reason == "bad_signature"


@pytest.mark.parametrize("text", [
    "", "no blank line\n", "a\n\n", "a\n\n— name\n", "a\n\n— na+me AAAAAAA=\n", "a\n\n— name !!!\n",
    "a\x01\n\n— name AAAAAAA=\n", "a\n\n— name AAAA\n"])
def test_malformed_notes(text: str) -> None:
    with pytest.raises(note.NoteError):
        note.parse_note(text)


@pytest.mark.parametrize("text", [
    "origin\n5\n", "origin\n05\nNBUVmC1lDiNSDb1U1/zwr6G3DMOhakEdRk3JwayWwwE=\n", "origin\n-1\nAA==\n",
    "origin\n5\nAAAA\n", "origin\n0\nNBUVmC1lDiNSDb1U1/zwr6G3DMOhakEdRk3JwayWwwE=\n",
    "origin\n5\nNBUVmC1lDiNSDb1U1/zwr6G3DMOhakEdRk3JwayWwwE=\n\n"])
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(note.NoteError):
        note.parse_checkpoint(text)


def test_checkpoint_extension_lines_round_trip() -> None:
    cp = note.Checkpoint("o", 1, merkle.leaf_hash(b"x"), ("ext one", "ext two"))
    assert note.parse_checkpoint(cp.text()) == cp


def test_unknown_keys_are_ignored_but_one_known_is_needed() -> None:
    lv = note.parse_vkey(V["log_vkey"])
    other = note.Signer.generate("someone.else/x")
    n = note.parse_note(V["checkpoint"])
    assert note.verify(n.with_lines(other.sign_line(n.text)), [lv]) == {lv: 0}
    with pytest.raises(note.NoteError) as e:
        note.verify(n, [other.verifier])
    assert e.value.reason == "unknown_key"


def test_bad_keys() -> None:
    bad = ["", "a+b", "name+00000000+AQ==", SPEC_VKEY.replace("530d903a", "530d903b"), "PRIVATE+KEY+x+1+AA=="]
    for s in bad:
        with pytest.raises(note.NoteError):
            note.parse_vkey(s) if not s.startswith("PRIVATE") else note.parse_skey(s)
