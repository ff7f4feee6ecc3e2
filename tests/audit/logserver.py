"""A tiny log served over real HTTP (http.server) with the endpoints docs/trust.md defines, built
from protocol/merkle.py and protocol/note.py. It can be made to lie: fork, roll back, or serve a
consistency proof that does not fit."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from protocol import merkle, note


class Log:
    def __init__(self, key: note.Signer) -> None:
        self.key = key
        self.leaves: list[bytes] = []
        self.cosignatures: list[str] = []
        self.bad_proofs = False

    def append(self, *data: bytes) -> None:
        self.leaves += [merkle.leaf_hash(d) for d in data]

    def fork(self, at: int) -> None:
        """Rewrite history: leaf `at` becomes something else (an edited event)."""
        self.leaves[at] = merkle.leaf_hash(b"edited %d" % at)

    def rollback(self, to: int) -> None:
        del self.leaves[to:]

    def checkpoint(self) -> str:
        cp = note.Checkpoint(self.key.name, len(self.leaves), merkle.root(self.leaves))
        return note.sign_checkpoint(cp, self.key).render()

    def consistency(self, old: int, new: int) -> list[bytes]:
        proof = merkle.consistency_proof(old, new, self.leaves)
        if self.bad_proofs and proof:
            proof[0] = merkle.leaf_hash(b"lie")
        return proof


class _Handler(BaseHTTPRequestHandler):
    log: Log

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/log/checkpoint":
            self._send(200, self.log.checkpoint().encode())
        elif u.path == "/log/proof/consistency":
            import base64

            proof = self.log.consistency(int(q["from"]), int(q["to"]))
            body: dict[str, Any] = {"from": int(q["from"]), "to": int(q["to"]),
                                    "proof": [base64.b64encode(p).decode() for p in proof]}
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode()
        if self.path != "/log/cosignatures":
            self._send(404, b"not found\n")
            return
        self.log.cosignatures.append(body)
        self._send(204, b"")

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class LogServer:
    def __init__(self, log: Log) -> None:
        handler = type("H", (_Handler,), {"log": log})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LogServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
