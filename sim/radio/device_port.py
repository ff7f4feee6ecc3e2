"""Device port: the BLE stack of a MicroPython device, run inside the hub.

Each TCP connection gets a fresh virtual controller plus a bumble ``Device`` acting
as that device's host (peripheral, GATT server). The MicroPython ``bluetooth`` shim
(sim/micropython/bluetooth.py) drives it with one command per line; bytes travel as
hex, ``-`` stands for empty bytes. Handles are the shim's own (it numbers attributes
the way the real module does and tells us the mapping), never bumble's ATT handles.

Device -> hub (fire and forget; only P and M may precede the first ``A``):
  A <addr12hex>                     random static address (MSB first); powers the stack on
  P <namehex>                       GAP name
  M <mtu>                           preferred ATT MTU for exchanges
  S <json>                          services: [[uuid, [[uuid, flags, handle, [[uuid, flags, handle]..]]..]]..]
  V <handle> <hex> <send_update>    set a value (centrals read it); 1 = notify/indicate subscribers
  B <handle> <len> <append>         receive buffer for central writes
  G <interval_us> <adv> <resp> <connectable>   advertise
  X                                 stop advertising
  N <conn> <handle> <hex>           notify one central
  I <conn> <handle> <hex>           indicate one central
  D <conn>                          disconnect a central
Hub -> device:
  C <conn> <addr_type> <addr12hex>  central connected
  D <conn> <addr_type> <addr12hex>  central disconnected
  W <conn> <handle> <hex>           a central wrote these bytes (the shim applies its buffer)
  M <conn> <mtu>                    ATT MTU exchanged
  E <message...>                    a command was refused (the shim prints it)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

from bumble import hci
from bumble.att import Attribute, AttributeValue
from bumble.device import AdvertisingType, Connection, Device
from bumble.gatt import Characteristic, Descriptor, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from sim.radio.controller import HubController, detach_controller

log = logging.getLogger(__name__)
_ids = itertools.count(1)

ADV_MAX = 31  # legacy advertising PDU payload; bumble does not enforce it
DEFAULT_BUFFER = 20  # the real module's default receive buffer per attribute
DEFAULT_MTU = 256  # NimBLE's preferred MTU unless config(mtu=...) changes it

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_AUX_WRITE = 0x0100


def _unhex(tok: str) -> bytes:
    return b"" if tok == "-" else bytes.fromhex(tok)


def _hex(data: bytes) -> str:
    return data.hex() if data else "-"


def _addr_msb(address: hci.Address) -> str:
    return bytes(reversed(address.address_bytes)).hex()


@dataclass
class Slot:
    """The hub's copy of one attribute value, served to centrals that read it."""

    attribute: Attribute[bytes]
    value: bytes = b""
    buflen: int = DEFAULT_BUFFER
    append: bool = False


class DeviceSession:
    """One MicroPython device process on the air."""

    def __init__(self, link: LocalLink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.link = link
        self.reader = reader
        self.writer = writer
        self.controller = HubController(f"dev{next(_ids)}", link=link)
        self.device: Device | None = None
        self.slots: dict[int, Slot] = {}
        self.services: list[Service] = []
        self.base_attributes = 0
        self.mtu = DEFAULT_MTU
        self.name = "mcode"

    # -- events to the device -------------------------------------------------
    def send(self, line: str) -> None:
        if not self.writer.is_closing():
            self.writer.write(line.encode() + b"\n")

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        peer = connection.peer_address
        tail = f"{connection.handle} {int(peer.address_type) & 1} {_addr_msb(peer)}"
        self.send(f"C {tail}")
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self.send(f"D {tail}"))
        connection.on(
            connection.EVENT_CONNECTION_ATT_MTU_UPDATE,
            lambda: self.send(f"M {connection.handle} {connection.att_mtu}"),
        )

    def _on_write(self, handle: int, connection: Connection, data: bytes) -> None:
        slot = self.slots[handle]
        # The real module truncates to the buffer, or appends up to it.
        slot.value = ((slot.value + data) if slot.append else bytes(data))[: slot.buflen]
        self.send(f"W {connection.handle} {handle} {_hex(bytes(data))}")

    # -- commands from the device ---------------------------------------------
    async def run(self) -> None:
        try:
            while line := await self.reader.readline():
                try:
                    await self.handle(line.decode().rstrip("\n"))
                except Exception as e:  # a bad command must not take the radio down
                    log.exception("device command failed: %r", line[:80])
                    self.send(f"E {type(e).__name__}: {e}")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        detach_controller(self.controller, self.link)
        self.writer.close()

    async def _power_on(self, address: hci.Address) -> Device:
        host = Host(self.controller, AsyncPipeSink(self.controller))
        device = Device(name=self.name, address=address, host=host)
        device.gatt_server.max_mtu = self.mtu
        device.on(device.EVENT_CONNECTION, self._on_connection)
        await device.power_on()
        self.base_attributes = len(device.gatt_server.attributes)
        return device

    async def handle(self, line: str) -> None:
        op, _, rest = line.partition(" ")
        args = rest.split(" ") if rest else []
        if op == "A":
            address = hci.Address(bytes(reversed(bytes.fromhex(args[0]))), hci.Address.RANDOM_DEVICE_ADDRESS)
            if self.device is None:
                self.device = await self._power_on(address)
            else:
                await self.device.send_command(hci.HCI_LE_Set_Random_Address_Command(random_address=address))
                self.device.random_address = self.device.static_address = address
            return
        if op == "P":
            self.name = _unhex(args[0]).decode()
            if self.device is not None:
                self.device.name = self.name
            return
        if op == "M":
            self.mtu = int(args[0])
            if self.device is not None:
                self.device.gatt_server.max_mtu = self.mtu
            return
        device = self.device
        if device is None:
            raise RuntimeError("address (A) must come first")
        if op == "S":
            self._register(device, json.loads(rest))
        elif op == "V":
            slot = self.slots[int(args[0])]
            slot.value = _unhex(args[1])
            if args[2] == "1":
                await self._update_subscribers(device, slot)
        elif op == "B":
            slot = self.slots[int(args[0])]
            slot.buflen, slot.append = int(args[1]), args[2] == "1"
        elif op in ("N", "I"):
            connection = device.connections.get(int(args[0]))
            if connection is not None:
                slot = self.slots[int(args[1])]
                if op == "N":
                    await device.notify_subscriber(connection, slot.attribute, _unhex(args[2]), force=True)
                else:
                    await device.indicate_subscriber(connection, slot.attribute, _unhex(args[2]), force=True)
        elif op == "G":
            await self._advertise(device, int(args[0]), _unhex(args[1]), _unhex(args[2]), args[3] == "1")
        elif op == "X":
            await device.stop_advertising()
        elif op == "D":
            connection = device.connections.get(int(args[0]))
            if connection is not None:
                await connection.disconnect()
        else:
            raise ValueError(f"unknown command {op!r}")

    async def _update_subscribers(self, device: Device, slot: Slot) -> None:
        attribute = slot.attribute
        if not isinstance(attribute, Characteristic):
            return
        if attribute.properties & Characteristic.Properties.NOTIFY:
            await device.notify_subscribers(attribute, slot.value)
        elif attribute.properties & Characteristic.Properties.INDICATE:
            await device.indicate_subscribers(attribute, slot.value)

    async def _advertise(self, device: Device, interval_us: int, adv: bytes, resp: bytes,
                         connectable: bool) -> None:
        if len(adv) > ADV_MAX or len(resp) > ADV_MAX:
            raise ValueError(f"advertising data over {ADV_MAX} bytes")
        kind = (AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE if connectable
                else AdvertisingType.UNDIRECTED_SCANNABLE)
        ms = max(interval_us / 1000, 20.0)  # BLE's minimum legacy interval
        await device.start_advertising(advertising_type=kind, advertising_data=adv, scan_response_data=resp,
                                       advertising_interval_min=ms, advertising_interval_max=ms)

    def _value(self, handle: int) -> AttributeValue[bytes]:
        return AttributeValue(read=lambda _c: self.slots[handle].value,
                              write=lambda c, v: self._on_write(handle, c, v))

    def _register(self, device: Device, spec: list[Any]) -> None:
        """Build GATT services from the shim's definition, replacing earlier ones."""
        server = device.gatt_server
        if self.services:
            del server.attributes[self.base_attributes:]
            server.services = [s for s in server.services if s not in self.services]
            server.attributes_by_handle.clear()
        self.slots.clear()
        self.services = []
        for svc_uuid, chars in spec:
            built = []
            for chr_uuid, flags, handle, descs in chars:
                descriptors = []
                for dsc_uuid, dflags, dhandle in descs:
                    d = Descriptor(dsc_uuid, self._permissions(dflags), self._value(dhandle))
                    self.slots[dhandle] = Slot(d)
                    descriptors.append(d)
                c: Characteristic[bytes] = Characteristic(
                    chr_uuid, Characteristic.Properties(flags & 0xFF), self._permissions(flags),
                    self._value(handle), descriptors)
                self.slots[handle] = Slot(c)
                built.append(c)
            self.services.append(Service(svc_uuid, built))
        server.add_services(self.services)

    @staticmethod
    def _permissions(flags: int) -> Attribute.Permissions:
        perms = Attribute.Permissions(0)
        if flags & FLAG_READ:
            perms |= Attribute.Permissions.READABLE
        if flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE | FLAG_AUX_WRITE):
            perms |= Attribute.Permissions.WRITEABLE
        return perms
