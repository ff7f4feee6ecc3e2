"""The air: one bumble LocalLink with an HCI port and a device port on loopback.

- HCI port: each TCP connection is a fresh virtual controller speaking H4, for a bumble
  host anywhere (transport ``tcp-client:127.0.0.1:<hci_port>``), e.g. bleak via
  gateway.ble.
- Device port: each TCP connection is a fresh controller plus an in-hub BLE stack for a
  MicroPython device using sim/micropython/bluetooth.py (see sim.radio.device_port).

Closing a socket removes its controller from the air, so peers see a disconnect
(reason 0x08) and a restarted process starts clean.

Run standalone: ``python -m sim.radio.hub --hci-port P --dev-port Q`` (0 = any free
port); it prints ``hci_port=P dev_port=Q`` and runs until SIGTERM/SIGINT. In-process:
``RadioHub().start()`` runs it on a background thread with its own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
from dataclasses import dataclass

from bumble.hci import Address

from sim.radio.controller import HubLink
from sim.radio.device_port import DeviceSession
from sim.radio.hci_port import HciSession

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ControllerView:
    """One controller on the air as seen at one moment (for tests and diagnostics)."""

    name: str  # hciN for an HCI port session, devN for a device port session
    address: str
    pending: str | None  # peer of a pending LE connect
    links: frozenset[str]  # peers it holds an LE link with


class Air:
    """The listeners and the shared link; lives on one event loop."""

    def __init__(self) -> None:
        self.link = HubLink()
        self.servers: list[asyncio.Server] = []
        self.sessions: set[DeviceSession] = set()
        self.hci_sessions: set[HciSession] = set()
        self.handlers: set[asyncio.Task[None]] = set()

    async def open(self, hci_port: int = 0, dev_port: int = 0) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        hci = await loop.create_server(self._hci_session, HOST, hci_port)
        dev = await asyncio.start_server(self._device, HOST, dev_port)
        self.servers = [hci, dev]
        return (hci.sockets[0].getsockname()[1], dev.sockets[0].getsockname()[1])

    def _hci_session(self) -> HciSession:
        session = HciSession(self.link, self.hci_sessions.discard)
        self.hci_sessions.add(session)
        return session

    async def _device(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = DeviceSession(self.link, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if task is not None:
                self.handlers.discard(task)

    def view(self) -> list[ControllerView]:
        def s(a: Address) -> str:
            return a.to_string(with_type_qualifier=False)

        return sorted((ControllerView(c.name, s(c.random_address),
                                      None if c.pending_le_connection is None
                                      else s(c.pending_le_connection.peer_address),
                                      frozenset(s(a) for a in c.le_connections))
                       for c in self.link.controllers), key=lambda v: v.name)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.close()
        for hci_session in list(self.hci_sessions):
            hci_session.close()
        # Python 3.11's Server.wait_closed does not wait for handlers: let the closed sessions'
        # handlers finish (bounded) so none is destroyed while pending when the loop closes.
        if self.handlers:
            await asyncio.wait(list(self.handlers), timeout=2.0)
        await asyncio.sleep(0)


class RadioHub:
    """The air on a background thread: ``start()``, then ``hci_port``/``dev_port``, ``stop()``."""

    def __init__(self, hci_port: int = 0, dev_port: int = 0) -> None:
        self.hci_port = hci_port
        self.dev_port = dev_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._air: Air | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def hci_spec(self) -> str:
        """bumble transport spec for a host on this hub."""
        return f"tcp-client:{HOST}:{self.hci_port}"

    @property
    def dev_addr(self) -> str:
        """Value for MCODE_RADIO in a MicroPython device's environment."""
        return f"{HOST}:{self.dev_port}"

    def start(self, timeout: float = 10.0) -> RadioHub:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._air = Air()
            self._stopped = asyncio.Event()
            try:
                self.hci_port, self.dev_port = await self._air.open(self.hci_port, self.dev_port)
            except BaseException as e:
                failure.append(e)
                ready.set()
                raise
            ready.set()
            await self._stopped.wait()
            await self._air.close()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(main())
            except BaseException:
                log.debug("radio hub loop ended with an error", exc_info=True)
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="radio-hub", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("radio hub did not start")
        if failure:
            raise failure[0]
        return self

    def air(self, timeout: float = 10.0) -> list[ControllerView]:
        """The controllers on the air now, taken on the hub's loop (so after everything it
        had queued before this call)."""
        if self._loop is None or self._air is None:
            raise RuntimeError("radio hub not started")
        air = self._air

        async def take() -> list[ControllerView]:
            return air.view()

        return asyncio.run_coroutine_threadsafe(take(), self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> RadioHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve(hci_port: int, dev_port: int) -> None:
    air = Air()
    hci, dev = await air.open(hci_port, dev_port)
    print(f"hci_port={hci} dev_port={dev}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await air.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="mcode virtual BLE radio (bumble LocalLink)")
    p.add_argument("--hci-port", type=int, default=0)
    p.add_argument("--dev-port", type=int, default=0)
    p.add_argument("--log", default="WARNING")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log.upper())
    asyncio.run(serve(a.hci_port, a.dev_port))


if __name__ == "__main__":
    main()
