"""A witness: fetches the log's latest checkpoint, checks it extends the last one it cosigned, cosigns
it (C2SP tlog-cosignature v1) and hands the cosignature back; on a fork or a rollback it raises an
alarm and never cosigns that log again until an operator looks.

The checks are tlog-witness's (add-checkpoint), run by pulling instead of being pushed to:
- the checkpoint must carry a valid signature of the log's key (its name is the origin);
- a smaller size than the one cosigned is a rollback;
- the same size with another root, or a consistency proof that does not verify, is a fork;
- the state (last cosigned checkpoint, or the alarm) is written atomically before the
  cosignature leaves this process.

Endpoints used (docs/trust.md): GET /log/checkpoint, GET /log/proof/consistency?from=M&to=N,
POST /log/cosignatures.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.messages import say
from protocol import merkle, note

OK, UNCHANGED, ERROR, ALARM = "cosigned", "unchanged", "error", "alarm"
EXIT = {OK: 0, UNCHANGED: 0, ERROR: 1, ALARM: 3}
TIMEOUT_S = 20.0
MAX_RESPONSE = 1024 * 1024


class Unreachable(Exception):
    """The log could not be asked (network, HTTP status, a body that is not what was asked for)."""


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]


class LogClient:
    """The three endpoints, over the standard library's HTTP client."""

    def __init__(self, base_url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _ask(self, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "text/plain; charset=utf-8"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:  # noqa: S310 (operator's URL)
                return bytes(r.read(MAX_RESPONSE))
        except urllib.error.HTTPError as e:
            raise Unreachable(f"HTTP {e.code} for {path}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise Unreachable(str(getattr(e, "reason", e))[:200]) from None

    def checkpoint(self) -> bytes:
        return self._ask("/log/checkpoint")

    def consistency(self, old: int, new: int) -> list[bytes]:
        raw = self._ask(f"/log/proof/consistency?from={old}&to={new}")
        try:
            proof = json.loads(raw)["proof"]
            hashes = [base64.b64decode(h, validate=True) for h in proof]
        except (ValueError, KeyError, TypeError) as e:
            raise Unreachable(f"a consistency proof that is not JSON {{'proof': [base64]}}: {e}") from None
        return hashes

    def post_cosignature(self, cosigned_note: str) -> None:
        self._ask("/log/cosignatures", cosigned_note.encode())


def load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    d = json.loads(path.read_text())
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    return d


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write then rename, fsyncing file and folder: a crash leaves the old state or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Witness:
    def __init__(self, client: LogClient, log_key: note.Verifier, key: note.Signer, state_path: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.log_key = log_key
        self.key = key
        self.state_path = state_path
        self.clock = clock

    def run_once(self) -> Outcome:
        try:
            state = load_state(self.state_path)
        except (OSError, ValueError) as e:
            return Outcome(ERROR, say("bad_state", state=self.state_path, why=e))
        if state.get("alarm"):
            a = state["alarm"]
            return Outcome(ALARM, say("alarm_stands", at=a.get("at_iso"), kind=a.get("kind"),
                                      state=self.state_path))
        try:
            return self._step(state)
        except Unreachable as e:
            return Outcome(ERROR, say("unreachable", url=self.client.base, why=e))

    def _step(self, state: dict[str, Any]) -> Outcome:
        raw = self.client.checkpoint()
        try:
            cp, _, _ = note.open_checkpoint(raw, self.log_key)
        except note.NoteError as e:
            return Outcome(ERROR, say("bad_checkpoint", why=e))
        text, seen = cp.text(), raw.decode()
        old_size = int(state.get("size", 0))
        old_root = base64.b64decode(state["root"]) if "root" in state else merkle.EMPTY_ROOT
        if cp.size < old_size:
            return self._alarm(state, "rollback", seen, old_size, cp.size)
        if cp.size == old_size:
            if cp.root != old_root:
                return self._alarm(state, "fork", seen, old_size, cp.size)
            self._deliver(state)
            return Outcome(UNCHANGED, say("unchanged", origin=cp.origin, size=cp.size))
        proof = self.client.consistency(old_size, cp.size) if old_size else []
        if not merkle.verify_consistency(old_size, cp.size, old_root, cp.root, proof):
            return self._alarm(state, "fork", seen, old_size, cp.size, proof)
        line = self.key.sign_line(text, int(self.clock()))
        state.update({"origin": cp.origin, "size": cp.size, "root": base64.b64encode(cp.root).decode(),
                      "cosigned": text + "\n" + line, "delivered": False})
        save_state(self.state_path, state)  # before the cosignature leaves (tlog-witness)
        self._deliver(state)
        return Outcome(OK, say("cosigned", origin=cp.origin, size=cp.size, old=old_size))

    def _deliver(self, state: dict[str, Any]) -> None:
        if state.get("delivered", True) or "cosigned" not in state:
            return
        try:
            self.client.post_cosignature(state["cosigned"])
        except Unreachable as e:
            print(say("post_failed", why=e, state=self.state_path))
            return
        state["delivered"] = True
        save_state(self.state_path, state)

    def _alarm(self, state: dict[str, Any], kind: str, seen: str, old: int, new: int,
               proof: list[bytes] | None = None) -> Outcome:
        now = self.clock()
        state["alarm"] = {"kind": kind, "at": int(now), "at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                  time.gmtime(now)),
                          "cosigned_size": old, "seen_size": new, "seen_checkpoint": seen,
                          "consistency_proof": [base64.b64encode(p).decode() for p in proof or []]}
        save_state(self.state_path, state)
        origin = self.log_key.name
        msg = say("alarm_" + kind, origin=origin, size=new, old=old, state=self.state_path)
        return Outcome(ALARM, msg)
