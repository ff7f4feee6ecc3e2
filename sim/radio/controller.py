"""Virtual controllers on the shared air: a bumble Controller with the fixes the hub needs.

Stock bumble controllers (0.0.236) keep a pending LE connection forever once it is
created: cancelling it does nothing, so the host's connect() never returns and the
controller refuses every later connect. A real controller answers Create Connection
Cancel with an LE Connection Complete carrying "Unknown Connection Identifier"; this
one does the same, which lets bumble's own connect timeout work.
"""

from __future__ import annotations

import asyncio
import logging

from bumble import core, hci, ll
from bumble.controller import Controller
from bumble.link import LocalLink

log = logging.getLogger(__name__)

# Reason a peer sees when a process vanishes: "Connection Timeout", as when a real
# device loses power and the supervision timer expires.
REASON_GONE = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR


class HubController(Controller):
    """A bumble Controller whose pending LE connect can be cancelled."""

    # LE Data Length Extension, as on the ESP32 and the Pi: a 247-byte ATT PDU crosses
    # HCI in one ACL packet instead of ten 27-byte ones.
    le_acl_data_packet_length = 251
    supported_max_tx_octets = 251
    supported_max_rx_octets = 251
    suggested_max_tx_octets = 251

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
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
            pass  # the peer left the air first
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
