"""The API's request bodies. Two kinds of constraint appear in the OpenAPI document:
- enforced here by pydantic (answered 400 `bad_request`): types, and numbers bounded to what their
  columns hold, so an out-of-range value is a refusal, not a database error;
- enforced by the services with their own error codes (400 `bad_digits`, `bad_pool`, ...):
  documented with `checked(...)`, so clients and generated tests know the valid values, while the
  services keep answering the specific code."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from cloud.http.schemas import I32_MAX, I32_MIN, I64_MAX, I64_MIN
from cloud.services.campaigns import MAX_HOLD_S, MAX_WINDOW_S
from cloud.services.pools import MAX_POOL_BP, MAX_POOL_MINOR
from cloud.services.rules import ALIASES, RED_BALLOON_RULE, RULE_NAMES

Id = Annotated[int, Field(ge=1, le=I32_MAX)]  # ids are positive 32-bit integers
I32 = Annotated[int, Field(ge=I32_MIN, le=I32_MAX)]
I64 = Annotated[int, Field(ge=I64_MIN, le=I64_MAX)]
# Money in minor units: a JSON integer only ("100", true and 2.0 are refused, not coerced).
Money = Annotated[StrictInt, Field(ge=I64_MIN, le=I64_MAX)]
Str200 = Annotated[str, Field(max_length=200)]
HEX_ID = "^[0-9a-fA-F]{16}$"
RULES = [*RULE_NAMES, *ALIASES]
CAMPAIGN_EXAMPLE = {"base_code": "7301", "slots": 4, "digits": 2, "period_s": 60, "pool_minor": 40000,
                    "label_zh": "欢迎光临", "label_en": "Welcome", "rule": "red-balloon",
                    "budget_minor": 1000000, "hold_s": 14 * 24 * 3600}


def checked(**schema: Any) -> dict[str, Any]:
    """`json_schema_extra` for a constraint the service checks itself (with its own error code)."""
    return schema


def example(**fields: Any) -> ConfigDict:
    """A model's example request, for the document (and the first requests a fuzzer sends)."""
    return ConfigDict(json_schema_extra={"examples": [fields]})


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped (a typo must not look like a change)."""
    model_config = ConfigDict(extra="forbid")


POOL_BP_TEXT = ("the pool as a share of each sale, in basis points (floor(amount * pool_bp / 10000)); "
                "null: the fixed pool_minor")
POOL_CAP_TEXT = "with pool_bp: the most one order's pool may be; null: no cap"
WINDOW_TEXT = "seconds after an entry during which its sales are attributed to it (last touch)"


URL_TEXT = "an https:// URL (at most 500 characters), or null"
CURRENCY = "^[A-Z]{3}$"
CURRENCY_TEXT = "ISO 4217 code of the campaign's money, e.g. CNY"


class CampaignFields(BaseModel):
    base_code: str = Field(description="the code being rented",
                           json_schema_extra=checked(pattern="^[0-9]{1,12}$"))
    slots: I32 = Field(description="displays sharing the base code; each slot needs at least 2 "
                                   "values of the suffix", json_schema_extra=checked(minimum=1))
    digits: I32 = Field(description="digits of the rotating suffix (6 is kept for share codes)",
                        json_schema_extra=checked(minimum=1, maximum=5))
    period_s: I32 = Field(description="seconds between code changes",
                          json_schema_extra=checked(minimum=1))
    pool_minor: Money = Field(description="reward pool per order, minor units",
                            json_schema_extra=checked(minimum=0))
    label_zh: str = Field(json_schema_extra=checked(maxLength=200))
    label_en: str = Field(json_schema_extra=checked(maxLength=200))
    rule: str = Field(RED_BALLOON_RULE, json_schema_extra=checked(enum=RULES))
    rule_params: dict[str, Any] = Field(default_factory=dict, description="the rule's parameters "
                                        "(fixed-levels: levels_bp; geometric: a, b)")
    budget_minor: Money | None = Field(None, description="cap on the total paid to sharers; null: no cap",
                                     json_schema_extra=checked(minimum=0))
    hold_s: I32 = Field(14 * 24 * 3600, description="payouts fall due this long after the order",
                        json_schema_extra=checked(minimum=0, maximum=MAX_HOLD_S))
    starts_at_ms: I64 | None = None
    ends_at_ms: I64 | None = Field(None, description="after starts_at_ms")
    landing_zh: str = Field("", json_schema_extra=checked(maxLength=4000))
    landing_en: str = Field("", json_schema_extra=checked(maxLength=4000))
    image_url: str | None = Field(None, description="the landing page's image: " + URL_TEXT,
                                  json_schema_extra=checked(maxLength=500))
    target_url: str | None = Field(None, description="the merchant's online service, reached from the "
                                   "landing page with a click token: " + URL_TEXT,
                                   json_schema_extra=checked(maxLength=500))
    currency: str = Field("CNY", description=CURRENCY_TEXT, json_schema_extra=checked(pattern=CURRENCY))
    pool_bp: I32 | None = Field(None, description=POOL_BP_TEXT,
                                json_schema_extra=checked(minimum=0, maximum=MAX_POOL_BP))
    pool_cap_minor: Money | None = Field(None, description=POOL_CAP_TEXT,
                                         json_schema_extra=checked(minimum=0, maximum=MAX_POOL_MINOR))
    attribution_window_s: I32 = Field(30 * 24 * 3600, description=WINDOW_TEXT,
                                      json_schema_extra=checked(minimum=1, maximum=MAX_WINDOW_S))


class CampaignIn(Strict, CampaignFields):
    model_config = example(**CAMPAIGN_EXAMPLE)
    merchant_id: Id | None = Field(None, description="admin keys only: the tenant")


class AdminCampaignIn(CampaignFields):
    model_config = example(**CAMPAIGN_EXAMPLE, merchant_id=1)
    merchant_id: Id


# A PATCH field's default: left out means unchanged. Typed Any so that the field's own type can
# refuse an explicit null (400) where null means nothing.
KEEP: Any = None


class CampaignPatch(Strict):
    """The fields to change; omitted ones stay. Only budget_minor, the dates, pool_bp and
    pool_cap_minor take null (no cap, no date, a fixed pool); slots, digits, period and base code
    are fixed."""
    model_config = example(pool_minor=50000, budget_minor=2000000)
    pool_minor: Money = Field(KEEP, json_schema_extra=checked(minimum=0))
    rule: str = Field(KEEP, json_schema_extra=checked(enum=RULES))
    rule_params: dict[str, Any] = KEEP
    budget_minor: Money | None = Field(None, json_schema_extra=checked(minimum=0))
    hold_s: I32 = Field(KEEP, json_schema_extra=checked(minimum=0, maximum=MAX_HOLD_S))
    starts_at_ms: I64 | None = None
    ends_at_ms: I64 | None = None
    label_zh: str = Field(KEEP, json_schema_extra=checked(maxLength=200))
    label_en: str = Field(KEEP, json_schema_extra=checked(maxLength=200))
    landing_zh: str = Field(KEEP, json_schema_extra=checked(maxLength=4000))
    landing_en: str = Field(KEEP, json_schema_extra=checked(maxLength=4000))
    image_url: str | None = Field(None, description="null removes the image; " + URL_TEXT,
                                  json_schema_extra=checked(maxLength=500))
    target_url: str | None = Field(None, description="null removes the online service; " + URL_TEXT,
                                   json_schema_extra=checked(maxLength=500))
    currency: str = Field(KEEP, description=CURRENCY_TEXT, json_schema_extra=checked(pattern=CURRENCY))
    pool_bp: I32 | None = Field(None, description=POOL_BP_TEXT,
                                json_schema_extra=checked(minimum=0, maximum=MAX_POOL_BP))
    pool_cap_minor: Money | None = Field(None, description=POOL_CAP_TEXT,
                                         json_schema_extra=checked(minimum=0, maximum=MAX_POOL_MINOR))
    attribution_window_s: I32 = Field(KEEP, description=WINDOW_TEXT,
                                      json_schema_extra=checked(minimum=1, maximum=MAX_WINDOW_S))


class LocationIn(Strict):
    model_config = example(name="Main Street shop", address="1 Main Street")
    merchant_id: Id | None = Field(None, description="admin keys only: the tenant")
    name: str = Field(description="not blank", json_schema_extra=checked(minLength=1, maxLength=200))
    address: str = Field("", json_schema_extra=checked(maxLength=400))


class InstallIn(Strict):
    """Where a technician mounted the device."""
    location_id: Id


class DeviceFields(BaseModel):
    campaign_id: Id
    slot: I32 | None = Field(None, description="default: the lowest free slot",
                             json_schema_extra=checked(minimum=0))
    label: Str200 = ""
    location: Str200 = Field("", description="free text; default: the location's name")
    location_id: Id | None = None
    board: str = Field("", description="hardware board profile (cut to 64 characters)")
    printed: bool = Field(False, description="a printed code (poster, sticker): fixed, never rotates; "
                                             "merchant keys only")


class DeviceIn(Strict, DeviceFields):
    """The cloud draws the id: a chosen one would tell whether another tenant's device has it."""
    model_config = example(campaign_id=1, label="till 1", location_id=1)


class AdminDeviceIn(DeviceFields):
    model_config = example(campaign_id=1, label="window")
    device_id: str | None = Field(None, description="default: a random id",
                                  json_schema_extra=checked(pattern=HEX_ID))


class KeyIn(Strict):
    model_config = example(role="technician", label="installer")
    merchant_id: Id | None = Field(None, description="admin keys only: the tenant")
    role: str = Field(json_schema_extra=checked(enum=["merchant", "technician", "gateway"]))
    label: str = Field("", description="cut to 200 characters")
    gateway_id: str | None = Field(None, description="gateway keys, and only they: the tenant's gateway")


class AdminKeyIn(BaseModel):
    model_config = example(role="merchant", merchant_id=1, label="second key")
    role: str = Field(json_schema_extra=checked(enum=["admin", "merchant", "technician", "gateway"]))
    merchant_id: Id | None = Field(None, description="every role but admin")
    gateway_id: str | None = Field(None, description="gateway keys, and only they")
    label: str = Field("", description="cut to 200 characters")


class OrderIn(Strict):
    model_config = example(entry_id="5d41402abc4b2a76b9719d911017c592", amount_minor=12900)
    entry_id: str = Field(description="the shopper's entry, from GET /r/{code}")
    amount_minor: Money = Field(description="the sale, minor units", json_schema_extra=checked(minimum=1))


class SaleOnlineIn(Strict):
    """A sale the merchant's shop server reports with the click token its visitor brought."""
    model_config = example(click_token="hQ0gV3bS1x2vJd8yq5bE1w", amount_minor=12900)
    merchant_id: Id | None = Field(None, description="admin keys only: the tenant")
    click_token: str = Field(description="the mcode_click query parameter of the shopper's redirect",
                             json_schema_extra=checked(minLength=1, maxLength=64))
    amount_minor: Money = Field(description="the sale, minor units", json_schema_extra=checked(minimum=1))


class SaleTillIn(Strict):
    """A sale at the counter: the checkout code the shopper's phone shows."""
    model_config = example(checkout_code="382716", amount_minor=2000)
    merchant_id: Id | None = Field(None, description="admin keys only: the tenant")
    checkout_code: str = Field(description="6 digits; spaces, dashes and full-width digits are accepted",
                               json_schema_extra=checked(minLength=1, maxLength=40))
    amount_minor: Money = Field(description="the sale, minor units", json_schema_extra=checked(minimum=1))
    campaign_id: Id | None = Field(None, description="the till's campaign, if it has one: a code of "
                                   "another campaign is refused (409 wrong_campaign)")


class AccountIn(Strict):
    model_config = example(account_ref="member 10042")
    account_ref: str = Field(description="the merchant's verified reference: member number, phone",
                             json_schema_extra=checked(minLength=1, maxLength=200))


class MerchantIn(BaseModel):
    model_config = example(name="Shop A")
    name: Str200 = Field(description="not blank", json_schema_extra=checked(minLength=1))


class GatewayIn(BaseModel):
    model_config = example(gateway_id="00000000000000a1", label="back office",
                           public_key="3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    gateway_id: str = Field(json_schema_extra=checked(pattern=HEX_ID))
    public_key: str = Field(description="raw Ed25519 public key, 32 bytes as hex",
                            json_schema_extra=checked(pattern="^[0-9a-fA-F]{64}$"))
    merchant_id: Id | None = Field(None, description="serve only this merchant's devices")
    label: Str200 = ""


class GatewayRotateIn(Strict):
    model_config = example(public_key="3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                           grace_s=86400)
    public_key: str = Field(description="the gateway's new raw Ed25519 public key, 32 bytes as hex",
                            json_schema_extra=checked(pattern="^[0-9a-fA-F]{64}$"))
    grace_s: I32 = Field(86400, description="how long the previous key still verifies batches in flight",
                         json_schema_extra=checked(minimum=0, maximum=30 * 24 * 3600))
    until_bseq: I64 | None = Field(None, description="if set, the previous key verifies only batches "
                                   "below this bseq (the first one signed with the new key)",
                                   json_schema_extra=checked(minimum=0))


class SettleIn(Strict):
    model_config = example(participant_ids=None)
    participant_ids: list[Id] | None = Field(
        None, max_length=1000, description="the sharers to pay what is due to now; null pays every sharer "
                                           "with a due")
