"""Tables. Times are unix milliseconds (BigInteger) so every dialect stores them the same way.
u32 wire fields (epoch, seq, time) are BigInteger: PostgreSQL's INTEGER is signed 32-bit."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    # named constraints: DROP works on every dialect, and migrations can refer to them
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"})


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the key
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    base_code: Mapped[str] = mapped_column(String(16), unique=True)
    slots: Mapped[int] = mapped_column(Integer)
    digits: Mapped[int] = mapped_column(Integer)
    period_s: Mapped[int] = mapped_column(Integer)
    pool_minor: Mapped[int] = mapped_column(BigInteger)  # reward pool per order, minor units
    rule: Mapped[str] = mapped_column(String(32))
    label_zh: Mapped[str] = mapped_column(String(200))
    label_en: Mapped[str] = mapped_column(String(200))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("campaign_id", "slot"),)
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # 8 bytes, lowercase hex
    device_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))  # Ed25519, raw
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("device_id", "epoch", "seq", name="uq_event_key"),
                      Index("ix_events_device_kind", "device_id", "kind"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    epoch: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[int] = mapped_column(SmallInteger)
    flags: Mapped[int] = mapped_column(Integer)
    time: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary(8))
    raw: Mapped[bytes] = mapped_column(LargeBinary(40))
    gateway_id: Mapped[str] = mapped_column(String(16))
    bseq: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class BatchRow(Base):
    """One row per authenticated batch (gateway, bseq); refused batches go to quarantine only."""
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("gateway_id", "bseq", name="uq_batch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(16))
    bseq: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # stored | partial
    records: Mapped[int] = mapped_column(Integer)
    stored: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    ts_ms: Mapped[int] = mapped_column(BigInteger)  # the gateway's clock
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class Quarantine(Base):
    """A refused batch or record, kept byte for byte with its reason. `digest` makes a redelivery
    of the same refusal a no-op."""
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    gateway_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    topic: Mapped[str] = mapped_column(String(300))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Entry(Base):
    """A shopper's arrival through a typed code: a display code (device + window) or a sharer's
    personal code (parent participant)."""
    __tablename__ = "entries"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, unguessable
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), nullable=True, index=True)
    window: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    parent_participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", use_alter=True), nullable=True, index=True)
    visitor: Mapped[str] = mapped_column(String(64), index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Participant(Base):
    """A shopper who became a sharer: one personal share code per entry."""
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("campaign_id", "share_code", name="uq_share_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id"), unique=True)
    share_code: Mapped[str] = mapped_column(String(6))
    visitor: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("merchant_id", "idempotency_key", name="uq_order_idem"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    pool_minor: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(32))
    response_json: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Payout(Base):
    """One part of an order's pool: level 1.. for participants (closest to the shopper first);
    participant NULL and level 0 for the charity account."""
    __tablename__ = "payouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True)
    level: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class GatewayConfigRow(Base):
    """The latest config signed for a gateway (cloud/gateway_config.py), and what its last
    delivery report said: the version it runs, and why it refused a newer one if it did."""
    __tablename__ = "gateway_configs"
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)  # rises by one per signed config
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the signed envelope, as published
    firmware_json: Mapped[str] = mapped_column(Text, default="{}")  # board -> target version
    applied_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refused: Mapped[str] = mapped_column(String(200), default="")
    reported_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DeviceConfigWrite(Base):
    """The latest configuration sealed for a device (protocol/devconfig.py); gateways carry it."""
    __tablename__ = "device_config_writes"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)  # the blob's; rises by one per write
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class DeviceConfigResult(Base):
    """What a gateway reported of delivering one write to one device: ok, refused (reason), pending."""
    __tablename__ = "device_config_results"
    __table_args__ = (UniqueConstraint("gateway_id", "device_id", "version", name="uq_config_result"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")
    device_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reported_at_ms: Mapped[int] = mapped_column(BigInteger)
