"""Web pages in headless Chromium (Debian's `chromium` package; `./run test` installs it): serve an
ASGI app on a loopback port, dump the DOM Chromium renders, take a screenshot."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

BROWSER_WAIT_S = 120.0  # an upper bound on one Chromium run, not a performance threshold
SERVER_WAIT_S = 20.0  # an upper bound on the server's start and stop

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium_exe() -> str:
    """Chromium's path; raises (a test that needs a browser must not silently pass without one)."""
    for name in ("chromium", "chromium-browser"):
        exe = shutil.which(name)
        if exe:
            return exe
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    raise RuntimeError("Chromium is missing: apt-get install -y --no-install-recommends chromium "
                       "(./run test installs it)")


def _chromium(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="mcode-chromium-") as profile:
        cmd = [chromium_exe(), *FLAGS, f"--user-data-dir={profile}", *extra, url]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_WAIT_S, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"chromium exited {res.returncode}: {res.stderr[-2000:]}")
    return res


def dump_dom(url: str) -> str:
    """The DOM (serialised HTML) after Chromium loaded `url` and ran its scripts."""
    return _chromium(url, "--dump-dom").stdout


def screenshot(url: str, path: Path, width: int = 1024, height: int = 768) -> Path:
    """A PNG of `url` at `width` x `height` CSS pixels, written to `path`."""
    path = Path(path).resolve()
    path.unlink(missing_ok=True)
    _chromium(url, f"--screenshot={path}", f"--window-size={width},{height}")
    if not path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_WAIT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)  # uvicorn has no event to wait on: poll its flag
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SERVER_WAIT_S)
        sock.close()
