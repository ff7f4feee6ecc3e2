"""A payout's proof bundle (protocol/bundle.py, docs/trust.md): its posting, its order, the share
chain's entries and shares up to the display code's entry, the gateway keys and every batch holding
that device's taps in that window (with the envelope verbatim), each proved in one checkpoint.

Who may have it: the merchant of the order (GET /ledger/payouts/{id}/proof) and the sharer paid
by it, by their visitor cookie (GET /me/payouts/{id}/proof). Anyone else gets 404, as for a payout
that does not exist."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import ApiError, not_found
from cloud.services import people, tlog
from cloud.store.engine import SessionFactory
from cloud.store.models import (
    BatchEnvelope,
    Campaign,
    Entry,
    Event,
    LedgerTxn,
    LogCheckpoint,
    LogCosignature,
    LogLeaf,
    Order,
    Participant,
    Payout,
)
from protocol import merkle, record
from protocol.bundle import MAX_LINKS, Bundle, Link

MAX_BATCHES = 1000  # batches of one device's window in one bundle
MaySee = Callable[[Session, Payout, Order], bool]


def _unknown() -> ApiError:
    return not_found("unknown_payout", "no such payout", "该收益不存在")


def _chain_refs(s: Session, order: Order) -> tuple[list[str], Entry]:
    """Refs of the entries and shares from the order's entry up to the display; and that entry."""
    refs = []
    e = s.get(Entry, order.entry_id)
    assert e is not None
    for _ in range(MAX_LINKS):
        refs.append(f"entry:{tlog.entry_key(e.id)}")
        if e.parent_participant_id is None:
            return refs, e
        p = s.get(Participant, e.parent_participant_id)
        assert p is not None
        refs.append(f"share:{tlog.entry_key(p.entry_id)}")
        parent = s.get(Entry, p.entry_id)
        assert parent is not None
        e = parent
    raise ApiError(500, "chain_too_long", "the share chain does not end", "分享链没有尽头")


def _tap_batches(s: Session, display: Entry) -> list[tuple[str, int]]:
    """(gateway, bseq) of every batch that carried the display device's taps in its window."""
    if display.device_id is None or display.window is None:
        return []
    c = s.get(Campaign, display.campaign_id)
    assert c is not None
    start = display.window * c.period_s
    q = (select(Event.gateway_id, Event.bseq).distinct()
         .where(Event.device_id == display.device_id, Event.kind == record.KIND_TAP,
                Event.flags.op("&")(record.FLAG_CLOCK_SET) != 0,
                Event.time >= start, Event.time < start + c.period_s)
         .order_by(Event.gateway_id, Event.bseq).limit(MAX_BATCHES))
    return [(str(g), int(b)) for g, b in s.execute(q)]


def _checkpoint(s: Session, need: int) -> LogCheckpoint | None:
    """The newest cosigned checkpoint covering `need` leaves, else the newest covering them."""
    cosigned = (select(LogCheckpoint).join(LogCosignature, LogCosignature.size == LogCheckpoint.size)
                .where(LogCheckpoint.size >= need).order_by(LogCheckpoint.size.desc()).limit(1))
    return s.scalar(cosigned) or s.scalar(select(LogCheckpoint).where(LogCheckpoint.size >= need)
                                          .order_by(LogCheckpoint.size.desc()).limit(1))


def _refs(s: Session, payout: Payout, order: Order) -> tuple[list[str], list[tuple[str, int]]]:
    txns = s.scalars(select(LedgerTxn.id).where(LedgerTxn.order_id == order.id).order_by(LedgerTxn.id))
    refs = [f"posting:{t}" for t in txns] + [f"order:{order.id}"]
    chain, display = _chain_refs(s, order)
    batches = _tap_batches(s, display)
    gws = sorted({g for g, _ in batches})
    gw_refs = list(s.scalars(select(LogLeaf.ref).where(
        func.substr(LogLeaf.ref, 1, 25).in_([f"gateway:{g}:" for g in gws])))) if gws else []
    return refs + chain + gw_refs + [tlog.batch_ref(g, b) for g, b in batches], batches


def _envelopes(s: Session, batches: list[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
    out: dict[tuple[str, int], bytes] = {}
    by_gw: dict[str, list[int]] = {}
    for g, b in batches:
        by_gw.setdefault(g, []).append(b)
    for g, bseqs in sorted(by_gw.items()):
        out.update({(g, int(b)): bytes(env) for b, env in s.execute(
            select(BatchEnvelope.bseq, BatchEnvelope.envelope).where(
                BatchEnvelope.gateway_id == g, BatchEnvelope.bseq.in_(bseqs)))})
    return out


def payout_bundle(sf: SessionFactory, payout_id: int, may_see: MaySee, publish: Callable[[], object]) -> str:
    """The bundle of one payout, as JSON text. `publish` signs a checkpoint on demand when none
    covers the payout's leaves yet."""
    for _ in range(2):
        with sf() as s:
            payout = s.get(Payout, payout_id)
            order = s.get(Order, payout.order_id) if payout is not None else None
            if payout is None or order is None or not may_see(s, payout, order):
                raise _unknown()
            refs, batches = _refs(s, payout, order)
            found = {r: (int(i), bytes(leaf)) for r, i, leaf in s.execute(
                select(LogLeaf.ref, LogLeaf.idx, LogLeaf.leaf).where(LogLeaf.ref.in_(refs)))}
            if any(r not in found for r in refs if not r.startswith("batch:")):
                raise ApiError(409, "not_logged", "this payout was booked before the trust log began",
                               "该收益早于可信日志，无法出具证明")
            cp = _checkpoint(s, max(i for i, _ in found.values()) + 1)
            if cp is None:
                publish()
                continue
            envs = _envelopes(s, batches)
            node = tlog.node_source(s)
            links = []
            for r in refs:
                if r not in found:
                    continue  # a batch from before the log began, or logging was off
                i, leaf = found[r]
                env = envs.get((r.split(":")[1], int(r.split(":")[2]))) if r.startswith("batch:") else None
                links.append(Link(i, leaf, tuple(merkle.inclusion_proof(i, int(cp.size), node)), env))
            return Bundle(tlog.cosigned(s, cp), tuple(links)).dumps()
    raise ApiError(503, "no_checkpoint", "no checkpoint covers this payout yet; try again",
                   "尚无检查点覆盖该收益，请稍后再试")


def merchant_may_see(merchant_id: int | None) -> MaySee:
    """A merchant sees its own orders' payouts; None (an admin key) sees all."""
    return lambda s, payout, order: merchant_id is None or order.merchant_id == merchant_id


def sharer_may_see(visitor: str) -> MaySee:
    """A sharer sees the payouts to participants made on any phone of theirs (cloud/services/people.py)."""
    def check(s: Session, payout: Payout, order: Order) -> bool:
        if payout.participant_id is None:
            return False
        p = s.get(Participant, payout.participant_id)
        return p is not None and p.visitor in people.phones_of(s, visitor)
    return check
