"""The demo's own small web site, next to the cloud: what exists only because the world is virtual.

- GET /displays: every virtual display with the code it shows now and its screen as a PNG,
  refreshed every 5 s (a person at the demo reads the code here, as they would off the glass);
  /displays.json for scripts. Served by the demo, not the cloud: only the demo holds the virtual
  devices' flash (display.txt, display.pbm), and the cloud must not grow demo-only routes.
- GET /shop: the merchant's online shop that a campaign's target URL points at. A shopper
  arrives from the cloud's GET /go/{entry} with ?mcode_click=<token>; "Buy" (POST /shop/buy) makes
  this shop's server report the sale to the cloud (POST /sales/online, with the merchant's key,
  server to server), as a real shop would.

A threading stdlib server on loopback: no script, no outside request, bilingual labels."""

from __future__ import annotations

import html
import io
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sim.devices import VirtualDevice

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{head}<title>{title}</title>
<style>body{{font-family:system-ui,"WenQuanYi Micro Hei",sans-serif;max-width:40rem;margin:0 auto;
padding:1rem}}
.code{{font-size:2.4rem;font-weight:bold;letter-spacing:.08em}} img{{image-rendering:pixelated;width:100%;
max-width:296px;border:1px solid #999}} ul{{padding:0}} li{{margin:0 0 1.2rem;list-style:none}}
button,input{{font-size:1.2rem;min-height:48px}} .en{{color:#444}}</style></head><body>{body}</body></html>"""
TOKEN_PARAM = "mcode_click"  # cloud/services/clicks.py adds it to the target URL


def pbm_to_png(raw: bytes) -> bytes:
    from PIL import Image  # the cloud extra's Pillow; only this page needs it

    out = io.BytesIO()
    Image.open(io.BytesIO(raw)).save(out, "PNG")
    return out.getvalue()


@dataclass
class Shop:
    """The merchant's shop server: reports a sale with the click token its visitor brought."""
    api: str
    merchant_key: str

    def report_sale(self, click_token: str, amount_minor: int, idem: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.api}/sales/online", timeout=10,
                          json={"click_token": click_token, "amount_minor": amount_minor},
                          headers={"Authorization": f"Bearer {self.merchant_key}",
                                   "Idempotency-Key": idem or f"shop:{secrets.token_hex(8)}"})


def _displays_html(devices: list[VirtualDevice], cloud: str) -> str:
    items = []
    for d in devices:
        cfg = d.config
        code = d.shown_code() or "…"
        items.append(f'<li><div>{html.escape(str(cfg.get("label", d.device_id)))} · {d.device_id}</div>'
                     f'<div class="code" data-device="{d.device_id}">{html.escape(code)}</div>'
                     f'<img src="/displays/{d.device_id}.png" alt="{html.escape(code)}"></li>')
    body = ("<h1>显示屏 <span class='en' lang='en'>Displays</span></h1>"
            f"<p><a href='{html.escape(cloud)}/'>输入显示屏上的码 <span class='en' lang='en'>Type the code a "
            "display shows</span></a></p>"
            f"<ul>{''.join(items)}</ul>")
    return PAGE.format(head='<meta http-equiv="refresh" content="5">', title="Displays · 显示屏", body=body)


def _shop_html(token: str, done: str = "") -> str:
    t = html.escape(token)
    form = (f'<form method="post" action="/shop/buy"><input type="hidden" name="{TOKEN_PARAM}" value="{t}">'
            '<label>金额 <span class="en" lang="en">Amount</span> (¥) '
            '<input name="amount" inputmode="decimal" value="88.00"></label> '
            '<button type="submit">购买 <span lang="en">Buy</span></button></form>') if token else ""
    came = f"<p>mcode_click: <code>{t}</code></p>" if token else ""
    body = f"<h1>演示网店 <span class='en' lang='en'>Demo shop</span></h1>{done}{came}{form}"
    return PAGE.format(head="", title="Demo shop · 演示网店", body=body)


class _Handler(BaseHTTPRequestHandler):
    site: DemoSite

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        devices = self.site.devices()
        if url.path in ("/", "/displays"):
            self._send(200, _displays_html(devices, self.site.shop.api).encode(), "text/html; charset=utf-8")
        elif url.path == "/displays.json":
            rows = [{"device_id": d.device_id, "label": d.config.get("label", ""), "code": d.shown_code()}
                    for d in devices]
            self._send(200, json.dumps(rows).encode(), "application/json")
        elif url.path.startswith("/displays/") and url.path.endswith(".png"):
            dev = next((d for d in devices if url.path == f"/displays/{d.device_id}.png"), None)
            pbm = dev.flash / "display.pbm" if dev is not None else None
            if pbm is None or not pbm.exists():
                self._send(404, b"no such display", "text/plain")
            else:
                self._send(200, pbm_to_png(pbm.read_bytes()), "image/png")
        elif url.path == "/shop":
            token = parse_qs(url.query).get(TOKEN_PARAM, [""])[0][:64]
            self._send(200, _shop_html(token).encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/shop/buy":
            self._send(404, b"not found", "text/plain")
            return
        n = min(int(self.headers.get("Content-Length") or 0), 4096)
        form = parse_qs(self.rfile.read(n).decode("utf-8", "replace"))
        token = form.get(TOKEN_PARAM, [""])[0][:64]
        try:
            amount = round(float(form.get("amount", ["0"])[0]) * 100)
        except ValueError:
            amount = 0
        r = self.site.shop.report_sale(token, amount, form.get("idem", [None])[0])
        if "application/json" in self.headers.get("Accept", ""):
            self._send(r.status_code, r.content, "application/json")
            return
        ok = r.status_code in (200, 201)
        order = r.json().get("order_id") if ok else None
        msg = (f"<p>谢谢！订单 #{order} · <span lang='en'>Thank you! Order #{order}</span></p>" if ok else
               f"<p role='alert'>{html.escape(r.json().get('message_zh', ''))} · "
               f"<span lang='en'>{html.escape(r.json().get('message', ''))}</span></p>")
        self._send(200 if ok else r.status_code, _shop_html(token if not ok else "", msg).encode(),
                   "text/html; charset=utf-8")


class DemoSite:
    """Serves /displays and /shop on 127.0.0.1:<port> from a thread until stop()."""

    def __init__(self, devices: Callable[[], list[VirtualDevice]], shop: Shop, port: int = 0) -> None:
        self.devices = devices
        self.shop = shop
        handler = type("Handler", (_Handler,), {"site": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DemoSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
