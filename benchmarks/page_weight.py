"""What the shopper's pages weigh over the wire (issue 13: the first page, `/`, at most 50 KB).

Run: python -m benchmarks.page_weight [--json]

The real app (cloud.http.app.create_app) on uvicorn on a loopback port, over a fresh SQLite
database with one campaign (base code 4919, a target URL) and one display. Debian's Chromium, driven
by Playwright, opens each page in a fresh context at phone size (390x844, touch, zh-CN), so nothing
is cached, and records every response it receives: the bytes on the wire are its status line and
headers plus its body as sent (Request.sizes(): responseHeadersSize + responseBodySize; the body is
what travelled, compressed if it was). Pages:

- blank: a one-line HTML page from a bare Starlette app on the same uvicorn, the same-run baseline
  (what any page costs in headers and framing);
- home: `/`, the first page;
- landing: `/c/4919` after typing the display's current code at `/`, in the same context (the
  style sheet is cached from `/`; the typing request's own 303 is counted apart, as `enter`);
- share: the landing page once the shopper has a share code (its QR code is inline SVG);
- refusal: `/?code=5555-12`, an unknown code.

Reported per page: requests, bytes (total, HTML, CSS, JS), and the ratio to the blank page; and
whether `/` is within the 50 KB (51,200 bytes) budget. Sizes do not depend on timing, so one run
is enough; they change only when the pages do.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Request, sync_playwright
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from cloud.http.app import create_app
from cloud.services import campaigns, merchants, provision
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.migrate import migrated_engine
from protocol.keys import rotation_key
from protocol.rotation import Rotor, format_code, window
from tests.browser import chromium_exe, serve

BUDGET = 50 * 1024
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
                         "device_scale_factor": 2, "locale": "zh-CN"}
BLANK = "<!doctype html><html lang=en><meta charset=utf-8><title>blank</title></html>"


def _kind(req: Request) -> str:
    ctype = (req.response().all_headers().get("content-type", "") if req.response() else "")  # type: ignore[union-attr]
    for k in ("html", "css", "javascript", "svg", "json"):
        if k in ctype:
            return "js" if k == "javascript" else k
    return "other"


def _record(page: Page) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    def done(req: Request) -> None:
        sz = req.sizes()
        got.append({"url": req.url, "kind": _kind(req), "status": req.response().status,  # type: ignore[union-attr]
                    "bytes": sz["responseHeadersSize"] + sz["responseBodySize"],
                    "body": sz["responseBodySize"]})
    page.on("requestfinished", done)
    return got


def _summary(rows: list[dict[str, Any]], blank: int | None) -> dict[str, Any]:
    total = sum(r["bytes"] for r in rows)
    out: dict[str, Any] = {"requests": len(rows), "bytes": total,
                           "by_kind": {k: sum(r["bytes"] for r in rows if r["kind"] == k)
                                       for k in sorted({r["kind"] for r in rows})},
                           "responses": [{"path": re.sub(r"^https?://[^/]+", "", r["url"]),
                                          "status": r["status"], "bytes": r["bytes"]} for r in rows]}
    if blank:
        out["over_blank"] = round(total / blank, 2)
    return out


def _visit(browser: Browser, steps: Callable[[Page], object]) -> list[dict[str, Any]]:
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    rows = _record(page)
    steps(page)
    page.wait_for_load_state("networkidle")
    ctx.close()
    return rows


def _world(db: Path) -> tuple[Settings, Any, str]:
    st = Settings(db_url=f"sqlite:///{db}", admin_key=secrets.token_hex(24), master_key=secrets.token_hex(32),
                  visitor_secret=secrets.token_hex(16))
    engine = migrated_engine(st.db_url, st.master_key)
    sf = vault.session_factory(engine, st)
    m = merchants.create_merchant(sf, "Shop A")
    c = campaigns.create(sf, m["merchant_id"], base_code="4919", slots=4, digits=2, period_s=600,
                         pool_minor=1000,
                         label_zh="A 店欢迎您", label_en="Welcome to Shop A", landing_zh="满 100 减 20。",
                         landing_en="20 off 100.", target_url="https://shop.example/")
    dev = provision.create_device(sf, c["campaign_id"], label="shelf 1")
    rot = Rotor(rotation_key(bytes.fromhex(dev["key"])), dev["slot"], 4, 2)
    return st, engine, format_code("4919", rot.value(window(time.time(), 600)), 2)


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mcode-weight-") as tmp:
        st, engine, code = _world(Path(tmp) / "cloud.db")
        blank_app = Starlette(routes=[Route("/", lambda _r: HTMLResponse(BLANK))])
        with serve(create_app(st, engine=engine)) as url, serve(blank_app) as blank_url, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_exe(), args=["--no-sandbox"])
            blank = _summary(_visit(browser, lambda pg: pg.goto(blank_url + "/")), None)
            pages = {"blank": blank}
            pages["home"] = _summary(_visit(browser, lambda pg: pg.goto(url + "/")), blank["bytes"])

            def enter(pg: Page, share: bool = False) -> None:
                pg.goto(url + "/")
                pg.fill("#code", code)
                pg.click("button[type=submit]")
                pg.wait_for_url(url + "/c/4919")
                if share:
                    pg.click("#get-share")
                    pg.wait_for_url(url + "/c/4919#share")
            rows = _visit(browser, enter)
            start = next(i for i, r in enumerate(rows) if "/?code=" in r["url"])
            pages["enter"] = _summary(rows[start:start + 1], blank["bytes"])
            pages["landing"] = _summary(rows[start + 1:], blank["bytes"])
            rows = _visit(browser, lambda pg: enter(pg, share=True))
            last = max(i for i, r in enumerate(rows) if "/share" in r["url"])
            pages["share"] = _summary(rows[last + 1:], blank["bytes"])
            pages["refusal"] = _summary(_visit(browser, lambda pg: pg.goto(url + "/?code=5555-12")),
                                        blank["bytes"])
            browser.close()
        engine.dispose()
    return {"benchmark": "page_weight", "budget_bytes": BUDGET, "viewport": "390x844 zh-CN, cold cache",
            "home_within_budget": pages["home"]["bytes"] <= BUDGET, "pages": pages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    res = measure()
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{'page':<9} {'requests':>8} {'bytes':>7} {'html':>6} {'css':>6} {'js':>6} {'x blank':>8}")
    for name, pg in res["pages"].items():
        k = pg["by_kind"]
        print(f"{name:<9} {pg['requests']:>8} {pg['bytes']:>7} {k.get('html', 0):>6} {k.get('css', 0):>6} "
              f"{k.get('js', 0):>6} {pg.get('over_blank', 1.0):>8}")
    print(f"/ within {BUDGET} bytes: {res['home_within_budget']}")


if __name__ == "__main__":
    main()
