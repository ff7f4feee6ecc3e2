"""`mcode cloud run`'s access log, read from the real process: never a query string or an
Authorization value, and bounded lines.

Regresses: uvicorn's default access log wrote `"GET /merchant?key=mk_… HTTP/1.1" 200` in full,
and a 60,000-digit code grew the log by its length on every request."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from cloud.http.access_log import MAX_LINE, AccessLogFilter, access_line
from sim.ports import free_port, wait_port
from sim.process import stop_process

SECRET_KEY = "mk_" + "S3CRET" * 7
ADMIN = "ak_" + "ADMINSECRET" * 4


def test_access_log_has_no_query_no_authorization_and_bounded_lines(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, MCODE_CLOUD_DB_URL=f"sqlite:///{tmp_path / 'cloud.db'}",
               MCODE_CLOUD_ADMIN_KEY=ADMIN, MCODE_CLOUD_MASTER_KEY=secrets.token_hex(32), COLUMNS="80")
    log = tmp_path / "cloud.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mcode.cli", "cloud", "run", "--no-ingest", "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            wait_port(port, timeout=30)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base) as c:
                assert c.get("/merchant", params={"key": SECRET_KEY}).status_code == 400
                assert c.get("/campaigns", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 400
                assert c.get("/healthz", params={"visitor": "v" * 40, "token": SECRET_KEY}).status_code == 200
                long = c.get("/r/" + "7" * 10_000)
                assert long.status_code in (400, 404, 414, 429)
                assert c.get("/r/1%0A2").status_code in (400, 404)  # a newline, decoded in the path
        finally:
            stop_process(proc)
    text = log.read_text("utf-8", "replace")
    access = [ln for ln in text.splitlines() if "uvicorn.access" in ln]
    assert any('"GET /merchant HTTP/1.1" 400' in ln for ln in access), text[-3000:]
    assert any('"GET /healthz HTTP/1.1" 200' in ln for ln in access), text[-3000:]
    assert SECRET_KEY not in text and ADMIN not in text and "S3CRET" not in text
    assert "?" not in "".join(access) and "v" * 40 not in text
    assert len(access) == 5
    for ln in access:
        assert len(ln.split("uvicorn.access ", 1)[1]) <= MAX_LINE, ln[:120]
    print(f"longest access line: {max(len(ln) for ln in access)} characters (path of 10,000 digits)")


def test_the_filter_on_uvicorn_records() -> None:
    """What uvicorn hands the access logger: (client, method, path with query, version, status)."""
    import logging

    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:5", "GET", f"/merchant?key={SECRET_KEY}", "1.1", 200), None)
    assert AccessLogFilter().filter(rec)
    assert rec.getMessage() == '127.0.0.1:5 "GET /merchant HTTP/1.1" 200'
    assert len(access_line("c", "GET", "/r/" + "9" * 60_000, "1.1", 404)) <= MAX_LINE
    assert "\\x0a" in access_line("c", "GET", "/a\nforged line", "1.1", 404)
    entry = "9138dc97f7c62017ca0918447c7e433a"  # a shopper's entry id: a bearer secret
    assert access_line("c", "POST", f"/entries/{entry}/share", "1.1", 201) == \
        'c "POST /entries/9138…/share HTTP/1.1" 201'
    assert "8cc5d710a346492d" in access_line("c", "GET", "/devices/8cc5d710a346492d", "1.1", 200)
