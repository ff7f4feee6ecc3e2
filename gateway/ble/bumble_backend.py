"""A bleak backend on bumble: BleakScanner/BleakClient over a bumble host.

Pass these classes as ``backend=`` to bleak's public ``BleakScanner``/``BleakClient``
together with ``bumble_transport="tcp-client:127.0.0.1:PORT"``; gateway.ble.factory
does that. The bumble host behind them is shared per event loop (gateway.ble.host).

Covered: scanning with advertisement data and the service-UUID filter; connect (with
a timeout that cannot hang), ATT MTU exchange (to ``mtu``, default 247), service
discovery; read, write with and without response; notifications/indications;
descriptors; disconnect and the disconnected callback (called on a disconnect the
client did not ask for, as bleak's base class documents). Not covered: pairing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Literal, cast
from uuid import UUID

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.device import Advertisement, Connection, Peer
from bumble.gatt_client import CharacteristicProxy

from gateway.ble.host import BumbleHost, address_str, parse_address

log = logging.getLogger(__name__)

WANT_MTU = 247
DISCONNECT_GUARD_S = 5.0
_AD_UUID_TYPES = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}
_AD_SERVICE_DATA = {0x16: 2, 0x20: 4, 0x21: 16}
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


def _uuid_str(le: bytes) -> str:
    """A little-endian 16/32/128-bit UUID as bleak's normalized 128-bit string."""
    if len(le) in (2, 4):
        return f"{int.from_bytes(le, 'little'):08x}{_BASE_UUID_TAIL}"
    return str(UUID(bytes=bytes(reversed(le))))


def parse_advertisement(data: bytes, rssi: int) -> AdvertisementData:
    """AD structures -> bleak's AdvertisementData (name, UUIDs, service/manufacturer data, tx power)."""
    name: str | None = None
    uuids: list[str] = []
    service_data: dict[str, bytes] = {}
    manufacturer: dict[int, bytes] = {}
    tx_power: int | None = None
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0 or i + 1 + n > len(data):
            break
        kind, value = data[i + 1], data[i + 2:i + 1 + n]
        i += 1 + n
        if kind in (0x08, 0x09) and (name is None or kind == 0x09):
            name = value.decode(errors="replace")
        elif kind in _AD_UUID_TYPES:
            w = _AD_UUID_TYPES[kind]
            uuids += [_uuid_str(value[j:j + w]) for j in range(0, len(value) - w + 1, w)]
        elif kind in _AD_SERVICE_DATA and len(value) >= _AD_SERVICE_DATA[kind]:
            w = _AD_SERVICE_DATA[kind]
            service_data[_uuid_str(value[:w])] = bytes(value[w:])
        elif kind == 0xFF and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
        elif kind == 0x0A and len(value) == 1:
            tx_power = int.from_bytes(value, "little", signed=True)
    return AdvertisementData(name, manufacturer, service_data, uuids, tx_power, rssi, (data,))


class BumbleScanner(BaseBleakScanner):
    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None,
                 scanning_mode: Literal["active", "passive"] = "active", *,
                 bumble_transport: str, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._spec = bumble_transport
        self._host: BumbleHost | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._host = await BumbleHost.shared(self._spec)
        await self._host.add_scanner(self, self._on_advertisement)

    async def stop(self) -> None:
        if self._host is not None:
            await self._host.remove_scanner(self)
            self._host = None

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = parse_advertisement(adv.data_bytes, adv.rssi)
        key = address_str(adv.address)
        previous = self.seen_devices.get(key)
        if previous is not None and adv.is_scan_response:
            # A scan response completes the advert it answers, as platform stacks merge them.
            old = previous[1]
            data = data._replace(
                local_name=data.local_name or old.local_name,
                service_uuids=list(dict.fromkeys(old.service_uuids + data.service_uuids)),
                service_data={**old.service_data, **data.service_data},
                manufacturer_data={**old.manufacturer_data, **data.manufacturer_data},
                tx_power=data.tx_power if data.tx_power is not None else old.tx_power)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        device = self.create_or_update_device(key, key, data.local_name, adv.address, data)
        self.call_detection_callbacks(device, data)


def _gatt_error(e: Exception) -> BleakError:
    if isinstance(e, att.ATT_Error):
        return BleakGATTProtocolError(e.error_code)
    return BleakError(f"{type(e).__name__}: {e}")


@contextlib.contextmanager
def _gatt_errors() -> Iterator[None]:
    """bumble errors as BleakError. bumble *cancels* a pending GATT request when the link
    drops, so a CancelledError while our own task is not being cancelled is a disconnect."""
    try:
        yield
    except (att.ATT_Error, core.BaseBumbleError) as e:
        raise _gatt_error(e) from e
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        raise BleakError("disconnected during a GATT request") from None


class BumbleClient(BaseBleakClient):
    def __init__(self, address_or_ble_device: BLEDevice | str, *, bumble_transport: str,
                 mtu: int = WANT_MTU, **kwargs: Any) -> None:
        kwargs.setdefault("disconnected_callback", None)
        kwargs.setdefault("timeout", 10.0)
        super().__init__(address_or_ble_device, **kwargs)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._peer_address = details if isinstance(details, hci.Address) else parse_address(self.address)
        self._spec = bumble_transport
        self._want_mtu = mtu
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscribers: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        if pair:
            log.info("bumble backend: pairing not supported, connecting without it")
        timeout = float(kwargs.get("timeout", self._timeout))
        host = await BumbleHost.shared(self._spec)
        connection = await host.connect(self._peer_address, timeout)
        if host.device.connections.get(connection.handle) is not connection:
            # The link ended before this task resumed (the controller's Connection Complete
            # and Disconnection Complete came in one read), so no listener saw it end.
            raise BleakError(f"{self.address} disconnected while connecting")
        self._connection, self._closing = connection, False
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            self._peer = Peer(connection)
            with _gatt_errors():
                await self._peer.request_mtu(self._want_mtu)
                self.services = await self._discover(self._peer)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.disconnect()
            raise

    def _on_disconnection(self, reason: int) -> None:
        unsolicited = not self._closing
        self._connection = self._peer = None
        self._subscribers.clear()
        log.debug("%s disconnected, reason 0x%02X", self.address, reason)
        if unsolicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        try:
            # Bounded: bumble waits for Disconnection Complete without a timeout.
            await asyncio.wait_for(connection.disconnect(), DISCONNECT_GUARD_S)
        except (core.BaseBumbleError, hci.HCI_Error) as e:
            log.debug("disconnect of %s: %r", self.address, e)
        except TimeoutError:
            log.warning("controller did not confirm the disconnect of %s", self.address)
        finally:
            self._connection = self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not supported by the bumble backend")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not supported by the bumble backend")

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for svc in await peer.discover_services():
            service = BleakGATTService(svc, svc.handle, _uuid_str(svc.uuid.to_bytes()))
            collection.add_service(service)
            for proxy in await peer.discover_characteristics(service=svc):
                props = [CHARACTERISTIC_PROPERTIES[bit] for bit in CHARACTERISTIC_PROPERTIES
                         if proxy.properties & bit]
                char = BleakGATTCharacteristic(
                    proxy, proxy.handle, _uuid_str(proxy.uuid.to_bytes()),
                    cast(list[CharacteristicPropertyName], props), lambda: self.mtu_size - 3, service)
                collection.add_characteristic(char)
                for d in await peer.discover_descriptors(proxy):
                    collection.add_descriptor(
                        BleakGATTDescriptor(d, d.handle, _uuid_str(d.type.to_bytes()), char))
        return collection

    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
                             **kwargs: Any) -> bytearray:
        with _gatt_errors():
            return bytearray(await self._require().read_value(characteristic.handle))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False,
                                   **kwargs: Any) -> bytearray:
        with _gatt_errors():
            return bytearray(await self._require().read_value(descriptor.handle))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        with _gatt_errors():
            await self._require().write_value(characteristic.handle, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        with _gatt_errors():
            await self._require().write_value(descriptor.handle, bytes(data), with_response=True)

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        with _gatt_errors():
            await self._require().subscribe(proxy, subscriber, prefer_notify=True)
        self._subscribers[characteristic.handle] = subscriber

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is None:
            return
        with _gatt_errors():
            await self._require().unsubscribe(characteristic.obj, subscriber)
