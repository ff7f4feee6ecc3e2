"""Simulated shoppers: walk up to a display, tap it with a phone, type the code they read,
share their personal code with friends, who come in through it and sometimes buy."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from dataclasses import dataclass, field

import httpx

from sim.devices import VirtualDevice
from sim.phone import Phone, Receipt

log = logging.getLogger(__name__)


@dataclass
class CrowdStats:
    taps: int = 0
    tap_failures: int = 0
    entries: int = 0
    shares: int = 0
    orders: int = 0
    order_replays_matched: int = 0
    resolve_errors: dict[str, int] = field(default_factory=dict)
    receipts: list[tuple[str, Receipt]] = field(default_factory=list)


@dataclass
class Crowd:
    api: str
    merchant_key: str
    devices: list[VirtualDevice]
    phone: Phone
    rng: random.Random
    pause_s: float = 0.3
    stats: CrowdStats = field(default_factory=CrowdStats)
    share_codes: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)

    async def _find(self, dev: VirtualDevice) -> str | None:
        name = str(dev.config.get("name", ""))
        if name not in self.addresses:
            self.addresses.update(await self.phone.find_displays(1.0))
        return self.addresses.get(name)

    async def _resolve(self, http: httpx.AsyncClient, code: str) -> str | None:
        r = await http.get(f"/r/{code}")
        if r.status_code != 200:
            err = r.json().get("code", str(r.status_code))
            self.stats.resolve_errors[err] = self.stats.resolve_errors.get(err, 0) + 1
            return None
        self.stats.entries += 1
        return str(r.json()["entry_id"])

    async def _at_display(self, http: httpx.AsyncClient) -> str | None:
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
        return await self._resolve(http, code)

    async def _one_shopper(self, http: httpx.AsyncClient) -> None:
        # each shopper is another phone: no visitor cookie until the server signs one for it
        http.cookies.clear()
        if self.share_codes and self.rng.random() < 0.5:
            entry = await self._resolve(http, self.rng.choice(self.share_codes))
        else:
            entry = await self._at_display(http)
        if entry is None:
            return
        if self.rng.random() < 0.6:
            r = await http.post(f"/entries/{entry}/share")
            if r.status_code in (200, 201):
                self.share_codes.append(r.json()["share_code"])
                self.stats.shares += 1
        if self.rng.random() < 0.35:
            await self._order(http, entry)

    async def _order(self, http: httpx.AsyncClient, entry: str) -> None:
        key = secrets.token_hex(8)
        body = {"entry_id": entry, "amount_minor": self.rng.randrange(1000, 50000)}
        headers = {"Idempotency-Key": key, "Authorization": f"Bearer {self.merchant_key}"}
        r = await http.post("/orders", json=body, headers=headers)
        if r.status_code not in (200, 201):
            log.warning("order refused: %s %s", r.status_code, r.text)
            return
        self.stats.orders += 1
        if self.rng.random() < 0.2:  # the shop's till retries: must get the same answer, no new order
            again = await http.post("/orders", json=body, headers=headers)
            if again.json() == r.json():
                self.stats.order_replays_matched += 1

    async def run(self, stop: asyncio.Event) -> CrowdStats:
        async with httpx.AsyncClient(base_url=self.api, timeout=10) as http:
            while not stop.is_set():
                try:
                    await self._one_shopper(http)
                except httpx.HTTPError as e:
                    log.warning("shopper request failed: %r", e)
                try:
                    await asyncio.wait_for(stop.wait(), self.pause_s)
                except TimeoutError:
                    pass
        return self.stats
