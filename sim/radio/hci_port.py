"""HCI port: each TCP connection is one fresh virtual controller speaking H4 HCI."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from bumble import core
from bumble.link import LocalLink
from bumble.transport.common import PacketParser

from sim.radio.controller import HubController, detach_controller

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class HciSession(asyncio.Protocol):
    """One host process (e.g. bleak on bumble) attached to the air over H4."""

    def __init__(self, link: LocalLink, on_closed: Callable[[HciSession], None]) -> None:
        self.link = link
        self.on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self.controller: HubController | None = None
        self.parser: PacketParser | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.controller = HubController(f"hci{next(_ids)}", host_sink=self, link=self.link)
        self.parser = PacketParser(self.controller)
        log.debug("hci session %s from %s", self.controller.name, transport.get_extra_info("peername"))

    def on_packet(self, packet: bytes) -> None:
        """Controller -> host: H4 packets already carry their type byte."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(packet)

    def data_received(self, data: bytes) -> None:
        assert self.parser is not None
        try:
            self.parser.feed_data(data)
        except core.InvalidPacketError:
            log.warning("garbage on HCI port, closing")
            if self.transport is not None:
                self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_closed(self)
        if self.controller is not None:
            log.debug("hci session %s closed", self.controller.name)
            detach_controller(self.controller, self.link)
            self.controller = None
