"""Share chains (分享路径): who brought whom, from the display at the root to the shopper.

Entries point at the participant whose code was typed; participants are made from entries. A new
entry can only point at a participant that already exists, and a participant only at an entry that
already exists, so walking up always ends at a display: cycles cannot be built.

Before a rule sees the chain, identities are merged: participants are one person (one chain node)
when they share a visitor token (the same phone's cookie) or a sharer account the merchant verified.
A node keeps the place of its occurrence closest to the shopper; its later occurrences are dropped,
and so is every node that is the shopper themself. So inserting one's own second identity between
oneself and the shopper gains nothing, and buying through one's own code pays oneself nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import not_found
from cloud.services.auth import Principal, sees
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Device, Entry, Participant

MAX_CHAIN = 1000  # chains are acyclic by construction; this only bounds a corrupted one


@dataclass
class Node:
    """One person in a chain: credited through `participant_id`, their participant closest to the
    shopper; `merged` lists every participant of theirs the chain passed through."""
    participant_id: int
    share_code: str
    merged: list[int] = field(default_factory=list)

    def as_json(self, base_code: str) -> dict[str, Any]:
        return {"participant_id": self.participant_id, "share_code": f"{base_code}-{self.share_code}",
                "merged_participants": self.merged}


def raw_chain(s: Session, entry: Entry) -> list[Participant]:
    """The sharers whose codes brought this entry, closest to the shopper first."""
    chain: list[Participant] = []
    seen: set[int] = set()
    pid = entry.parent_participant_id
    while pid is not None and pid not in seen and len(chain) < MAX_CHAIN:
        seen.add(pid)
        p = s.get(Participant, pid)
        if p is None:
            break
        chain.append(p)
        parent_entry = s.get(Entry, p.entry_id)
        pid = parent_entry.parent_participant_id if parent_entry is not None else None
    return chain


class _Identities:
    """Union-find over identity keys ("v:<visitor>", "a:<account id>")."""

    def __init__(self) -> None:
        self.up: dict[str, str] = {}

    def find(self, k: str) -> str:
        self.up.setdefault(k, k)
        while self.up[k] != k:
            self.up[k] = self.up[self.up[k]]
            k = self.up[k]
        return k

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.up[max(ra, rb)] = min(ra, rb)


def _identities(s: Session, merchant_id: int, visitors: set[str]) -> _Identities:
    """Links each visitor token to the accounts any of its participants (in this merchant's
    campaigns) were verified as."""
    ids = _Identities()
    if visitors:
        q = (select(Participant.visitor, Participant.account_id)
             .join(Campaign, Participant.campaign_id == Campaign.id)
             .where(Campaign.merchant_id == merchant_id, Participant.visitor.in_(sorted(visitors)),
                    Participant.account_id.is_not(None)))
        for visitor, account in s.execute(q):
            ids.join(f"v:{visitor}", f"a:{account}")
    return ids


def merged_chain(s: Session, entry: Entry, merchant_id: int) -> list[Node]:
    """The chain as a rule sees it: one node per person, closest to the shopper first, without
    the shopper."""
    chain = raw_chain(s, entry)
    ids = _identities(s, merchant_id, {p.visitor for p in chain} | {entry.visitor})
    for p in chain:
        if p.account_id is not None:
            ids.join(f"v:{p.visitor}", f"a:{p.account_id}")
    shopper = ids.find(f"v:{entry.visitor}")
    nodes: dict[str, Node] = {}
    for p in chain:
        who = ids.find(f"v:{p.visitor}")
        if who == shopper:
            continue
        if who in nodes:
            nodes[who].merged.append(p.id)
        else:
            nodes[who] = Node(p.id, p.share_code, [p.id])
    return list(nodes.values())  # dicts keep insertion order: closest first


def entry_for(s: Session, p: Principal, entry_id: str) -> tuple[Entry, Campaign]:
    """An entry and its campaign, if `p` may see them; else unknown_entry (404)."""
    e = s.get(Entry, entry_id)
    c = s.get(Campaign, e.campaign_id) if e is not None else None
    if e is None or c is None or not sees(p, c.merchant_id):
        raise not_found("unknown_entry", "no such entry in your campaigns", "您的活动中没有该进店记录")
    return e, c


def describe(s: Session, entry: Entry) -> dict[str, Any]:
    """Who brought whom, for the merchant: the display and its location at the root, each sharer
    whose code was used, then the shopper."""
    c = s.get(Campaign, entry.campaign_id)
    assert c is not None
    root = s.get(Device, entry.root_device_id) if entry.root_device_id else None
    links = [{"participant_id": p.id, "share_code": f"{c.base_code}-{p.share_code}",
              "account_id": p.account_id} for p in reversed(raw_chain(s, entry))]
    return {"entry_id": entry.id, "campaign_id": c.id,
            "root": {"device_id": root.id, "label": root.label, "location": root.location,
                     "location_id": root.location_id} if root else None,
            "sharers": links, "shopper": {"entry_id": entry.id, "depth": entry.depth},
            "rule_nodes": [n.as_json(c.base_code) for n in merged_chain(s, entry, c.merchant_id)]}


def entry_tenant(sf: SessionFactory, p: Principal, entry_id: str) -> int | None:
    """For admin keys: the tenant of the entry (merchants act in their own, so None)."""
    if not p.is_admin:
        return None
    with sf() as s:
        return entry_for(s, p, entry_id)[1].merchant_id


def describe_entry(sf: SessionFactory, p: Principal, entry_id: str) -> dict[str, Any]:
    """`describe` for an entry `p` may see (else unknown_entry, 404)."""
    with sf() as s:
        return describe(s, entry_for(s, p, entry_id)[0])
