"""The guess limits are kept in the database, so two API processes allow the rate of one (issue 12,
finding C: each process kept its own counts, so N processes allowed N times the documented
rate). Two real uvicorn processes on one database (a SQLite file, or the PostgreSQL test server)
are hammered with wrong guesses at one campaign from threads; the lookups they let through add up
to one process's budgets. Also: uvicorn started as `mcode cloud run` starts it believes no
X-Forwarded-For by default (uvicorn alone trusts 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cloud.store.engine import SessionFactory
from protocol.rotation import window
from tests.cloud.conftest import provision_world
from tests.cloud.test_ratelimit import wrong_code
from tests.cloud.test_resolve_orders import PERIOD, code_at

ROOT = Path(__file__).resolve().parents[2]
CLEAN_BURST, FAIL_BURST = 5, 10
THREADS = 4
LIMITS = {"rate_client_burst": 10_000, "rate_client_per_s": 1000.0,
          "rate_campaign_clean_burst": CLEAN_BURST, "rate_campaign_clean_per_s": 0.0001,
          "rate_campaign_fail_burst": FAIL_BURST, "rate_campaign_fail_per_s": 0.0001,
          "rate_address_fail_burst": 2, "rate_address_fail_per_s": 0.0001, "cookie_secure": False}
# One API process as `mcode cloud run` makes it (proxy_options), on the database given.
LAUNCH = """
import dataclasses, json, sys
import uvicorn
from cloud.cli.main import proxy_options
from cloud.http.app import create_app
from tests.cloud.conftest import SETTINGS
st = dataclasses.replace(SETTINGS, db_url=sys.argv[1], **json.loads(sys.argv[3]))
uvicorn.run(create_app(st), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", **proxy_options(st))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"API process exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("API process did not become ready")


@pytest.fixture
def two_apis(db_url: str, sf: SessionFactory) -> Iterator[list[str]]:
    """Two API processes on the test's database (migrated by the `sf` fixture's engine)."""
    procs, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            p = subprocess.Popen([sys.executable, "-c", LAUNCH, db_url, str(port), json.dumps(LIMITS)],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(p)
            urls.append(f"http://127.0.0.1:{port}")
            _wait_ready(p, urls[-1])
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
            if p.stderr is not None:
                p.stderr.close()


def test_two_processes_allow_the_rate_of_one(two_apis: list[str], sf: SessionFactory) -> None:
    world = provision_world(sf, base="6060")
    w = window(time.time(), PERIOD)
    wrongs = [wrong_code(world, w, i) for i in range(6)]

    def hammer(url: str) -> list[int]:
        with httpx.Client(base_url=url, timeout=30) as c:
            return [c.get(f"/r/{wrongs[i % len(wrongs)]}").status_code for i in range(25)]

    with ThreadPoolExecutor(THREADS) as pool:
        answers = [s for got in pool.map(hammer, two_apis * 2) for s in got]
    looked_up = sum(1 for s in answers if s in (404, 410))
    assert set(answers) <= {404, 410, 429}
    # one process's budgets: the fail budget, plus clean guesses (two per address, a few more if
    # concurrent requests saw the address clean at once), plus at most one per concurrent request
    # that looked at a budget's last token at once; never one set of budgets per process (30)
    assert FAIL_BURST + 2 <= looked_up <= FAIL_BURST + CLEAN_BURST + THREADS - 1, answers
    assert answers.count(429) == 100 - looked_up

    # a spoofed X-Forwarded-For from 127.0.0.1 does not make a new, clean client: still refused
    right = code_at(world, window(time.time(), PERIOD))
    for url in two_apis:
        r = httpx.get(f"{url}/r/{right}", headers={"X-Forwarded-For": "203.0.113.77"})
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
