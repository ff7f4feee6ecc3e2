"""The one way the cloud makes an MQTT client: MQTT v5, the broker user and client id of its role
(cloud/mqtt/identity.py), TLS when the settings name a CA, keepalive and TCP_NODELAY from the
settings. The ingest worker, the config publisher and the report listener all start here."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from cloud.mqtt import identity
from cloud.settings import Settings

log = logging.getLogger(__name__)


def _nodelay(_c: mqtt.Client, _ud: object, sock: Any) -> None:
    """paho's on_socket_open: paho 2.2 never sets TCP_NODELAY, and without it each small batch or
    ack waits for the peer's delayed ACK."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:  # only slower, never wrong
            log.warning("TCP_NODELAY not set: %s", e)


def make_client(st: Settings, role: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A client of `role` (identity.REPORTS, identity.CONFIG, identity.ingest_role(worker)) for
    the settings' broker; not yet connected (see `connect`)."""
    user = identity.role_user(st.broker_user, role)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=identity.client_id(st.broker_password, user),
                    protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    c.username_pw_set(user, st.broker_password)
    if st.broker_tls_ca:
        c.tls_set(ca_certs=st.broker_tls_ca, certfile=st.broker_tls_cert or None,
                  keyfile=st.broker_tls_key or None, cert_reqs=ssl.CERT_REQUIRED,
                  tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if st.broker_tcp_nodelay:
        c.on_socket_open = _nodelay
    return c


def connect(c: mqtt.Client, st: Settings, *, clean_start: bool = True,
            properties: Properties | None = None, wait: bool = True) -> None:
    """Connect to the settings' broker: at once (`wait`, raising if unreachable) or in the
    background, retried by paho's loop."""
    if wait:
        c.connect(st.broker_host, st.broker_port, keepalive=st.broker_keepalive, clean_start=clean_start,
                  properties=properties)
    else:
        c.connect_async(st.broker_host, st.broker_port, keepalive=st.broker_keepalive,
                        clean_start=clean_start, properties=properties)
