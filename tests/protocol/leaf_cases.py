"""Fixed inputs for the leaf vectors in leaf_vectors.json and docs/trust.md (one per shape)."""

from __future__ import annotations

from protocol import leaves

GW = bytes.fromhex("6777000000000001")
DEV = bytes.fromhex("d000000000000001")
ENVELOPE = bytes.fromhex("83015800")  # a stand-in: the leaf holds only its SHA-256
AT = 1700000000000


def build() -> dict[str, bytes]:
    return {
        "batch": leaves.batch(GW, 42, ENVELOPE, AT),
        "gateway": leaves.gateway(GW, bytes(range(32)), AT),
        "display_entry": leaves.display_entry("e-display", 7, "4919-27", DEV, 28333333, 60, 4, AT),
        "share": leaves.share("e-display", 11, "4919-204811", AT + 1000),
        "shared_entry": leaves.shared_entry("e-shared", 7, "4919-204811", "e-display", AT + 2000),
        "order": leaves.order(3, 1, 7, "e-shared", 10000, 500, "red_balloon", {"halving": 2},
                              [(1, 11, "participant", 250), (0, None, "charity", 250)], AT + 3000),
        "posting": leaves.posting(5, "order", 1, 7, 3, [("campaign_budget:7", -500, AT + 3000),
                                                         ("sharer:11", 250, AT + 1209603000),
                                                         ("charity:1", 250, AT + 1209603000)], AT + 3000),
        "settlement": leaves.posting(6, "settlement", 1, 7, None, [("sharer:11", -250, AT + 1209700000),
                                                                   ("paid:1", 250, AT + 1209700000)],
                                     AT + 1209700000),
        "settlement_batch": leaves.settlement(2, 1, [(11, 250, 6)], AT + 1209700000),
    }
