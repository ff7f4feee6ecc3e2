"""Simulated shoppers: walk up to a display, tap it with a phone, type the code they read, share
their personal code with friends, who come in through it and sometimes buy, online or at the till.

Each shopper is a separate person: their own HTTP client, so their own visitor cookie, signed by
the cloud at their first code. A friend opens a sharer's code on their own phone, so a share chain
has two people in it and the sharer is paid when the friend buys (self-referral pays nothing)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from sim.devices import VirtualDevice
from sim.phone import Phone, Receipt

log = logging.getLogger(__name__)
MAX_SHARERS = 200  # sharers kept (with their cookies) for friends to come through
CHECKOUT_CODE = re.compile(r'data-code="(\d{6})"')
HTML = {"Accept": "text/html"}


@dataclass
class CrowdStats:
    taps: int = 0
    tap_failures: int = 0
    entries: int = 0
    entries_via_share: int = 0
    shares: int = 0
    orders: int = 0
    orders_online: int = 0
    orders_till: int = 0
    orders_via_share: int = 0
    paid_to_sharers_minor: int = 0
    order_replays_matched: int = 0
    resolve_errors: dict[str, int] = field(default_factory=dict)
    sale_errors: dict[str, int] = field(default_factory=dict)
    receipts: list[tuple[str, Receipt]] = field(default_factory=list)

    def line(self) -> str:
        """The demo's live line (under 80 columns)."""
        return (f"taps {self.taps} · entries {self.entries} · shares {self.shares} · orders {self.orders} "
                f"(online {self.orders_online}, till {self.orders_till}) · payouts "
                f"¥{self.paid_to_sharers_minor / 100:,.2f}")


@dataclass
class Person:
    """One shopper's phone: their own cookies, and the share codes they made."""
    http: httpx.AsyncClient
    codes: list[str] = field(default_factory=list)


def _count(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1


def _error_code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("code", r.status_code))
    except ValueError:
        return str(r.status_code)


@dataclass
class Crowd:
    api: str
    merchant_key: str
    devices: list[VirtualDevice]
    phone: Phone
    rng: random.Random
    pause_s: float = 0.3
    stats: CrowdStats = field(default_factory=CrowdStats)
    sharers: list[Person] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)

    def _person(self) -> Person:
        return Person(httpx.AsyncClient(base_url=self.api, timeout=10))

    async def _find(self, dev: VirtualDevice) -> str | None:
        name = str(dev.config.get("name", ""))
        if name not in self.addresses:
            self.addresses.update(await self.phone.find_displays(1.0))
        return self.addresses.get(name)

    async def _resolve(self, who: Person, code: str) -> dict[str, Any] | None:
        r = await who.http.get(f"/r/{code}", headers={"Accept": "application/json"})
        if r.status_code != 200:
            _count(self.stats.resolve_errors, _error_code(r))
            return None
        self.stats.entries += 1
        entry: dict[str, Any] = r.json()
        self.stats.entries_via_share += entry["depth"] > 0
        return entry

    async def _at_display(self, who: Person) -> dict[str, Any] | None:
        dev = self.rng.choice(self.devices)
        code = dev.shown_code()
        if code is None:  # display not synced yet: nothing to read
            return None
        address = await self._find(dev)
        if address is not None:
            try:
                receipt = await self.phone.tap(address)
                self.stats.taps += 1
                self.stats.receipts.append((dev.device_id, receipt))
            except Exception as e:  # a busy or vanished display: the shopper just types the code
                self.stats.tap_failures += 1
                log.info("tap on %s failed: %r", dev.device_id, e)
        return await self._resolve(who, code)

    async def _one_shopper(self) -> None:
        who = self._person()
        kept = False
        try:
            if self.sharers and self.rng.random() < 0.5:  # a friend opens a sharer's code
                friend = self.rng.choice(self.sharers)
                entry = await self._resolve(who, self.rng.choice(friend.codes))
            else:
                entry = await self._at_display(who)
            if entry is None:
                return
            if self.rng.random() < 0.6:
                r = await who.http.post(f"/entries/{entry['entry_id']}/share")
                if r.status_code in (200, 201):
                    who.codes.append(r.json()["share_code"])
                    self.stats.shares += 1
                    if len(self.sharers) < MAX_SHARERS:
                        self.sharers.append(who)
                        kept = True
            if self.rng.random() < 0.35:
                buy = self._buy_online if self.rng.random() < 0.5 else self._buy_at_till
                answer = await buy(who, entry["entry_id"])
                if answer is not None:
                    self._booked(answer, entry)
        finally:
            if not kept:
                await who.http.aclose()

    def _booked(self, answer: dict[str, Any], entry: dict[str, Any]) -> None:
        self.stats.orders += 1
        if answer["channel"] == "online":
            self.stats.orders_online += 1
        else:
            self.stats.orders_till += 1
        self.stats.orders_via_share += entry["depth"] > 0
        self.stats.paid_to_sharers_minor += int(answer["paid_minor"])

    async def _sale(self, send: Any) -> dict[str, Any] | None:
        """A sale sent by `send(idem)`; sometimes sent again with the same key (a retry after a lost
        answer): it must get the same answer and no new order."""
        idem = secrets.token_hex(8)
        r = await send(idem)
        if r.status_code not in (200, 201):
            _count(self.stats.sale_errors, _error_code(r))
            log.warning("sale refused: %s %s", r.status_code, r.text[:300])
            return None
        if self.rng.random() < 0.2:
            again = await send(idem)
            self.stats.order_replays_matched += again.json() == r.json()
        answer: dict[str, Any] = r.json()
        return answer

    async def _buy_online(self, who: Person, entry_id: str) -> dict[str, Any] | None:
        """The landing page's button: the cloud redirects to the shop with a click token; the shop's
        server reports the sale (sim/demo_site.py: POST /shop/buy, then POST /sales/online)."""
        r = await who.http.get(f"/go/{entry_id}", headers=HTML)
        if r.status_code != 303:
            _count(self.stats.sale_errors, _error_code(r))
            return None
        shop = r.headers["location"]
        token = parse_qs(urlsplit(shop).query).get("mcode_click", [""])[0]
        amount = f"{self.rng.randrange(1000, 50000) / 100:.2f}"

        async def send(idem: str) -> httpx.Response:
            return await who.http.post(urljoin(shop, "/shop/buy"), headers={"Accept": "application/json"},
                                       data={"mcode_click": token, "amount": amount, "idem": f"shop:{idem}"})
        return await self._sale(send)

    async def _buy_at_till(self, who: Person, entry_id: str) -> dict[str, Any] | None:
        """Pay at the counter: the phone shows a checkout code, the cashier's till sends it with the
        amount (POST /sales/till, the till page's API twin)."""
        r = await who.http.get(f"/e/{entry_id}/pay", headers=HTML)
        m = CHECKOUT_CODE.search(r.text) if r.status_code == 200 else None
        if m is None:
            _count(self.stats.sale_errors, _error_code(r) if r.status_code != 200 else "no_checkout_code")
            return None
        body = {"checkout_code": m.group(1), "amount_minor": self.rng.randrange(1000, 50000)}
        async with httpx.AsyncClient(base_url=self.api, timeout=10) as till:  # the shop's, not the phone's

            async def send(idem: str) -> httpx.Response:
                return await till.post("/sales/till", json=body, headers={
                    "Idempotency-Key": f"till:{idem}", "Authorization": f"Bearer {self.merchant_key}"})
            return await self._sale(send)

    async def run(self, stop: asyncio.Event) -> CrowdStats:
        """Shoppers one after another until `stop`; then close() the sharers' phones."""
        while not stop.is_set():
            try:
                await self._one_shopper()
            except httpx.HTTPError as e:
                log.warning("shopper request failed: %r", e)
            try:
                await asyncio.wait_for(stop.wait(), self.pause_s)
            except TimeoutError:
                pass
        return self.stats

    async def close(self) -> None:
        for p in self.sharers:
            await p.http.aclose()

    async def top_sharer(self) -> dict[str, Any] | None:
        """The sharer whose own /me/earnings shows the most (asked with their cookie, as their phone)."""
        best: dict[str, Any] | None = None
        for p in self.sharers:
            try:
                r = await p.http.get("/me/earnings")
            except httpx.HTTPError:
                return best
            if r.status_code == 200 and (best is None or r.json()["balance_minor"] > best["balance_minor"]):
                best = r.json() | {"codes": p.codes}
        return best
