"""MQTT uplink: publishes sealed batches from the spool and deletes them only on the cloud's ack.

paho-mqtt 2.x, MQTT v5, QoS 1, a persistent session (clean_start False, session expiry) so
acks sent while the gateway is away are queued for it; TLS when configured. A PUBACK proves only
the hop to the broker, so a batch stays in the spool until an ack (protocol.batch.decode_ack)
arrives on the gateway's ack topic after the cloud's commit. Unacked batches are sent again
after `republish_after_s` and after every reconnect; the cloud dedups, `Spool.confirm` is
idempotent and logs what the cloud confirmed (`Spool.confirmed_batches`).

At most the in-flight window's batches are outstanding (published, not acked): adaptive
(gateway.inflight: it grows while the round trip to the cloud's ack stays flat and shrinks when it
climbs), capped by `max_inflight` batches and `max_inflight_bytes` of payload, which paho holds in
RAM. Every socket sets TCP_NODELAY: a batch and its ack are small writes that Nagle's algorithm
would hold back for the peer's delayed ACK (about 40 ms a round trip on Linux). The retained status
topic carries protocol.health: online with health figures on every connect and every
`status_interval_s` (from `pump`), b"offline" as the last will and on a clean stop.

Threads: paho callbacks run on its network thread; acks are decoded there and applied on the ack
thread, a burst of them in one spool transaction (`Spool.confirm_many`) followed by one `pump()`,
so paho keeps reading and writing the socket meanwhile. `pump()` may be called from any thread.
paho calls on_publish while holding its message lock, which `publish()` also takes, so
on_publish must never wait for `_lock` (held by pump around publish): it takes `_mid_lock` only.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import ConfigError, MqttConfig
from gateway.inflight import START, InflightWindow
from gateway.spool import Spool
from protocol import batch as pbatch
from protocol import gwconfig, health

log = logging.getLogger(__name__)

OFFLINE = health.OFFLINE_PAYLOAD
_STATUS = -1  # _mids value for a status message
ACK_GROUP = 64  # acks confirmed in one spool transaction at most


@dataclass
class UplinkStats:
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0  # TCP/TLS failures and refused CONNACKs
    last_error: str = ""  # why the last connect failed or the connection dropped
    published: int = 0  # batch publish() calls accepted by paho, including resends
    republished: int = 0
    publish_refused: int = 0  # publish() returned an error rc (not connected, paho queue full)
    pubacks: int = 0  # batch publishes the broker PUBACKed (proves only that hop)
    puback_failures: int = 0  # PUBACKs with an error reason (e.g. 0x87 not authorized)
    confirmed: int = 0  # acks with status stored
    confirmed_records: int = 0  # records in confirmed batches deleted from the spool
    last_confirmed_bseq: int | None = None  # highest bseq the cloud has confirmed (kept in the spool)
    quarantined: int = 0
    acks_other: int = 0  # unknown status: batch kept
    acks_malformed: int = 0
    status_sent: int = 0  # online status messages published
    subscribe_refused: int = 0  # SUBACKs with an error reason: the broker's ACL does not fit our id
    window: int = START  # the in-flight window now (batches)
    window_rtt_ms: float | None = None  # the last round's mean round trip to the cloud's ack


def tcp_nodelay(client: mqtt.Client, userdata: object, sock: object) -> None:
    """paho's on_socket_open: TCP_NODELAY on the new connection (paho 2.2 never sets it)."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:  # not fatal: only slower
            log.warning("TCP_NODELAY not set: %s", e)


def _count(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class Uplink:
    def __init__(self, cfg: MqttConfig, gateway_hex: str, spool: Spool,
                 on_ack: Callable[[int, dict[str, object]], None] | None = None,
                 client_id: str | None = None, on_config: Callable[[bytes], None] | None = None) -> None:
        self.cfg = cfg
        self.gateway_hex = gateway_hex
        self.spool = spool
        self.on_ack = on_ack
        self.batch_topic = pbatch.batch_topic(gateway_hex)
        self.ack_topic = pbatch.ack_topic(gateway_hex)
        self.status_topic = pbatch.status_topic(gateway_hex)
        # The cloud's signed config (retained), handed over as it arrives (gateway.remote_config).
        self.on_config = on_config
        self.config_topic = gwconfig.config_topic(gateway_hex)
        self._config_mid: int | None = None
        self._ack_mid: int | None = None
        self.stats = UplinkStats()
        last = spool.confirmed_batches(limit=1)
        self.stats.last_confirmed_bseq = last[0].bseq if last else None
        self._started = time.monotonic()
        self._lock = threading.RLock()
        self._inflight: dict[int, tuple[float, int]] = {}  # bseq -> (monotonic time of last publish, bytes)
        self.window = InflightWindow(lo=min(4, cfg.max_inflight), hi=cfg.max_inflight,
                                     start=min(START, cfg.max_inflight))
        self.stats.window = self.window.size
        self._mid_lock = threading.Lock()
        self._mids: dict[int, int] = {}  # paho mid -> bseq (or _STATUS), until its PUBACK
        self._early: dict[int, ReasonCode] = {}  # PUBACKs that beat pump to registering their mid
        self._next_status = 0.0  # monotonic time the online status is due again
        self._rate_mark = (self._started, 0)  # (when, confirmed_records) at the last status
        self._attempt = 0  # failed connects in a row, for the back-off
        self._refused = ""  # the CONNACK's reason when the broker refused us
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = False
        # Acks go from paho's thread to the ack thread: (bseq, ack, monotonic arrival), None to end.
        self._acks: queue.SimpleQueue[tuple[int, dict[str, object], float] | None] = queue.SimpleQueue()
        self._ack_thread: threading.Thread | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"gw-{gateway_hex}",
                                  protocol=mqtt.MQTTv5)
        c = self.client
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password)
        if cfg.tls_ca:
            try:
                c.tls_set(ca_certs=cfg.tls_ca, certfile=cfg.tls_cert or None, keyfile=cfg.tls_key or None,
                          cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                raise ConfigError(f"[mqtt] TLS files unusable: {e}") from None
        c.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        # Bounded: the spool is the real queue; paho's is RAM only (publish rc is checked).
        c.max_queued_messages_set(cfg.max_inflight + 16)
        c.max_inflight_messages_set(cfg.max_inflight + 4)  # room for status messages
        self._set_retry_delay(cfg.reconnect_min_s)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_socket_open = tcp_nodelay

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho's thread retries for ever (the broker may be down)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive,
                                  clean_start=False, properties=props)
        if self._ack_thread is None:
            self._ack_thread = threading.Thread(target=self._ack_loop, name=f"acks-{self.gateway_hex}",
                                                daemon=True)
            self._ack_thread.start()
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), disconnect cleanly, stop paho's thread. The spool keeps the rest."""
        self._stopping = True
        if self._connected.is_set():
            try:
                info = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("offline status not sent: %s", e)
        self.client.disconnect()
        self.client.loop_stop()
        if self._ack_thread is not None:  # apply the acks already received: fewer resends next time
            self._acks.put(None)
            self._ack_thread.join(timeout)
            self._ack_thread = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Connected and subscribed to the ack topic."""
        return self._subscribed.wait(timeout)

    def inflight(self) -> list[int]:
        with self._lock:
            return sorted(self._inflight)

    def _set_retry_delay(self, delay: float) -> None:
        # paho waits min_delay before its next attempt; setting min = max each time makes the
        # wait exactly ours (paho sleeps with floats, though it annotates ints).
        self.client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]

    def _back_off(self) -> None:
        """Exponential back-off with jitter, so a fleet that lost its broker does not return at once."""
        self._attempt += 1
        cap = min(self.cfg.reconnect_max_s, self.cfg.reconnect_min_s * 2 ** min(self._attempt - 1, 20))
        self._set_retry_delay(random.uniform(cap / 2, cap))

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """The figures of the online status (protocol.health.FIGURES)."""
        counts = self.spool.counts()
        fill = self.spool.fill()
        now = time.monotonic()
        s = self.stats
        t0, r0 = self._rate_mark
        oldest = counts.oldest_unbatched
        return {
            "ts": int(time.time()), "up_s": int(now - self._started),
            "spool_records": counts.records, "spool_unbatched": counts.unbatched,
            "spool_batches": counts.batches, "spool_fill": round(fill.fraction, 4),
            "spool_alarm": fill.level,
            "oldest_unbatched_s": None if oldest is None else max(0, int(time.time() - oldest)),
            "inflight": len(self.inflight()), "confirmed_bseq": s.last_confirmed_bseq,
            "confirmed_batches": s.confirmed + s.quarantined, "confirmed_records": s.confirmed_records,
            "records_per_s": round(max(0, s.confirmed_records - r0) / max(now - t0, 1e-3), 1),
            "connects": s.connects, "disconnects": s.disconnects,
        }

    def devices(self) -> list[list[object]]:
        """The spool's view of each device for the status's "devs" (protocol.health), the most
        recently pulled first, at most health.MAX_DEVICES."""
        rows: list[tuple[int, str, list[object]]] = []
        for dev, st in self.spool.device_status().items():
            seen = st.get("last_seen")
            seen_s = None if not isinstance(seen, (int, float)) or seen < 0 else int(seen)
            bat, fw, rssi = _count(st.get("battery_low")), _count(st.get("fw")), st.get("rssi")
            if not (isinstance(rssi, int) and not isinstance(rssi, bool) and -255 <= rssi <= 255):
                rssi = None
            rows.append((-(seen_s or 0), dev, [dev, seen_s, bat if bat in (0, 1) else None,
                                               fw if fw is not None and fw <= health.MAX_FW else None, rssi]))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in rows[:health.MAX_DEVICES]]

    def publish_status(self) -> bool:
        """Publish the retained online status now. False if paho did not take it."""
        figures = self.health()
        payload = health.encode_online(figures, self.devices())
        info = self.client.publish(self.status_topic, payload, qos=1, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self._note_mid(info.mid, _STATUS)
        self._rate_mark = (time.monotonic(), self.stats.confirmed_records)
        self._next_status = time.monotonic() + self.cfg.status_interval_s
        self.stats.status_sent += 1
        return True

    # -- sending --------------------------------------------------------------------------

    def pump(self) -> int:
        """Publish pending batches up to the in-flight window; resend those unacked for too long;
        refresh the online status when due. Returns how many batches were published. Safe to
        call often and from any thread."""
        if not self._subscribed.is_set():
            return 0
        if time.monotonic() >= self._next_status:
            self.publish_status()
        with self._lock:
            now = time.monotonic()
            due = {b for b, (t, _) in self._inflight.items() if now - t >= self.cfg.republish_after_s}
            if due:
                self.window.timed_out()
            waiting = [b for b in self._inflight if b not in due]
            room = self.window.size - len(waiting)
            if room <= 0:
                return 0
            held = sum(n for b, (_, n) in self._inflight.items() if b not in due)
            sent = self._publish_pending(now, room, waiting, held)
            # A due entry the spool no longer holds was confirmed: forget it.
            for b in due - set(sent):
                self._inflight.pop(b, None)
            if sent:
                self.spool.mark_published(sent)
            self.stats.window = self.window.size
            return len(sent)

    def _publish_pending(self, now: float, room: int, waiting: list[int], held: int) -> list[int]:
        """Publish up to `room` batches not in `waiting`, oldest first, while the payload in
        flight (`held` bytes so far) stays within the byte cap."""
        sent: list[int] = []
        # Read only what may go now: not the batches in flight and not yet due.
        for p in self.spool.pending_batches(limit=room, exclude=waiting):
            if held and held + len(p.payload) > self.cfg.max_inflight_bytes:
                break  # one batch always goes, however large: the spool must drain
            info = self.client.publish(self.batch_topic, p.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # Not sent (connection just lost, paho queue full): the next pump retries.
                self.stats.publish_refused += 1
                log.info("publish of batch %d refused: %s", p.bseq, mqtt.error_string(info.rc))
                self._inflight.pop(p.bseq, None)
                break
            self._note_mid(info.mid, p.bseq)
            if p.bseq in self._inflight or p.attempts:
                self.stats.republished += 1
            self._inflight[p.bseq] = (now, len(p.payload))
            self.window.sent(p.bseq, now)
            held += len(p.payload)
            self.stats.published += 1
            sent.append(p.bseq)
        return sent

    def _note_mid(self, mid: int, what: int) -> None:
        with self._mid_lock:
            rc = self._early.pop(mid, None)
            if rc is None:
                self._mids[mid] = what
                return
        self._count_puback(what, rc)

    def _count_puback(self, what: int, rc: ReasonCode) -> None:
        if rc.is_failure:
            self.stats.puback_failures += 1
            log.error("broker refused %s on %s: %s", "the status" if what == _STATUS else f"batch {what}",
                      self.status_topic if what == _STATUS else self.batch_topic, rc)
        elif what != _STATUS:
            self.stats.pubacks += 1

    # -- paho callbacks (network thread). An exception would end paho's thread, so none escape.

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode,
                    props: Properties | None) -> None:
        with self._mid_lock:
            what = self._mids.pop(mid, None)
            if what is None:
                self._early[mid] = rc
                return
        self._count_puback(what, rc)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    rc: ReasonCode, props: Properties | None) -> None:
        try:
            if rc.is_failure:  # paho then drops the connection: _on_disconnect counts it
                self._refused = f"CONNACK {rc}"
                log.warning("MQTT connect refused: %s", rc)
                return
            self._attempt = 0
            self._set_retry_delay(self.cfg.reconnect_min_s)
            self.stats.connects += 1
            self._connected.set()
            log.info("MQTT connected to %s:%d (session present: %s)", self.cfg.host, self.cfg.port,
                     flags.session_present)
            # paho would resend what the last connection left unacked, and pump sends every
            # unacked batch again anyway: drop paho's RAM copies so nothing goes twice and its
            # bounded queue cannot fill across outages. The spool holds every batch.
            client.drop_out_messages()
            with self._mid_lock:
                self._mids.clear()
                self._early.clear()
            with self._lock:
                self._inflight.clear()
                self.window.forget()
            self._ack_mid = client.subscribe(self.ack_topic, qos=1)[1]
            if self.on_config is not None:
                self._config_mid = client.subscribe(self.config_topic, qos=1)[1]
            self.publish_status()
        except Exception:
            log.exception("on_connect failed")

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.stats.connect_failures += 1
        self.stats.last_error = "connection failed (broker unreachable, or TLS refused)"
        log.warning("MQTT connect to %s:%d failed; retrying", self.cfg.host, self.cfg.port)
        self._back_off()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      rcs: list[ReasonCode], props: Properties | None) -> None:
        try:
            topic = {self._ack_mid: self.ack_topic, self._config_mid: self.config_topic}.get(mid)
            if any(r.is_failure for r in rcs):
                log.error("subscription to %s refused: %s", topic, rcs)
                self.stats.subscribe_refused += 1
                self.stats.last_error = f"subscription to {topic} refused: {', '.join(map(str, rcs))}"
                if topic is not None:
                    self._resubscribe_later(client, topic)
            elif topic == self.ack_topic:
                self._subscribed.set()
                self.pump()
        except Exception:
            log.exception("on_subscribe failed")

    def _resubscribe_later(self, client: mqtt.Client, topic: str) -> None:
        """Ask again after the longest reconnect delay: the broker's ACL may be fixed meanwhile
        (a refusal is a configuration error, so no faster than that)."""
        def again() -> None:
            if self._stopping or not self._connected.is_set():
                return  # a reconnect subscribes anew
            mid = client.subscribe(topic, qos=1)[1]
            if topic == self.ack_topic:
                self._ack_mid = mid
            else:
                self._config_mid = mid
        t = threading.Timer(self.cfg.reconnect_max_s, again)
        t.daemon = True
        t.start()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       rc: ReasonCode, props: Properties | None) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        with self._lock:
            self._inflight.clear()
            self.window.forget()
        if self._stopping:
            return
        if was_connected:
            self.stats.disconnects += 1
            self.stats.last_error = f"disconnected: {rc}"
        else:  # refused, or dropped before a CONNACK (e.g. the broker wanted a client certificate)
            self.stats.connect_failures += 1
            self.stats.last_error = self._refused or f"dropped before CONNACK: {rc}"
        self._refused = ""
        log.warning("MQTT disconnected: %s; reconnecting", rc)
        self._back_off()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.config_topic and self.on_config is not None:
            try:
                self.on_config(bytes(msg.payload))
            except Exception:  # never let a bad config take paho's thread down
                log.exception("config from %s not handled", msg.topic)
            return
        if msg.topic != self.ack_topic:
            return
        try:
            ack = self._decode_ack(bytes(msg.payload))
        except Exception:  # never let a bad ack take paho's thread down
            log.exception("ack on %s not handled", msg.topic)
            return
        if ack is not None:
            self._acks.put((int(ack["bseq"]), ack, time.monotonic()))

    def _decode_ack(self, payload: bytes) -> dict[str, Any] | None:
        """The ack, or None (counted and logged) when it is malformed or its status unknown."""
        try:
            ack = pbatch.decode_ack(payload)
        except Exception as e:  # cbor2 raises several types on garbage
            self.stats.acks_malformed += 1
            log.error("malformed ack on %s: %s", self.ack_topic, e)
            return None
        status = ack.get("status")
        if status not in (pbatch.ACK_STORED, pbatch.ACK_QUARANTINED):
            self.stats.acks_other += 1
            log.warning("ack for batch %d with unknown status %r: keeping the batch", ack["bseq"], status)
            return None
        return ack

    # -- the ack thread: acks applied to the spool in groups, off paho's network thread -------

    def _ack_loop(self) -> None:
        while (item := self._acks.get()) is not None:
            group, last = [item], False
            while len(group) < ACK_GROUP:  # whatever else has arrived, never waiting for more
                try:
                    more = self._acks.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                group.append(more)
            try:
                self._apply_acks(group)
            except Exception:  # spool trouble: the batches stay, are resent, and the cloud acks again
                log.exception("%d acks on %s not applied", len(group), self.ack_topic)
            if last:
                return

    def _apply_acks(self, group: list[tuple[int, dict[str, object], float]]) -> None:
        """Confirm a group of acks in one spool transaction, then refill the window."""
        # Under _lock, so pump never publishes a batch between its confirm and its in-flight entry's removal.
        with self._lock:
            deleted = self.spool.confirm_many([
                (bseq, str(a["status"]), _count(a.get("stored")), _count(a.get("dup")), _count(a.get("rej")))
                for bseq, a, _ in group])
            for bseq, _, t in group:
                self._inflight.pop(bseq, None)
                self.window.acked(bseq, t)
            self.stats.window = self.window.size
            rtt = self.window.last_rtt
            self.stats.window_rtt_ms = None if rtt is None else round(rtt * 1000, 2)
        for (bseq, ack, _), n in zip(group, deleted, strict=True):
            self._count_ack(bseq, ack, n)
        self.pump()

    def _count_ack(self, bseq: int, ack: dict[str, object], n: int) -> None:
        self.stats.confirmed_records += n
        if bseq >= 0:
            last = self.stats.last_confirmed_bseq
            self.stats.last_confirmed_bseq = bseq if last is None else max(last, bseq)
        if ack.get("status") == pbatch.ACK_STORED:
            self.stats.confirmed += 1
            log.debug("batch %d stored by the cloud (%s new, %s dup, %s rejected); %d deleted", bseq,
                      ack.get("stored"), ack.get("dup"), ack.get("rej"), n)
            if ack.get("rej"):
                log.warning("cloud rejected %s records of batch %d", ack.get("rej"), bseq)
        else:
            self.stats.quarantined += 1
            log.error("BATCH %d QUARANTINED by the cloud: reason=%r (%d records leave this gateway; "
                      "the cloud keeps them with the reason)", bseq, ack.get("reason"), n)
        if self.on_ack is not None:
            self.on_ack(bseq, ack)
