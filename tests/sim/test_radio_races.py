"""Races on the virtual radio that used to leave a central holding a link its peer never had.

Each test lines the events up in the order that went wrong, by watching the hub's air
(RadioHub.air) rather than by timing, so it fails the same way every run without the
fix: a GATT request that waits 30 s, or a disconnect that never ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from bleak.exc import BleakError
from bumble import hci
from bumble.device import Connection, Device, Peer
from bumble.host import Host
from bumble.transport.common import AsyncPipeSink
from conftest import Devices

from gateway.ble.factory import ble_session, make_client
from gateway.ble.host import BumbleHost, parse_address
from sim.radio import RadioHub
from sim.radio.controller import HubController, HubLink
from sim.radio.hub import ControllerView

A = "C0:11:22:33:44:21"
WAIT = 20.0  # bound on waiting for an outcome: under bumble's 30 s GATT timeout, so a hang fails

pytestmark = pytest.mark.timeout(120)


def centrals(hub: RadioHub) -> list[ControllerView]:
    return [v for v in hub.air() if v.name.startswith("hci")]


async def until(want: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not want():
            await asyncio.sleep(0.01)


def block_until(want: Callable[[], bool]) -> None:
    """Wait without yielding to the event loop: the loop's host stands still meanwhile."""
    deadline = time.monotonic() + WAIT
    while not want():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_two_centrals_connecting_at_once_both_get_working_links(hub: RadioHub, devices: Devices) -> None:
    """Gateway and phone both waiting to connect when the display's advert comes: bumble let
    both centrals complete on that one advert, the display took one, and the other central
    held a link nobody answered on (ATT timeout after 30 s). Now the loser stays pending and
    connects on the display's next advert."""

    async def main() -> None:
        hosts = [await BumbleHost.open(hub.hci_spec) for _ in range(2)]
        try:
            connects = [asyncio.create_task(h.connect(parse_address(A), WAIT)) for h in hosts]
            await until(lambda: sum(v.pending == A for v in centrals(hub)) == 2)
            await asyncio.to_thread(devices, A)  # its first advert reaches both pending centrals
            async with asyncio.timeout(WAIT):
                links = await asyncio.gather(*connects)
                mtus = [await Peer(c).request_mtu(247) for c in links]
            assert mtus == [247, 247]
            air = {v.address: v for v in hub.air()}
            device = air[A]
            assert device.links == {h.device.random_address.to_string(False) for h in hosts}
            for h in hosts:  # every link has both ends
                assert air[h.device.random_address.to_string(False)].links == {A}
        finally:
            for h in hosts:
                await h.aclose()

    asyncio.run(main())


def test_link_lost_before_the_connect_is_seen_fails_the_connect(spec: str, hub: RadioHub,
                                                                devices: Devices) -> None:
    """The display vanishes right after the link is made, while the phone's loop is busy:
    Connection Complete and Disconnection Complete then arrive in one read, the disconnect
    before anyone listened for it. The client used to go on as connected: MTU exchange
    timed out after 30 s and its disconnect waited forever on a handle the controller no
    longer had."""

    async def main() -> None:
        async with ble_session():
            client = make_client(spec, A, timeout=WAIT)
            connect = asyncio.create_task(client.connect())
            await until(lambda: any(v.pending == A for v in centrals(hub)))
            # From here this loop stands still until the hub has made and lost the link.
            device = devices(A)
            block_until(lambda: any(A in v.links for v in centrals(hub)))
            device.kill()
            block_until(lambda: not any(v.pending == A or A in v.links for v in centrals(hub)))
            hub.air()  # the hub has run what it queued before: both events are on our socket
            async with asyncio.timeout(WAIT):
                with pytest.raises(BleakError):
                    await connect
            assert not client.is_connected

    asyncio.run(main())


def test_disconnect_of_an_unknown_handle_is_refused(hub: RadioHub) -> None:
    """A real controller answers Disconnect for a handle it does not have with "Unknown
    Connection Identifier"; bumble's said "pending" and never completed it, so the host's
    disconnect() waited forever."""

    async def main() -> None:
        host = await BumbleHost.open(hub.hci_spec)
        try:
            async with asyncio.timeout(WAIT):
                with pytest.raises(hci.HCI_Error) as refused:
                    await host.device.send_async_command(
                        hci.HCI_Disconnect_Command(connection_handle=0x0042, reason=0x13))
            assert refused.value.error_code == hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR
        finally:
            await host.aclose()

    asyncio.run(main())



async def linked_pair(link: HubLink) -> tuple[HubController, HubController, Connection]:
    """Two bumble hosts on one loop, the central linked to the advertising peripheral."""
    controllers, hosts = [], []
    for name, address in (("central", "C0:11:22:33:44:31"), ("peripheral", A)):
        controller = HubController(name, link=link)
        device = Device(name=name, address=hci.Address(address),
                        host=Host(controller, AsyncPipeSink(controller)))
        await device.power_on()
        controllers.append(controller)
        hosts.append(device)
    await hosts[1].start_advertising()
    return controllers[0], controllers[1], await hosts[0].connect(hci.Address(A))


def test_link_to_a_peer_that_left_without_a_word_ends_by_supervision_timeout() -> None:
    """A peer that leaves the air without a terminate (out of range, or its end of the link
    was never made): bumble dropped the central's ATT request and let it wait 30 s. Now the
    link ends as a real one does, by supervision timeout (0x08)."""

    async def main() -> None:
        link = HubLink()
        async with asyncio.timeout(WAIT):
            central, peripheral, connection = await linked_pair(link)
            lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            connection.on(connection.EVENT_DISCONNECTION, lost.set_result)
            link.remove_controller(peripheral)  # gone, nobody told
            request = asyncio.create_task(Peer(connection).request_mtu(247))
            assert await lost == hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
            await asyncio.wait([request])
            assert request.cancelled()  # bumble ends a pending request when its link ends
            assert not central.le_connections

    asyncio.run(main())


def test_disconnect_from_a_peer_that_left_without_a_word_completes() -> None:
    """Same, but the central hangs up first: bumble's controller raised "Unable to find
    controller for address" inside the Disconnect handler, so the link stayed and the
    host's disconnect() never returned."""

    async def main() -> None:
        link = HubLink()
        async with asyncio.timeout(WAIT):
            central, peripheral, connection = await linked_pair(link)
            link.remove_controller(peripheral)
            await connection.disconnect()
            assert not central.le_connections

    asyncio.run(main())
