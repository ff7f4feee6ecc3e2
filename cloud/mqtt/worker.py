"""The ingest worker: MQTT v5, QoS 1, one member of the shared subscription
`$share/<group>/mcode/v0/gw/+/batch`, so that several workers behind one broker split the batches.

Each worker has its own broker user and client id (cloud/mqtt/identity.py: `<broker user>-ingest-
<worker id>`, bound on the broker) and a persistent session. A retained batch is not ingested
(counted in `retained`, PUBACKed): the subscription asks for the retain flag as published, and a
batch is a one-off delivery, never state to hand to the next subscriber. Deliveries are handled on a thread of
their own, several per database transaction when they queue up (cloud.services.ingest.Ingestor): commit,
then each batch's ack to its gateway, then the PUBACKs. Nothing is PUBACKed before its commit, so a
worker that dies loses nothing: the broker resends what it had not PUBACKed when that worker's
session resumes, and storage is idempotent on (device, epoch, seq), so a batch stored twice (a
redelivery, a gateway's resend, two workers) counts once. See docs/cloud.md, "Ingest workers"."""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import exc as sa_exc

from cloud.mqtt import identity
from cloud.mqtt.client import connect, make_client
from cloud.services.ingest import Ingestor, IngestResult, QuarantineQuota
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol import batch as pbatch

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our subscription and queued batches this long
DEFAULT_GROUP = "mcode-ingest"
DEFAULT_WORKER_ID = "0"
MAX_GROUP = 50  # deliveries per transaction at most: below the broker's in-flight window, so it keeps
# sending while we commit
RETRY_MIN_S, RETRY_MAX_S = 0.05, 5.0  # backoff while the database is unavailable
# Database trouble that may pass (locked, connection lost, deadlock victim): retry the same deliveries.
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


@dataclass
class IngestCounts:
    batches: int = 0  # deliveries handled (committed), redeliveries included
    redelivered: int = 0  # of those, marked DUP by the broker: resent after a session was lost
    transactions: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0  # single records refused (quarantined) inside stored batches
    quarantined: int = 0  # whole batches refused
    acks: int = 0
    errors: int = 0  # failed attempts (database trouble) and failed ack publishes; retried, not lost
    retained: int = 0  # retained batches: PUBACKed, not ingested, no ack
    quarantine_dropped: int = 0  # refusals the quarantine quota turned away (also in quarantine_drops)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def default_group(broker_password: str) -> str:
    """The group name when none is configured: derived from the cloud's broker password, which no
    gateway knows. Mosquitto's acl_file does not check SUBSCRIBE, so any broker user may join a
    group it can name; the broker then hands it its turn of the batches and, since it may not read
    them, drops them. An unguessable name keeps gateways out (docs/cloud.md, "Ingest workers")."""
    if not broker_password:
        return DEFAULT_GROUP
    tag = hmac.new(broker_password.encode(), b"mcode/v0/ingest-group", hashlib.sha256).hexdigest()
    return f"{DEFAULT_GROUP}-{tag[:16]}"


def shared_subscription(group: str, topic_filter: str = pbatch.BATCH_SUBSCRIPTION) -> str:
    """`$share/<group>/<filter>`; an empty group means a plain subscription (every worker gets all)."""
    if not group:
        return topic_filter
    if any(c in group for c in "/+#"):
        raise ValueError(f"shared subscription group {group!r} may not contain / + #")
    return f"$share/{group}/{topic_filter}"


class IngestWorker:
    def __init__(self, session_factory: SessionFactory, settings: Settings,
                 worker_id: str = DEFAULT_WORKER_ID, group: str | None = None,
                 topic_filter: str = pbatch.BATCH_SUBSCRIPTION, max_group: int = MAX_GROUP,
                 copy: bool = True) -> None:
        self._ingestor = Ingestor(session_factory, QuarantineQuota(settings.quarantine_quota_bytes,
                                                                   settings.quarantine_quota_rows), copy=copy)
        self._settings = settings
        self.worker_id = worker_id
        role = identity.ingest_role(worker_id)
        self.client_id = identity.client_id(settings.broker_password,
                                            identity.role_user(settings.broker_user, role))
        if group is None:
            group = default_group(settings.broker_password)
        self.subscription = shared_subscription(group, topic_filter)
        # the other form, dropped at connect: a session from before a change of group would
        # otherwise get every batch twice
        self._stale = topic_filter if group else shared_subscription(DEFAULT_GROUP, topic_filter)
        self._max_group = max(1, max_group)
        self.counts = IngestCounts()
        self._counts_lock = threading.Lock()
        self.subscribed = threading.Event()
        # mids of the UNSUBACKs seen since stop(retire=True) began: the reply may come before
        # unsubscribe() has returned its mid, so the mid is looked up here after the send
        self._unsubacks = threading.Condition()
        self._unsubacked: set[int] = set()
        self._stopping = threading.Event()
        self._q: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._client = make_client(settings, role, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_message = self._on_message

    # paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, rc: object,
                    _props: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("broker refused the connection: %s", rc)
            return
        client.unsubscribe(self._stale)
        client.subscribe(self.subscription, options=SubscribeOptions(qos=1, retainAsPublished=True))

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, rcs: list[ReasonCode],
                      _props: Properties) -> None:
        if all(not rc.is_failure for rc in rcs):
            self.subscribed.set()
        else:
            log.error("subscription %s refused: %s", self.subscription, rcs)

    def _on_unsubscribe(self, _c: mqtt.Client, _ud: object, mid: int, _rcs: list[ReasonCode],
                        _props: Properties | None) -> None:
        with self._unsubacks:
            self._unsubacked.add(mid)
            self._unsubacks.notify_all()

    def _on_message(self, c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:  # a gateway may not park a batch on the broker for later subscribers
            with self._counts_lock:
                self.counts.retained += 1
            log.warning("retained message on %s (%d bytes) not ingested", msg.topic[:200], len(msg.payload))
            c.ack(msg.mid, msg.qos)
            return
        self._q.put(msg)

    # processing thread
    def _run(self) -> None:
        while True:
            msg = self._q.get()
            if msg is None:
                return
            group, last = [msg], False
            while len(group) < self._max_group:  # whatever else is already here, never waiting for more
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                group.append(more)
            self._handle(group)
            if last:
                return

    def _handle(self, msgs: list[mqtt.MQTTMessage]) -> None:
        items = [(m.topic, bytes(m.payload)) for m in msgs]
        delay = RETRY_MIN_S
        while True:
            try:
                results = self._ingest(items)
                break
            except TRANSIENT as e:
                with self._counts_lock:
                    self.counts.errors += 1
                log.warning("database unavailable (%s); retrying %d deliveries in %.2f s",
                            str(e).splitlines()[0][:200], len(items), delay)
                if self._stopping.wait(delay):
                    return  # not acked: the broker resends them to this client id's next session
                delay = min(2 * delay, RETRY_MAX_S)
        self._count(msgs, results)
        for m, res in zip(msgs, results, strict=True):
            if res.ack is not None and res.gateway_id is not None:
                info = self._client.publish(pbatch.ack_topic(res.gateway_id), res.ack, qos=1)
                with self._counts_lock:
                    if info.rc == mqtt.MQTT_ERR_SUCCESS:
                        self.counts.acks += 1
                    else:  # the gateway resends an unacked batch later; it is stored already
                        self.counts.errors += 1
                        log.error("ack publish to %s failed: rc %s", res.gateway_id, info.rc)
            try:  # PUBACK after the commit and the gateway's ack
                self._client.ack(m.mid, m.qos)
            except Exception:
                log.exception("PUBACK of mid %s failed", m.mid)

    def _ingest(self, items: list[tuple[str, bytes]]) -> list[IngestResult]:
        """All in one transaction; if that fails other than transiently, one by one, so that one
        poisonous delivery is quarantined (internal_error) and cannot hold up the others."""
        try:
            return self._ingestor.ingest_many(items)
        except TRANSIENT:
            raise
        except Exception as e:
            if len(items) > 1:
                log.exception("ingest of %d deliveries failed; taking them one by one", len(items))
                return [r for it in items for r in self._ingest([it])]
            log.exception("ingest failed on %s; quarantined as internal_error", items[0][0])
            return [self._ingestor.quarantine_failure(items[0][0], items[0][1], e)]

    def _count(self, msgs: list[mqtt.MQTTMessage], results: list[IngestResult]) -> None:
        with self._counts_lock:
            c = self.counts
            c.transactions += 1
            for m, res in zip(msgs, results, strict=True):
                c.batches += 1
                c.redelivered += 1 if m.dup else 0
                c.stored += res.stored
                c.duplicates += res.duplicates
                c.rejected += res.rejected
                c.quarantine_dropped += res.dropped
                for reason, n in res.rejected_reasons.items():
                    c.rejected_by_reason[reason] = c.rejected_by_reason.get(reason, 0) + n
                if res.status == pbatch.ACK_QUARANTINED:
                    c.quarantined += 1
                    c.quarantined_by_reason[res.reason] = c.quarantined_by_reason.get(res.reason, 0) + 1
                    log.warning("quarantined a batch on %s: %s", m.topic, res.reason)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the counts (they change on the processing thread)."""
        with self._counts_lock:
            return asdict(self.counts)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._client.is_connected()

    def start(self, wait_s: float = 10.0) -> IngestWorker:
        """Connect, start the loops, and wait (up to wait_s) until the subscription is granted."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"mcode-ingest-{self.worker_id}", daemon=True)
        self._thread.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        connect(self._client, self._settings, clean_start=False, properties=props)
        self._client.loop_start()
        if not self.subscribed.wait(wait_s):
            self.stop()
            raise RuntimeError(f"ingest worker: no subscription on {self._settings.broker_host}:"
                               f"{self._settings.broker_port}")
        return self

    def stop(self, retire: bool = False, wait_s: float = 30.0) -> None:
        """Finish what was delivered, then disconnect. Deliveries not handled by then were not
        PUBACKed, so the broker redelivers them to this client id's next session.

        `retire`: this worker leaves the group for good. It unsubscribes first (so the broker stops
        queueing batches for it), handles what it already has, and ends its session; otherwise a
        stopped worker's session keeps its share of new batches until it comes back."""
        if retire and self._client.is_connected():
            with self._unsubacks:
                self._unsubacked.clear()
            rc, mid = self._client.unsubscribe(self.subscription)
            with self._unsubacks:
                acked = rc == mqtt.MQTT_ERR_SUCCESS and mid is not None and self._unsubacks.wait_for(
                    lambda: mid in self._unsubacked, wait_s)
            if not acked:
                log.error("no UNSUBACK from the broker (rc %s); the session is ended anyway", rc)
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(wait_s)
            if self._thread.is_alive():  # stuck retrying a database outage: give up on those
                self._stopping.set()
                self._thread.join(wait_s)
            self._thread = None
        props = None
        if retire:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self._client.disconnect(properties=props)
        self._client.loop_stop()
        self.subscribed.clear()

    def __enter__(self) -> IngestWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
