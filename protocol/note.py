"""Signed notes, checkpoints and cosignatures (CPython only: the cloud, the witness and the verifier).

Formats are C2SP's, unchanged (docs/trust.md has examples):
- signed-note: text ending in "\\n", a blank line, then lines "— <name> base64(key id || sig)".
  key id = SHA-256(name || "\\n" || type || public key)[:4]; type 0x01 is Ed25519 over the text.
- tlog-checkpoint: text = origin, decimal size, base64 root hash, optional extension lines.
- tlog-cosignature v1 (type 0x04): Ed25519 over "cosignature/v1\\ntime <t>\\n" || checkpoint text;
  the signature is u64be(t) || sig.
- vkeys "<name>+<hex key id>+base64(type || public key)" and signer keys
  "PRIVATE+KEY+<name>+<hex key id>+base64(type || seed)" as golang.org/x/mod/sumdb/note writes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.errors import ReasonError
from protocol.merkle import EMPTY_ROOT, HASH_LEN

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"
MAX_SIGNATURES = 64
MAX_NOTE = 64 * 1024


class NoteError(ReasonError):
    """A note, checkpoint or key that cannot be accepted; `reason` is a stable code:
    malformed, unknown_key, bad_signature, no_signature, missing_cosignature."""


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or any(ord(c) < 0x20 for c in name):
        raise NoteError("malformed", f"bad key name {name!r}")


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A trusted key: its name, signature type (ED25519 or COSIGNATURE_V1) and Ed25519 public key."""
    name: str
    sig_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    def vkey(self) -> str:
        key = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{key}"

    def check(self, text: str, sig: bytes) -> int | None:
        """Verify one signature over the note text. Returns the cosignature's timestamp (0 for a
        plain Ed25519 signature), or None if it does not verify."""
        msg, raw = text.encode(), sig
        ts = 0
        if self.sig_type == COSIGNATURE_V1:
            if len(sig) != 8 + 64:
                return None
            ts = struct.unpack(">Q", sig[:8])[0]
            if ts >= 1 << 63:
                return None
            msg, raw = cosigned_message(text, ts), sig[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(raw, msg)
        except (InvalidSignature, ValueError):
            return None
        return ts


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class Signer:
    name: str
    sig_type: int
    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, name: str, sig_type: int = ED25519) -> Signer:
        _check_name(name)
        return cls(name, sig_type, Ed25519PrivateKey.generate())

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.sig_type, _raw(self.private.public_key()))

    def skey(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        kid = self.verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{kid}+{base64.b64encode(bytes([self.sig_type]) + seed).decode()}"

    def sign_line(self, text: str, timestamp: int = 0) -> str:
        """The signature line over `text`; a cosigner signs at `timestamp` (unix seconds)."""
        if self.sig_type == COSIGNATURE_V1:
            if not 0 < timestamp < 1 << 63:
                raise ValueError("a cosignature needs a timestamp")
            sig = struct.pack(">Q", timestamp) + self.private.sign(cosigned_message(text, timestamp))
        else:
            sig = self.private.sign(text.encode())
        return f"{DASH} {self.name} {base64.b64encode(self.verifier.key_id + sig).decode()}\n"


def _b64(s: str, what: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("malformed", f"{what} is not base64") from None


def _key_parts(s: str, n: int, what: str) -> list[str]:
    parts = s.strip().split("+", n - 1)  # the base64 part may hold "+" too
    if len(parts) != n:
        raise NoteError("malformed", f"not a {what}")
    return parts


def parse_vkey(s: str) -> Verifier:
    name, kid, rest = _key_parts(s, 3, "verifier key (name+keyid+key)")
    _check_name(name)
    raw = _b64(rest, "the verifier key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("malformed", "only Ed25519 keys (type 0x01 or 0x04) are supported")
    v = Verifier(name, raw[0], raw[1:])
    if v.key_id.hex() != kid.lower():
        raise NoteError("malformed", "the key id does not match the key")
    return v


def parse_skey(s: str) -> Signer:
    p = _key_parts(s, 5, "signer key (PRIVATE+KEY+name+keyid+key)")
    if p[0] != "PRIVATE" or p[1] != "KEY":
        raise NoteError("malformed", "not a signer key")
    _check_name(p[2])
    raw = _b64(p[4], "the signer key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("malformed", "only Ed25519 keys (type 0x01 or 0x04) are supported")
    signer = Signer(p[2], raw[0], Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if signer.verifier.key_id.hex() != p[3].lower():
        raise NoteError("malformed", "the key id does not match the key")
    return signer


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    sig: bytes

    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.sig).decode()}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_lines(self, lines: str) -> Note:
        """The note with more signature lines (e.g. a witness's), dropping exact repeats."""
        extra = parse_signature_lines(lines)
        return Note(self.text, self.signatures + tuple(s for s in extra if s not in self.signatures))


def parse_signature_lines(lines: str) -> tuple[Signature, ...]:
    out = []
    for line in lines.split("\n"):
        if not line:
            continue
        prefix = DASH + " "
        parts = line[len(prefix):].split(" ") if line.startswith(prefix) else []
        if len(parts) != 2:
            raise NoteError("malformed", "a signature line is '— <name> <base64>'")
        _check_name(parts[0])
        raw = _b64(parts[1], "a signature")
        if len(raw) < 5:
            raise NoteError("malformed", "a signature is shorter than its key id")
        out.append(Signature(parts[0], raw[:4], raw[4:]))
    if len(out) > MAX_SIGNATURES:
        raise NoteError("malformed", f"more than {MAX_SIGNATURES} signatures")
    return tuple(out)


def parse_note(data: str | bytes) -> Note:
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE:
            raise NoteError("malformed", f"a note is at most {MAX_NOTE} bytes")
        try:
            data = data.decode()
        except UnicodeDecodeError:
            raise NoteError("malformed", "a note is UTF-8") from None
    if len(data) > MAX_NOTE:
        raise NoteError("malformed", f"a note is at most {MAX_NOTE} bytes")
    if any(ord(c) < 0x20 and c != "\n" for c in data):
        raise NoteError("malformed", "control characters other than newline")
    cut = data.rfind("\n\n")
    if cut < 0 or not data.endswith("\n"):
        raise NoteError("malformed", "no blank line before the signatures, or no final newline")
    text, sigs = data[:cut + 1], data[cut + 2:]
    signatures = parse_signature_lines(sigs)
    if not signatures:
        raise NoteError("no_signature", "the note carries no signature")
    return Note(text, signatures)


def verify(note: Note, verifiers: list[Verifier]) -> dict[Verifier, int]:
    """Check every signature from a known key (name and key id match). Returns each known key whose
    signature verified, with its timestamp (0 unless a cosignature). Raises NoteError
    "bad_signature" if one known key's signature fails, "unknown_key" if no known key signed."""
    good: dict[Verifier, int] = {}
    by_id = {(v.name, v.key_id): v for v in verifiers}
    for s in note.signatures:
        v = by_id.get((s.name, s.key_id))
        if v is None:
            continue  # signed-note: ignore unknown keys
        ts = v.check(note.text, s.sig)
        if ts is None:
            raise NoteError("bad_signature", f"the signature of {v.name} does not verify")
        good[v] = ts
    if not good:
        raise NoteError("unknown_key", "no signature from a trusted key")
    return good


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()] + list(self.extensions)
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not x for x in lines[:-1]):
        raise NoteError("malformed", "a checkpoint is origin, size and root hash on non-empty lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not size_s.isdigit() or not size_s.isascii() or (size_s != "0" and size_s.startswith("0")):
        raise NoteError("malformed", "the tree size is a decimal number without leading zeros")
    root = _b64(root_s, "the root hash")
    if len(root) != HASH_LEN:
        raise NoteError("malformed", "the root hash is 32 bytes")
    size = int(size_s)
    if size == 0 and root != EMPTY_ROOT:
        raise NoteError("malformed", "an empty tree has the empty root hash")
    return Checkpoint(origin, size, root, tuple(lines[3:-1]))


def sign_checkpoint(cp: Checkpoint, log: Signer) -> Note:
    text = cp.text()
    return Note(text, parse_signature_lines(log.sign_line(text)))


def open_checkpoint(data: str | bytes, log: Verifier, witnesses: tuple[Verifier, ...] = ()
                    ) -> tuple[Checkpoint, Note, dict[Verifier, int]]:
    """Parse and verify a checkpoint note: signed by the log key (whose name is the origin) and
    cosigned by every witness in `witnesses`. Returns the checkpoint, the note and the witnesses'
    timestamps. Raises NoteError with a reason."""
    note = parse_note(data)
    cp = parse_checkpoint(note.text)
    if cp.origin != log.name:
        raise NoteError("unknown_key", f"the checkpoint is for {cp.origin!r}, not {log.name!r}")
    verify(note, [log])
    cosigned: dict[Verifier, int] = {}
    for w in witnesses:
        try:
            cosigned.update(verify(note, [w]))
        except NoteError as e:
            if e.reason == "unknown_key":
                raise NoteError("missing_cosignature", f"no cosignature from {w.name}") from None
            raise
    return cp, note, cosigned
