"""Proof bundles: one payout's provenance, checkable offline (CPython only; docs/trust.md).

    {"format": "mcode-proof-bundle/v1",
     "checkpoint": "<the checkpoint note, with the log's signature and witnesses' cosignatures>",
     "links": [{"index": <leaf index>, "leaf": "<base64 leaf bytes>",
                "proof": ["<base64 hash>", ...],            # inclusion proof in that checkpoint
                "envelope": "<base64>"}, ...]}             # batch leaves only: the signed envelope

The cloud writes bundles (make); `mcode verify` reads them (parse). Every link is proved against
the one checkpoint in the bundle; nothing in a bundle is trusted until verified.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from protocol.errors import ReasonError
from protocol.merkle import HASH_LEN

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

FORMAT = "mcode-proof-bundle/v1"
MAX_BUNDLE = 16 * 1024 * 1024
MAX_LINKS = 10_000


class BundleError(ReasonError):
    """A file that is not a proof bundle; reason: malformed."""


@dataclass(frozen=True)
class Link:
    index: int
    leaf: bytes
    proof: tuple[bytes, ...]
    envelope: bytes | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "leaf": _b64(self.leaf),
                             "proof": [_b64(p) for p in self.proof]}
        if self.envelope is not None:
            d["envelope"] = _b64(self.envelope)
        return d


@dataclass(frozen=True)
class Bundle:
    checkpoint: str
    links: tuple[Link, ...]

    def dumps(self) -> str:
        return json.dumps({"format": FORMAT, "checkpoint": self.checkpoint,
                           "links": [x.as_json() for x in self.links]}, indent=1) + "\n"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise BundleError("malformed", f"{what} is not a base64 string")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError("malformed", f"{what} is not base64") from None


def _link(i: int, d: Any) -> Link:
    if not isinstance(d, dict) or not isinstance(d.get("index"), int) or d["index"] < 0 \
            or not isinstance(d.get("proof"), list) or len(d["proof"]) > 64:
        raise BundleError("malformed", f"link {i}: needs index, leaf and proof")
    proof = tuple(_unb64(p, f"link {i} proof") for p in d["proof"])
    if any(len(p) != HASH_LEN for p in proof):
        raise BundleError("malformed", f"link {i}: a proof hash is 32 bytes")
    env = _unb64(d["envelope"], f"link {i} envelope") if "envelope" in d else None
    return Link(d["index"], _unb64(d.get("leaf"), f"link {i} leaf"), proof, env)


def parse(data: bytes | str) -> Bundle:
    if len(data) > MAX_BUNDLE:
        raise BundleError("malformed", f"a bundle is at most {MAX_BUNDLE} bytes")
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError("malformed", f"not JSON: {str(e)[:100]}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise BundleError("malformed", f"not a {FORMAT} file")
    links = d.get("links")
    if not isinstance(d.get("checkpoint"), str) or not isinstance(links, list) or len(links) > MAX_LINKS:
        raise BundleError("malformed", "needs a checkpoint and a list of links")
    return Bundle(d["checkpoint"], tuple(_link(i, x) for i, x in enumerate(links)))
