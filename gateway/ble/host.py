"""One bumble host (a BLE "adapter") per running event loop and transport.

bumble objects belong to the loop that made them, so hosts are keyed by loop: the
first scanner or client that needs a host on a loop opens it (a fresh random static
address, a fresh virtual controller on the radio hub), and later ones share it. Close
the current loop's hosts with ``aclose_hosts()`` (or ``gateway.ble.factory.ble_session``)
before the loop ends; a loop that is closed without that just drops its TCP socket,
which the hub treats as the adapter vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Callable

from bumble import core, hci
from bumble.device import Advertisement, Connection, Device
from bumble.transport import open_transport
from bumble.transport.common import Transport

log = logging.getLogger(__name__)

# Slack on top of bumble's own connect timeout before the controller is presumed to
# have ignored Create Connection Cancel (stock bumble controllers do).
CONNECT_GUARD_S = 2.0

AdvertisementHandler = Callable[[Advertisement], None]

# loop -> transport spec -> host. Empty until a backend opens a host; nothing BLE is
# built at import time.
_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BumbleHost]] = (
    weakref.WeakKeyDictionary())


def random_static_address() -> hci.Address:
    raw = bytearray(os.urandom(6))
    raw[0] |= 0xC0  # random static: two top bits set (MSB first here)
    return hci.Address(bytes(reversed(raw)), hci.Address.RANDOM_DEVICE_ADDRESS)


def parse_address(address: str) -> hci.Address:
    """A bleak address string "C0:11:22:33:44:55" as a random LE address (our air has no public ones)."""
    return hci.Address(address.upper(), hci.Address.RANDOM_DEVICE_ADDRESS)


def address_str(address: hci.Address) -> str:
    return address.to_string(with_type_qualifier=False)


class BumbleHost:
    """A bumble Device on one transport, shared by the scanners and clients of one loop."""

    def __init__(self, spec: str, transport: Transport, device: Device) -> None:
        self.spec = spec
        self.transport = transport
        self.device = device
        self.closed = False
        self._connect_lock = asyncio.Lock()  # the controller allows one pending connect
        self._scan_handlers: dict[object, AdvertisementHandler] = {}
        self._scan_lock = asyncio.Lock()
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)

    @classmethod
    async def shared(cls, spec: str) -> BumbleHost:
        """The host for ``spec`` on the running loop, opened on first use."""
        per_loop = _hosts.setdefault(asyncio.get_running_loop(), {})
        host = per_loop.get(spec)
        if host is None or host.closed:
            host = await cls.open(spec)
            per_loop[spec] = host
        return host

    @classmethod
    async def open(cls, spec: str) -> BumbleHost:
        transport = await open_transport(spec)
        try:
            device = Device.with_hci("mcode-gateway", random_static_address(), transport.source,
                                     transport.sink)
            await device.power_on()
        except BaseException:
            await transport.close()
            raise
        log.debug("bumble host %s up on %s", device.random_address, spec)
        return cls(spec, transport, device)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        per_loop = _hosts.get(asyncio.get_running_loop(), {})
        if per_loop.get(self.spec) is self:
            del per_loop[self.spec]
        # Closing the socket is enough: the hub drops the controller and its links.
        with contextlib.suppress(Exception):
            await self.transport.close()

    # -- scanning -------------------------------------------------------------
    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for handler in list(self._scan_handlers.values()):
            handler(advertisement)

    async def add_scanner(self, token: object, handler: AdvertisementHandler) -> None:
        async with self._scan_lock:
            first = not self._scan_handlers
            self._scan_handlers[token] = handler
            if first:
                await self.device.start_scanning(filter_duplicates=False)

    async def remove_scanner(self, token: object) -> None:
        async with self._scan_lock:
            if self._scan_handlers.pop(token, None) is not None and not self._scan_handlers:
                if not self.closed:
                    await self.device.stop_scanning()

    # -- connecting -----------------------------------------------------------
    async def connect(self, address: hci.Address, timeout: float) -> Connection:
        """Connect as central; raises TimeoutError instead of hanging on an absent peer."""
        async with self._connect_lock:
            if self.closed:
                raise ConnectionError("bumble host closed")
            try:
                return await asyncio.wait_for(self.device.connect(address, timeout=timeout),
                                              timeout + CONNECT_GUARD_S)
            except core.TimeoutError:
                raise TimeoutError(f"connect to {address_str(address)} timed out") from None
            except TimeoutError:
                # The controller ignored our cancel and still holds the pending connect,
                # so it would refuse every later one: retire this host (a later use
                # opens a fresh controller).
                log.warning("controller kept a pending connect to %s; reopening host", address)
                await self.aclose()
                raise TimeoutError(f"connect to {address_str(address)} timed out") from None
            except asyncio.CancelledError:
                # The caller gave up (e.g. its own wait_for): withdraw the pending connect
                # before the next one may start, or the late failure event would fail it.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._withdraw())
                raise

    async def _withdraw(self) -> None:
        """Cancel a pending connect and wait until the controller has settled it."""
        device = self.device
        settled: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()

        def on_failure(_error: Exception) -> None:
            if not settled.done():
                settled.set_result(None)

        def on_connection(connection: Connection) -> None:
            if not settled.done():
                settled.set_result(connection)

        device.on(device.EVENT_CONNECTION_FAILURE, on_failure)
        device.on(device.EVENT_CONNECTION, on_connection)
        try:
            try:
                await device.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
            except hci.HCI_Error:
                return  # nothing was pending
            try:
                late = await asyncio.wait_for(settled, CONNECT_GUARD_S)
            except TimeoutError:
                log.warning("controller ignored a connect cancel; reopening host")
                await self.aclose()
                return
            if late is not None:  # it connected just before the cancel: nobody wants it
                await late.disconnect()
        finally:
            device.remove_listener(device.EVENT_CONNECTION_FAILURE, on_failure)
            device.remove_listener(device.EVENT_CONNECTION, on_connection)


async def aclose_hosts(spec: str | None = None) -> None:
    """Close the bumble hosts opened on the running loop (all, or the one for transport ``spec``)."""
    for host in list(_hosts.get(asyncio.get_running_loop(), {}).values()):
        if spec is None or host.spec == spec:
            await host.aclose()
