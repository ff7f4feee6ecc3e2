"""Virtual controllers on the shared air: bumble's Controller and LocalLink with the fixes the hub needs.

Stock bumble (0.0.236) has four ways to leave a central hanging, all fixed here:

- A pending LE connection is kept forever once created: cancelling it does nothing, so
  the host's connect() never returns and the controller refuses every later connect. A
  real controller answers Create Connection Cancel with an LE Connection Complete
  carrying "Unknown Connection Identifier"; HubController does the same.
- A central completes a connection on its own as soon as an advert reaches it, then
  posts CONNECT_IND to the air; the peripheral drops it if it is no longer advertising
  by then (another central took it, or its host is re-arming the advertising set, or
  the advert was queued before the peripheral left). The central then holds a link the
  peripheral never knew: its first ATT request waits 30 s. HubController connects only
  if the peripheral accepts, in the same step (a real advertiser answers one CONNECT_IND
  per advertising event, and a central that loses stays pending).
- HCI Disconnect of a handle the controller no longer has gets no answer at all, so
  the host's disconnect() waits forever; a real controller says "Unknown Connection
  Identifier". And LocalLink raises "Unable to find controller" when the peer has left
  the air, inside the Disconnect handler, so that link is never torn down either.
- Data to a peer that does not hold the link is dropped with a warning and the sender
  waits (30 s ATT timeout). On real radios the supervision timer ends such a link; HubLink
  disconnects it with reason 0x08 instead.
"""

from __future__ import annotations

import asyncio
import logging

from bumble import core, hci, ll
from bumble.controller import Connection, Controller
from bumble.link import LocalLink

log = logging.getLogger(__name__)

# Reason a peer sees when a process vanishes: "Connection Timeout", as when a real
# device loses power and the supervision timer expires.
REASON_GONE = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR


def _advertises_as(controller: Controller, address: hci.Address) -> bool:
    """Whether ``controller`` is advertising on ``address`` now (what its on_le_connect_ind accepts)."""
    legacy = controller.le_legacy_advertiser
    if legacy.enabled and legacy.address == address:
        return True
    return any(s.enabled and s.address == address for s in controller.advertising_sets.values())


class HubLink(LocalLink):
    """The shared air: a link whose peer is gone ends as on a real radio, by supervision timeout."""

    def send_ll_control_pdu(self, sender_address: hci.Address, receiver_address: hci.Address,
                            packet: ll.ControlPdu) -> None:
        if self.find_le_controller(receiver_address) is not None:
            super().send_ll_control_pdu(sender_address, receiver_address, packet)
            return
        # Nobody on the air has that address. A terminate is simply lost (its sender tears
        # its side down itself); any other procedure would wait for an answer forever.
        log.debug("LL %s from %s to %s: peer is gone", type(packet).__name__, sender_address,
                  receiver_address)
        if not isinstance(packet, ll.TerminateInd):
            sender = self.find_le_controller(sender_address)
            if sender is not None:
                self._lose_soon(sender, receiver_address)

    def send_acl_data(self, sender_controller: Controller, destination_address: hci.Address,
                      transport: core.PhysicalTransport, data: bytes) -> None:
        if transport != core.PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        source = sender_controller.random_address
        asyncio.get_running_loop().call_soon(self._deliver_le, sender_controller, source,
                                             destination_address, data)

    def _deliver_le(self, sender: Controller, source: hci.Address, destination: hci.Address,
                    data: bytes) -> None:
        receiver = self.find_le_controller(destination)
        if receiver is not None and source in receiver.le_connections:
            receiver.on_link_acl_data(source, core.PhysicalTransport.LE, data)
        else:
            self._lose_soon(sender, destination)

    def _lose_soon(self, controller: Controller, peer: hci.Address) -> None:
        """End ``controller``'s link to ``peer`` as a supervision timeout would.

        Deferred by one loop turn and only for the same link object: a terminate already
        on its way (queued earlier, so delivered first) ends the link with its own reason.
        """
        connection = controller.le_connections.get(peer)
        if connection is None:
            return

        def lose(connection: Connection = connection) -> None:
            if controller in self.controllers and controller.le_connections.get(peer) is connection:
                log.debug("%s: link to %s lost (the peer does not hold it)", controller.name, peer)
                controller.on_le_disconnected(connection, REASON_GONE)

        asyncio.get_running_loop().call_soon(lose)


class HubController(Controller):
    """A bumble Controller whose connects are atomic and cancellable, and whose disconnects always end."""

    # LE Data Length Extension, as on the ESP32 and the Pi: a 247-byte ATT PDU crosses
    # HCI in one ACL packet instead of ten 27-byte ones.
    le_acl_data_packet_length = 251
    supported_max_tx_octets = 251
    supported_max_rx_octets = 251
    suggested_max_tx_octets = 251

    def _own_connect_address(self) -> hci.Address:
        pending = self.pending_le_connection
        if pending is not None and pending.own_address_type == hci.OwnAddressType.PUBLIC:
            return self.public_address
        return self.random_address

    def _accepting_peer(self, peer_address: hci.Address) -> Controller | None:
        """The controller that would accept our CONNECT_IND to ``peer_address`` right now."""
        me = self._own_connect_address()
        for other in self.link.controllers:
            if other is not self and _advertises_as(other, peer_address):
                # A link it still holds from us (its end not yet torn down) would be
                # overwritten, leaving two handles for one link: wait for the next advert.
                return None if me in other.le_connections else other
        return None

    def create_le_connection(self, peer_address: hci.Address) -> None:
        # Called on an advert from the peer we are connecting to. That advert may be stale
        # (queued before the peer stopped advertising or left the air): stay pending then.
        if self.pending_le_connection is not None and self._accepting_peer(peer_address) is None:
            log.debug("%s: %s no longer connectable, connect stays pending", self.name, peer_address)
            return
        super().create_le_connection(peer_address)

    def send_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if isinstance(packet, ll.ConnectInd):
            # Delivered now, not posted: the peer's end exists before our Connection
            # Complete goes to our host (create_le_connection checked that it accepts).
            peer = self._accepting_peer(packet.advertiser_address)
            if peer is not None:
                peer.on_le_connect_ind(packet)
            return
        super().send_advertising_pdu(packet)

    def on_hci_disconnect_command(self, command: hci.HCI_Disconnect_Command) -> None:
        if self.find_connection_by_handle(command.connection_handle) is None and \
                self.find_classic_sco_link_by_handle(command.connection_handle) is None:
            self._send_hci_command_status(hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                                          command.op_code)
            return
        super().on_hci_disconnect_command(command)

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        peer_address = pending.peer_address
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=peer_address.address_type,
            peer_address=peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # The spec orders Command Complete (sent by the caller after we return) before
        # the failed Connection Complete, so defer ours by one loop turn.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


def detach_controller(controller: Controller, link: LocalLink, reason: int = REASON_GONE) -> None:
    """Take a controller off the air: its peers see a disconnect, its adverts stop.

    HCI Reset does not clear a bumble controller, so a restarted process always gets a
    fresh one and the old one must be removed here.
    """
    for connection in list(controller.le_connections.values()):
        try:
            connection.send_ll_control_pdu(ll.TerminateInd(reason))
        except core.InvalidArgumentError:
            pass  # the peer left the air first (a plain LocalLink raises)
    controller.le_connections.clear()
    controller.le_legacy_advertiser.stop()
    for adv_set in controller.advertising_sets.values():
        adv_set.stop()
    controller.le_scan_enable = False
    controller.pending_le_connection = None
    if controller in link.controllers:
        link.remove_controller(controller)
    # Timers or late HCI packets must not reach the shared air any more.
    controller.link = LocalLink()
    controller.hci_sink = None
