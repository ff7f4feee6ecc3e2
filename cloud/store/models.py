"""Tables. Times are unix milliseconds (BigInteger) so every dialect stores them the same way.
u32 wire fields (epoch, seq, time) are BigInteger: PostgreSQL's INTEGER is signed 32-bit."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    # named constraints: DROP works on every dialect, and migrations can refer to them
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"})


class Merchant(Base):
    """A tenant: everything a merchant key can see hangs off one of these."""
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """An API key with one role (cloud/auth.py). Only the SHA-256 of the key is stored; keys are
    256-bit random tokens, so a plain hash is enough. Every role but admin belongs to one merchant."""
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | merchant | technician | gateway
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True, index=True)
    gateway_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # role gateway only
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebSession(Base):
    """A login on the merchant page (cloud/services/web_sessions.py). Only the SHA-256 of the
    session token is stored (the token is 256 random bits, like an API key). user_id is for
    person logins (issue 14); a login with a merchant key has none."""
    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    shared_link_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a read-only link's
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class User(Base):
    """A person who signs in to the merchant console with a password (argon2id; only its hash is
    kept). Roles: owner (everything), staff (the till only), viewer (reads the dashboard)."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    disabled_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Invite(Base):
    """A one-time invitation to become a user of a merchant with a role (`mcode cloud user
    invite`); only the SHA-256 of its code is kept."""
    __tablename__ = "invites"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class SharedLink(Base):
    """A revocable read-only link to a merchant's dashboard (like Plausible's shared links). Only the
    SHA-256 of its code is kept; revoking it ends the sessions it opened."""
    __tablename__ = "shared_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Location(Base):
    """A shop or a spot in it where displays hang."""
    __tablename__ = "locations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Campaign(Base):
    """A rented base code and what it pays. The base code is unique among rented (not released)
    campaigns only, so a released code can be rented again."""
    __tablename__ = "campaigns"
    __table_args__ = (Index("uq_campaigns_rented_base", "base_code", unique=True,
                            sqlite_where=text("released_at_ms IS NULL"),
                            postgresql_where=text("released_at_ms IS NULL")),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    base_code: Mapped[str] = mapped_column(String(16))
    slots: Mapped[int] = mapped_column(Integer)
    digits: Mapped[int] = mapped_column(Integer)
    period_s: Mapped[int] = mapped_column(Integer)
    pool_minor: Mapped[int] = mapped_column(BigInteger)  # reward pool per order, minor units
    rule: Mapped[str] = mapped_column(String(32))
    rule_params_json: Mapped[str] = mapped_column(Text, default="{}")  # rules.normalized_params
    budget_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: no cap
    spent_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # paid to sharers, net of refunds
    hold_s: Mapped[int] = mapped_column(Integer, default=14 * 24 * 3600)  # payouts due after this
    starts_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ends_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    released_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the landing page (cloud/services/landing.py): an https image, the merchant's online service
    # (reached through GET /go/...), and the currency of its money (ISO 4217)
    image_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    target_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    label_zh: Mapped[str] = mapped_column(String(200))
    label_en: Mapped[str] = mapped_column(String(200))
    landing_zh: Mapped[str] = mapped_column(Text, default="")
    landing_en: Mapped[str] = mapped_column(Text, default="")
    # the pool (cloud/services/pools.py): pool_minor per order, or with pool_bp set, that share of
    # the sale in basis points, at most pool_cap_minor
    pool_bp: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pool_cap_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # a sale is attributed to an entry at most this long after it was made (cloud/services/sales.py)
    attribution_window_s: Mapped[int] = mapped_column(Integer, default=30 * 24 * 3600)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("campaign_id", "slot"),)
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # 8 bytes, lowercase hex
    # the 32-byte root key, sealed under the master key (cloud/store/vault.py: 65 bytes); read it
    # with vault.of(session).open_device_key(id, key_sealed)
    key_sealed: Mapped[bytes] = mapped_column(LargeBinary(80))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(200), default="")  # free text, as on the label
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), nullable=True, index=True)
    board: Mapped[str] = mapped_column(String(64), default="")  # hardware/ board profile name
    # a printed code (a poster, a sticker): its slot shows one fixed value, slot + slots * 0, and
    # never rotates; it proves nothing about presence, so it is only as good as a QR code
    printed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # when a technician marked it installed at its location (mcode tools provision's last step)
    installed_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))  # Ed25519, raw
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Trust (cloud/services/gateway_trust.py): a revoked gateway's batches are quarantined as
    # gateway_revoked. After a key rotation the previous key still verifies batches received before
    # prev_key_until_ms whose bseq is below prev_key_until_bseq (when set): what was in flight.
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    key_rotated_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prev_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    prev_key_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prev_key_until_bseq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


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
    gateway_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    topic: Mapped[str] = mapped_column(String(300))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class QuarantineDrop(Base):
    """What the quarantine quota turned away, per gateway ("" when no gateway could be named):
    refusals over a gateway's quota are counted and logged here instead of kept."""
    __tablename__ = "quarantine_drops"
    gateway_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_reason: Mapped[str] = mapped_column(String(64), default="")
    last_at_ms: Mapped[int] = mapped_column(BigInteger, default=0)


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
    # the display at the root of the share chain (copied down at each share) and how many sharers
    # stand between it and this shopper
    root_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    visitor: Mapped[str] = mapped_column(String(64), index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # how the shopper came: display (a rotating code: presence), printed (a fixed code), share (a
    # sharer's code), base (a bare base code typed: no presence proof at all)
    via: Mapped[str] = mapped_column(String(8), default="display")
    # the order entries were stored in, for the dashboard's rollups (cloud/services/rollups.py):
    # on PostgreSQL a sequence fills it (migration 0015); SQLite leaves it NULL and has its rowid
    roll_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True,
                                                 server_default=FetchedValue())


class Participant(Base):
    """A shopper who became a sharer: one personal share code per entry."""
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("campaign_id", "share_code", name="uq_share_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id"), unique=True)
    share_code: Mapped[str] = mapped_column(String(6))
    visitor: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("sharer_accounts.id"), nullable=True,
                                                   index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class SavedCode(Base):
    """A campaign a shopper saved from its landing page ("my codes" on /me), by visitor id
    (cloud/services/saved.py). One row per visitor and campaign."""
    __tablename__ = "saved_codes"
    __table_args__ = (UniqueConstraint("visitor", "campaign_id", name="uq_saved_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    visitor: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class SharerAccount(Base):
    """A sharer's account as the merchant verified it (a member number, a phone number): only
    HMAC(account key, SHA-256(reference)) is kept, the account key derived from the master key
    (cloud/store/vault.py). Participants linked to one account are one node of a share chain."""
    __tablename__ = "sharer_accounts"
    __table_args__ = (UniqueConstraint("merchant_id", "ref_hash", name="uq_sharer_account"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    ref_hash: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Person(Base):
    """A shopper who keeps their earnings across phones (cloud/services/people.py): only the
    SHA-256 of their recovery code is stored (the code is 80 random bits)."""
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recovery_hash: Mapped[str] = mapped_column(String(64), unique=True)
    recovery_made_at_ms: Mapped[int] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class PersonPhone(Base):
    """A phone of a person: its visitor id (the signed cookie's id) belongs to at most one person."""
    __tablename__ = "person_phones"
    visitor: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    linked_at_ms: Mapped[int] = mapped_column(BigInteger)


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
    rule_params_json: Mapped[str] = mapped_column(Text, default="{}")
    chain_json: Mapped[str] = mapped_column(Text, default="[]")  # the chain as the rule saw it: proof
    response_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="placed")  # placed | refunded
    channel: Mapped[str] = mapped_column(String(8), default="api")  # api | online | till
    refund_json: Mapped[str] = mapped_column(Text, default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    refunded_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the published campaign version (campaign_versions.version) that paid it; None before versions
    campaign_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Click(Base):
    """A shopper's click to the merchant's online service (GET /go/{entry}): the token rides to the
    shop in the redirect and comes back with the sale (POST /sales/online). Only its SHA-256 is
    kept (the token is 128 random bits)."""
    __tablename__ = "clicks"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class CheckoutCode(Base):
    """A short numeric code a shopper shows at the counter (cloud/services/checkout.py), bound to
    their entry until expires_at_ms and used by at most one order. Unique per merchant among the
    rows kept (live ones and those expired less than a day ago), so a cashier needs no campaign."""
    __tablename__ = "checkout_codes"
    __table_args__ = (UniqueConstraint("merchant_id", "code", name="uq_checkout_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id"), index=True)
    code: Mapped[str] = mapped_column(String(8))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)


class Payout(Base):
    """One part of an order's pool: level 1.. for participants (closest to the shopper first);
    participant NULL and level 0 for the remainder, whose payee is charity or merchant."""
    __tablename__ = "payouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True,
                                                       index=True)
    level: Mapped[int] = mapped_column(Integer)
    payee: Mapped[str] = mapped_column(String(16), default="participant")  # | charity | merchant
    amount_minor: Mapped[int] = mapped_column(BigInteger)



class CampaignVersion(Base):
    """A campaign's settings as published (issue 14 part 3, cloud/services/campaign_versions.py):
    version 1, 2, ... in order. The draft is the one unpublished row (published_at_ms None,
    version 0); it takes the next number when it is published."""
    __tablename__ = "campaign_versions"
    __table_args__ = (UniqueConstraint("campaign_id", "version", name="uq_campaign_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    settings_json: Mapped[str] = mapped_column(Text)  # campaign_versions.SETTINGS, as JSON
    saved_at_ms: Mapped[int] = mapped_column(BigInteger)
    saved_by: Mapped[str] = mapped_column(String(100))
    published_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    published_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class FraudFlag(Base):
    """A review flag on an order (issue 14 part 6): one row per rule that fired. While a flag is
    open or held, the order's sharer payouts are not due (cloud/services/payouts.py); released
    lets them through, rejected reverses them in the ledger."""
    __tablename__ = "fraud_flags"
    __table_args__ = (UniqueConstraint("order_id", "rule", name="uq_fraud_flag_order_rule"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    rule: Mapped[str] = mapped_column(String(32))  # velocity | self_referral | fresh_chain | sybil
    detail_json: Mapped[str] = mapped_column(Text, default="{}")  # the numbers that fired it
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|held|released|rejected
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    decided_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)

class LedgerAccount(Base):
    """A double-entry account (cloud/ledger.py). `ref` names it uniquely: campaign_budget:<campaign>,
    sharer:<participant>, charity:<merchant>, merchant:<merchant>."""
    __tablename__ = "ledger_accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True,
                                                       index=True)


class LedgerTxn(Base):
    """One balanced transaction: its entries sum to zero. One per (order, kind)."""
    __tablename__ = "ledger_txns"
    __table_args__ = (UniqueConstraint("order_id", "kind", name="uq_ledger_txn_order_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # order | refund | reject | settlement
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class LedgerEntry(Base):
    """A signed amount on one account: credits positive, debits negative."""
    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_txns.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    due_at_ms: Mapped[int] = mapped_column(BigInteger)  # held until then


class Settlement(Base):
    """A batch of due sharer payouts marked paid (cloud/services/payouts.py): one ledger txn of kind
    settlement per line. Idempotent per (merchant, idempotency_key): a retry answers the first batch."""
    __tablename__ = "settlements"
    __table_args__ = (UniqueConstraint("merchant_id", "idempotency_key", name="uq_settlement_idem"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))  # of the sharers asked for
    total_minor: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class SettlementLine(Base):
    """One sharer paid in a settlement: the amount that was due, booked by ledger txn `txn_id`."""
    __tablename__ = "settlement_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    settlement_id: Mapped[int] = mapped_column(ForeignKey("settlements.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_txns.id"), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


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


class RollupState(Base):
    """How far the dashboard's rollups have read each source (cloud/services/rollups.py): every row
    of `source` with an id up to rolled_id is counted in the rollup tables, none above it."""
    __tablename__ = "rollup_state"
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    rolled_id: Mapped[int] = mapped_column(BigInteger)


class RollupDeviceDay(Base):
    """Per UTC day, campaign and display: taps by the tapped display; entries, shares, orders (placed,
    net of refunds), revenue and paid to sharers by the display at the chain's root ('' for none)."""
    __tablename__ = "rollup_device_days"
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    device_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    taps: Mapped[int] = mapped_column(BigInteger, default=0)
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    shares: Mapped[int] = mapped_column(BigInteger, default=0)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupCampaignHour(Base):
    """The same figures per hour and campaign, all displays together (the headlines and series)."""
    __tablename__ = "rollup_campaign_hours"
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    taps: Mapped[int] = mapped_column(BigInteger, default=0)
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    shares: Mapped[int] = mapped_column(BigInteger, default=0)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupDepthDay(Base):
    """Entries per UTC day, campaign and chain depth."""
    __tablename__ = "rollup_depth_days"
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    depth: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entries: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupSharerDay(Base):
    """Per UTC day, campaign and sharer: entries it brought, placed orders on them, and its payouts
    on placed orders (how many, how much)."""
    __tablename__ = "rollup_sharer_days"
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    participant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    payouts: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupDeviceEpoch(Base):
    """Per device and log epoch, over all time: events, taps, the lowest and highest seq and the last
    receipt (device health; gaps are max - min + 1 - events within an epoch, cloud/services/gaps.py)."""
    __tablename__ = "rollup_device_epochs"
    device_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    taps: Mapped[int] = mapped_column(BigInteger, default=0)
    min_seq: Mapped[int] = mapped_column(BigInteger)
    max_seq: Mapped[int] = mapped_column(BigInteger)
    last_received_ms: Mapped[int] = mapped_column(BigInteger)


class RateBucket(Base):
    """A token bucket of the rate limits (cloud/services/ratelimits.py), shared by every API process.
    key is "<limit>:<campaign id or client address>", never text a client typed. A row whose bucket
    has refilled (full_at_ms passed) means the same as no row, and is swept."""
    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    full_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class LogState(Base):
    """The trust log's one row (id 1): its size and frontier (one 32-byte hash per set bit of the
    size, protocol/merkle.py Frontier). Every append updates it first, so appends are serialized
    by its row lock (PostgreSQL) or the write lock (SQLite) and indexes never fork or skip."""
    __tablename__ = "log_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)


class LogLeaf(Base):
    """A leaf of the trust log (protocol/leaves.py), append-only; `ref` finds it (e.g. order:7)."""
    __tablename__ = "log_leaves"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(120), index=True)
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class LogNode(Base):
    """A perfect subtree of 2**level leaves starting at leaf idx * 2**level (level >= 1; level 0
    is log_leaves.hash), as Frontier.append hands them out: every proof reads O(log n) of them."""
    __tablename__ = "log_nodes"
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    """A checkpoint the cloud signed (C2SP signed note), one per tree size."""
    __tablename__ = "log_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class LogCosignature(Base):
    """A witness's cosignature line (tlog-cosignature v1) over the checkpoint of that size."""
    __tablename__ = "log_cosignatures"
    size: Mapped[int] = mapped_column(ForeignKey("log_checkpoints.size"), primary_key=True)
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class BatchEnvelope(Base):
    """An accepted batch exactly as the gateway signed and sent it, kept so anyone with the keys
    can check it again; its SHA-256 is in the batch's log leaf."""
    __tablename__ = "batch_envelopes"
    gateway_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    bseq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class GatewayStatus(Base):
    """A gateway's latest retained status (protocol.health), as the status listener last stored
    it (cloud/services/gateway_status.py): online with its health figures, or offline."""
    __tablename__ = "gateway_status"
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # online | offline
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the gateway's ts (online)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    figures_json: Mapped[str] = mapped_column(Text, default="{}")  # the last online message's figures
    refused: Mapped[str] = mapped_column(String(200), default="")  # why the last refused message was
    refused_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DeviceHealth(Base):
    """A device's latest state as a gateway's status saw it: last pulled, battery-low bit,
    firmware version and RSSI (None where the gateway did not know)."""
    __tablename__ = "device_health"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    seen_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    battery_low: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    firmware: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rssi: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    reported_at_ms: Mapped[int] = mapped_column(BigInteger)  # ts of the status that last changed it
