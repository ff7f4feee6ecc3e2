"""The API's answers as pydantic models, for the OpenAPI document and for FastAPI to check what a
handler returns. Every model forbids fields it does not list: a service that starts answering a
new field fails loudly in the tests (a 500) instead of the field being dropped or left out of the
document. Error answers are `Error`; `errors(...)` documents them per operation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

I32_MAX = 2**31 - 1  # Integer columns (ids, slots, periods) are signed 32-bit on PostgreSQL
I64_MAX = 2**63 - 1  # BigInteger columns (money, times in ms)
I64_MIN = -(2**63)
I32_MIN = -(2**31)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(Out):
    """Every error answer. `code` is stable (clients branch on it); the messages are for people."""
    code: str = Field(min_length=1, description="stable machine-readable code, e.g. unknown_campaign")
    message: str = Field(min_length=1, description="what went wrong, in English")
    message_zh: str = Field(min_length=1, description="the same in zh-CN")


_ERROR_TEXT = {
    400: "Invalid request: a parameter or body field of the wrong type or out of range (code "
         "`bad_request`), a value the service refuses (its own code, e.g. `bad_pool`), or text "
         "the database cannot store, such as a NUL character (`bad_value`)",
    401: "No key, or an unknown or revoked key (code `unauthorized`)",
    403: "The key's role may not do this, or the key names another tenant (code `forbidden`); "
         "`admin_disabled` when no admin key is configured",
    404: "No such object, or it belongs to another tenant (codes `unknown_*`)",
    409: "Conflicts with the current state (e.g. `base_code_taken`, `slot_taken`, "
         "`idempotency_conflict`, `campaign_released`)",
    410: "Gone: the code is no longer showing (`code_expired`) or its campaign is not running "
         "(`campaign_not_started`, `campaign_ended`)",
    429: "Too many requests (code `rate_limited`); try again after Retry-After seconds",
}
ERROR_REF = "#/components/schemas/Error"
KEYED = (400, 401, 403)  # every keyed operation with parameters can answer these


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for FastAPI: the Error schema under each status, always as JSON (FastAPI would
    give a `model` the route's media type, text/html for a page). The app adds Error to the
    document's components (cloud/app.py)."""
    out: dict[int | str, dict[str, Any]] = {}
    for st in statuses:
        r: dict[str, Any] = {"description": _ERROR_TEXT[st],
                             "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}
        if st == 429:
            r["headers"] = {"Retry-After": {"description": "seconds to wait before trying again",
                                            "schema": {"type": "integer", "minimum": 1}}}
        out[st] = r
    return out


class Health(Out):
    status: Literal["ok"]


class Text(Out):
    zh: str
    en: str


# registry ----------------------------------------------------------------------------------------

class CampaignOut(Out):
    campaign_id: int
    merchant_id: int
    base_code: str
    slots: int
    digits: int
    period_s: int
    pool_minor: int = Field(description="reward pool per order, minor units")
    rule: str
    rule_params: dict[str, Any] = Field(description="the rule's parameters, defaults filled in")
    budget_minor: int | None = Field(description="cap on the total paid to sharers; null: no cap")
    spent_minor: int = Field(description="paid to sharers so far, net of refunds")
    hold_s: int = Field(description="payouts fall due this long after the order")
    starts_at_ms: int | None
    ends_at_ms: int | None
    released_at_ms: int | None = Field(description="set once the base code is given back")
    label: Text
    landing: Text
    image_url: str | None = Field(description="the landing page's image (https), or null")
    target_url: str | None = Field(description="the merchant's online service (https), or null")
    currency: str = Field(description="ISO 4217, e.g. CNY")
    pool_bp: int | None = Field(description="the pool as basis points of each sale; null: pool_minor")
    pool_cap_minor: int | None = Field(description="with pool_bp: the most one order's pool may be")
    attribution_window_s: int = Field(description="sales are attributed to an entry this long after it")


class CampaignList(Out):
    campaigns: list[CampaignOut]


class LocationOut(Out):
    location_id: int
    merchant_id: int
    name: str
    address: str


class LocationList(Out):
    locations: list[LocationOut]


class DeviceOut(Out):
    """A device as merchants and technicians list it: no key."""
    device_id: str
    campaign_id: int
    base_code: str
    slot: int
    label: str
    location: str
    location_id: int | None
    board: str
    printed: bool
    code: str | None = Field(description="a printed device's fixed code; null for a display")
    installed_at_ms: int | None = Field(default=None, description="when a technician marked it installed "
                                        "at its location; null until then")


class DeviceList(Out):
    devices: list[DeviceOut]


class DeviceConfig(Out):
    """The flashing config, device key included: for the technician at the device."""
    device_id: str
    key: str = Field(description="the 32-byte device key, hex")
    base: str
    slot: int
    slots: int
    digits: int
    period: int
    label: str
    name: str = Field(description="the BLE name")
    printed: bool = Field(False, description="present (true) only for a printed code")
    code: str | None = Field(None, description="present only for a printed code: its fixed code")


class GatewayOut(Out):
    gateway_id: str
    public_key: str = Field(description="raw Ed25519 public key, hex")
    merchant_id: int | None
    label: str


class GatewayList(Out):
    gateways: list[GatewayOut]


class GatewayTrust(Out):
    gateway_id: str
    public_key: str = Field(description="the current raw Ed25519 public key, hex")
    merchant_id: int | None
    revoked_at_ms: int | None = Field(description="set: every later batch is quarantined as gateway_revoked")
    key_rotated_at_ms: int | None
    previous_key_until_ms: int | None = Field(description="the previous key verifies batches received "
                                              "before this time")
    previous_key_until_bseq: int | None = Field(description="and, if set, only below this bseq")


class GatewayDeviceKey(Out):
    device_id: str
    base: str
    slot: int
    label: str
    gateway_key: str = Field(description="HMAC(device key, gateway id): the gateway's command key, hex")


class GatewayDevices(Out):
    gateway_id: str
    devices: list[GatewayDeviceKey]


class MerchantCreated(Out):
    merchant_id: int
    name: str
    api_key: str = Field(description="the merchant's first key; shown only here")


# keys --------------------------------------------------------------------------------------------

class KeyIssued(Out):
    key_id: int
    role: str
    merchant_id: int | None
    gateway_id: str | None
    label: str
    api_key: str = Field(description="the key itself; shown only here")


class KeyInfo(Out):
    key_id: int
    role: str
    label: str
    gateway_id: str | None
    created_at_ms: int
    revoked_at_ms: int | None


class KeyList(Out):
    keys: list[KeyInfo]


class KeyRevoked(Out):
    key_id: int
    revoked_at_ms: int


# entries, orders, chains -------------------------------------------------------------------------

class EntryOut(Out):
    """A shopper's arrival through a typed code."""
    entry_id: str = Field(description="a 128-bit secret: whoever holds it may share and order")
    campaign: int
    base_code: str
    device_id: str | None = Field(description="the display or printed code typed; null via a share code")
    root_device_id: str | None = Field(description="the display at the root of the share chain")
    depth: int = Field(description="sharers between the display and this shopper")
    window: int | None = Field(description="the rotation window of the typed code; null if none")
    code: str
    via: Literal["display", "printed", "share", "base"] = Field(
        description="display: a rotating code (presence); printed: a fixed code; share: a sharer's "
                    "code; base: a bare base code, no proof of presence")
    landing: Text = Field(description="the campaign's label")
    landing_text: Text = Field(description="the campaign's landing text")


class ShareOut(Out):
    participant_id: int
    entry_id: str
    base_code: str
    share_code: str = Field(description="the shopper's personal code, BASE-NNNNNN")


class RuleNode(Out):
    """One person in a chain as the rule saw it, after merging identities."""
    participant_id: int
    share_code: str
    merged_participants: list[int]


class PayoutOut(Out):
    level: int = Field(description="1 = closest to the shopper")
    participant_id: int
    share_code: str
    merged_participants: list[int]
    amount_minor: int


class OrderOut(Out):
    order_id: int
    entry_id: str
    campaign: int
    base_code: str
    amount_minor: int
    pool_minor: int
    rule: str
    rule_params: dict[str, Any]
    budget_cap_minor: int | None = Field(description="the budget left when the order was booked")
    payouts: list[PayoutOut]
    paid_minor: int
    remainder_minor: int
    remainder_to: str = Field(description="charity or merchant")
    charity_minor: int = Field(description="the remainder if it goes to charity, else 0")
    due_at_ms: int
    status: Literal["placed", "refunded"]
    channel: Literal["api", "online", "till"] = Field(
        description="how the sale came: POST /orders (api), a click token (online), a checkout code (till)")


class OrderDetail(OrderOut):
    refunded_at_ms: int | None
    chain: list[RuleNode] = Field(description="the chain as the rule saw it")


class RefundOut(Out):
    order_id: int
    status: Literal["refunded"]
    refunded_at_ms: int
    reversed_paid_minor: int
    reversed_pool_minor: int


class ChainRoot(Out):
    device_id: str
    label: str
    location: str
    location_id: int | None


class ChainSharer(Out):
    participant_id: int
    share_code: str
    account_id: int | None


class ChainShopper(Out):
    entry_id: str
    depth: int


class ChainOut(Out):
    """Who brought whom: the display at the root, each sharer (display first), the shopper."""
    entry_id: str
    campaign_id: int
    root: ChainRoot | None
    sharers: list[ChainSharer]
    shopper: ChainShopper
    rule_nodes: list[RuleNode] = Field(description="the chain as a rule sees it, closest first")


class AccountLinked(Out):
    participant_id: int
    account_id: int


# ledger ------------------------------------------------------------------------------------------

class LedgerLine(Out):
    account: str
    txn: Literal["order", "refund", "reject", "settlement"]
    order_id: int | None
    booked_at_ms: int
    amount_minor: int
    due_at_ms: int
    held: bool = Field(description="not yet due")
    payout_id: int | None = Field(None, description="a sharer's credit from an order: its payout")
    proof: str | None = Field(None, description="that payout's proof bundle (trust log), a path")


class Totals(Out):
    balance_minor: int
    held_minor: int
    due_minor: int


class SharerStatement(Out):
    participant_id: int
    campaign_id: int
    share_code: str
    entries: list[LedgerLine]
    balance_minor: int
    held_minor: int = Field(description="credits not yet due (the campaign's hold period)")
    due_minor: int


class CampaignStatement(Out):
    campaign_id: int
    entries: list[LedgerLine]
    accounts: dict[str, Totals] = Field(description="totals per account")
    balance_minor: int
    held_minor: int
    due_minor: int


class Balances(Out):
    accounts: dict[str, int]
    sum_minor: int = Field(description="always 0: the ledger is double-entry")


class Bilingual(Out):
    zh: str
    en: str


class CurrencyTotals(Out):
    currency: str = Field(description="ISO 4217, e.g. CNY")
    balance_minor: int
    held_minor: int = Field(description="not yet due (the campaign's hold period)")
    due_minor: int = Field(description="available")
    next_due_at_ms: int | None = Field(description="when the next held credit becomes available")


class PayoutLine(Out):
    payout_id: int = Field(description="stable; /me#payout-<id> shows it (its proof comes in issue 16)")
    order_id: int | None
    campaign_id: int
    base_code: str
    label: Bilingual
    level: int = Field(description="1: you brought the buyer; 2: you brought who brought them; ...")
    channel: str = Field(description="api, online or till")
    amount_minor: int
    net_minor: int = Field(description="after a refund, 0")
    currency: str
    booked_at_ms: int
    due_at_ms: int
    held: bool
    refunded: bool


class MyEarnings(Out):
    """Totals over every phone of the person holding this phone (or this phone alone)."""
    sharers: list[SharerStatement]
    balance_minor: int = Field(description="summed over currencies; see totals")
    held_minor: int
    due_minor: int
    person: bool = Field(description="this phone belongs to a person with a recovery code")
    phones: int
    totals: list[CurrencyTotals] = Field(description="per currency")
    history: list[PayoutLine] = Field(description="one line per payout, newest first")


CSV_STATEMENT = {"content": {"text/csv": {"schema": {"type": "string"},
                                          "example": "account,txn,order_id,booked_at_ms,amount_minor,"
                                                     "due_at_ms,held\n"}},
                 "description": "The statement; with format=csv, its entries as CSV"}


# rules, merchant page ----------------------------------------------------------------------------

class RulePreview(Out):
    rule: str
    params: dict[str, Any]
    pool: int
    depth: int
    budget_cap_minor: int | None
    payouts: list[int] = Field(description="closest participant to the shopper first")
    remainder: int
    remainder_to: str


class DeviceStats(Out):
    device_id: str
    label: str
    location: str
    base_code: str
    slot: int
    scans: int
    events: int
    gaps: int
    entries: int
    last_received_ms: int | None


class EntriesByVia(Out):
    display: int = Field(description="through a display's rotating code (proof of presence)")
    printed: int = Field(description="through a printed code")
    share: int = Field(description="through a sharer's code")
    base: int = Field(description="a bare base code typed: no proof of presence")


class StatsTotals(Out):
    scans: int
    events: int
    gaps: int
    entries: int
    entries_by_via: EntriesByVia
    orders: int
    pool_paid_minor: int


class MerchantStats(Out):
    merchant_id: int
    devices: list[DeviceStats]
    totals: StatsTotals


class BaseCodeFound(Out):
    base_code: str
    free: bool = Field(description="no live campaign rents it")
    overlaps: list[str] = Field(description="rented codes it prefixes or that prefix it (a shopper "
                                            "typing digits without the dash reaches the longest)")


class BaseCodeSearch(Out):
    pattern: str = Field(description="the query as searched: digits, ? for any digit")
    exact: bool = Field(description="one code asked (free or taken); else free codes that match")
    codes: list[BaseCodeFound]


class SettingChange(Out):
    field: str
    before: Any = Field(description="null for a first version")
    after: Any


class DraftSaved(Out):
    at_ms: int
    by: str


class CampaignDraft(Out):
    """A campaign, its live settings, its draft's (the live ones when there is no draft) and what
    publishing the draft would change."""
    campaign: CampaignOut
    live: dict[str, Any]
    draft: dict[str, Any]
    has_draft: bool
    changes: list[SettingChange]
    version: int | None = Field(description="the newest published version; null: never published")
    saved: DraftSaved | None


class CampaignVersion(Out):
    version: int
    published_at_ms: int | None
    published_by: str | None
    settings: dict[str, Any]
    changes: list[SettingChange] = Field(description="from the version before (every field for v1)")


class CampaignVersionList(Out):
    versions: list[CampaignVersion]


# payouts (cloud/services/payouts.py) -------------------------------------------------------------

class SharerMoney(Out):
    participant_id: int
    share_code: str
    campaign_id: int
    campaign: str
    currency: str
    earned_minor: int = Field(description="order credits booked to the sharer")
    refunded_minor: int = Field(description="their reversals: refunds and fraud rejects")
    paid_minor: int = Field(description="paid in settlements")
    held_minor: int = Field(description="inside the hold period, or on an order with a fraud flag open "
                                        "or held")
    due_minor: int = Field(description="earned - refunded - paid - held; negative if a refund came after "
                                       "a payment")


class PayoutTotals(Out):
    currency: str
    sharers: int
    earned_minor: int
    refunded_minor: int
    paid_minor: int
    held_minor: int
    due_minor: int


class HeldTotal(Out):
    currency: str
    sharers: int
    held_minor: int


class DueList(Out):
    at_ms: int
    sharers: list[SharerMoney] = Field(description="sharers with a positive due, largest first")
    totals: list[PayoutTotals] = Field(description="per currency: the sums of the rows")
    held: list[HeldTotal] = Field(description="what is still held, across all sharers (not in the rows)")


class SettlementLineOut(Out):
    participant_id: int
    share_code: str
    campaign_id: int
    campaign: str
    currency: str
    amount_minor: int
    txn_id: int = Field(description="the ledger transaction of kind settlement")


class SettlementOut(Out):
    settlement_id: int
    paid_at_ms: int
    created_by: str
    total_minor: int
    lines: list[SettlementLineOut]


class SettlementSummary(Out):
    settlement_id: int
    paid_at_ms: int
    created_by: str
    currency: str
    sharers: int
    total_minor: int


class SettlementList(Out):
    settlements: list[SettlementSummary] = Field(description="newest first, one row per currency")


class StatementOrder(Out):
    order_id: int
    credited_minor: int
    reversed_minor: int
    net_minor: int
    due_at_ms: int
    state: Literal["held", "flagged", "cleared", "reversed"]
    payout_id: int | None
    proof: str | None = Field(description="the payout's proof bundle (trust log), a path")


class StatementSettlement(Out):
    settlement_id: int
    paid_at_ms: int
    amount_minor: int
    txn_id: int


class PayoutStatement(SharerMoney):
    at_ms: int
    orders: list[StatementOrder]
    settlements: list[StatementSettlement]


CSV_SETTLEMENT = {"content": {"text/csv": {"schema": {"type": "string"},
                                           "example": "settlement_id,paid_at,sharer_id,share_code,"
                                                      "amount_minor,amount,currency\n"}},
                  "description": "The settlement; with format=csv, one line per sharer paid"}


class ReviewLink(Out):
    """One link of a flagged order's chain, the display's end first: who (a phone's tag, its
    person and verified account if any), when it arrived, how soon it acted, whether it was new."""
    level: int = Field(description="0 the buyer, 1 the sharer closest to them, ...")
    role: Literal["buyer", "sharer"]
    via: str = Field(description="display, printed, share or base: how this link arrived")
    code: str
    client: str = Field(description="8 hex digits of the SHA-256 of the phone's visitor id")
    person_id: int | None
    account_id: int | None
    arrived_at_ms: int
    acted_after_ms: int = Field(description="the buyer: until the order; a sharer: until its code "
                                            "brought the next link")
    fresh: bool = Field(description="no entry of this client with the merchant before this one")
    code_entries: int = Field(description="entries its share code brought up to the order (sharers)")


class ReviewFlag(Out):
    flag_id: int
    rule: Literal["velocity", "self_referral", "fresh_chain", "sybil"]
    status: Literal["open", "held", "released", "rejected"]
    created_at_ms: int
    detail: dict[str, Any] = Field(description="the numbers that fired the rule (docs/fraud.md)")


class ReviewOrder(Out):
    order_id: int
    campaign_id: int
    base_code: str
    currency: str
    amount_minor: int
    pool_minor: int
    paid_minor: int = Field(description="the order's sharer credits, held while the review is open or held")
    rule: str
    order_status: str
    placed_at_ms: int
    status: Literal["open", "held", "released", "rejected"]
    decided_at_ms: int | None
    decided_by: str | None
    flags: list[ReviewFlag]
    chain: list[ReviewLink]


class ReviewCounts(Out):
    open: int
    held: int
    released: int
    rejected: int


class ReviewList(Out):
    orders: list[ReviewOrder]
    counts: ReviewCounts
    rules: list[str]


class ReviewDecision(Out):
    order_id: int
    status: Literal["open", "held", "released", "rejected"]
    decided_at_ms: int | None
    decided_by: str | None
    reject_txn_id: int | None = Field(description="the ledger transaction of kind reject, once rejected")
    replayed: bool = Field(description="true if the order already had this decision")


class ReviewScan(Out):
    orders: int = Field(description="placed orders read")
    raised: int = Field(description="flags raised that were missing")
