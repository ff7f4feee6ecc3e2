"""Honest shoppers and injected attacks, for the fraud rules' numbers (docs/fraud.md).

The honest shoppers follow the demo's model (sim/shoppers.py, Crowd._one_shopper): half of them
open a random sharer's code (of the first MAX_SHARERS), the rest read a display; 60 % make a share
code, 35 % buy. They run on the cloud's own services (codes.resolve, codes.share, orders.place_order,
people.add_phone) on a fresh SQLite database with a simulated clock, so a day of traffic takes
seconds and times are exact. Two paces:
- demo: the demo's own, a shopper every 0.35 s who buys at once (sim/shoppers.py pause_s = 0.3);
- day:  a shop's day, a shopper every 90 s on average, who buys 1 to 30 minutes after arriving.
Then attacks, after the honest traffic: sybil chains (k fresh identities between a real sharer and
a buyer, fast or slow), self-referral (a sharer's second phone, linked to their person, buys through
their code; or the same phone does), and velocity bursts (one phone typing codes again and again, or
one share code pumped by new phones). Every order is then scanned once more (fraud.scan).

    .venv/bin/python -m sim.fraud_traffic --seeds 1,2,3 --shoppers 600
prints one JSON object: per pace the honest orders, how many each rule flagged and the rate; per
attack how many were injected and detected (by its rule, by any rule).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from cloud.services import campaigns, codes, fraud, merchants, orders, people, provision
from cloud.services.ratelimits import Limits
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.migrate import migrated_engine
from cloud.store.models import FraudFlag, Payout
from protocol.keys import rotation_key
from protocol.rotation import Rotor, format_code, window

MAX_SHARERS = 200  # sim/shoppers.py
PERIOD_S = 60
POOL_MINOR = 4000  # the demo's (sim/fleet.py FleetPlan)
PACES = {"demo": (0.35, 0.1, 0.1), "day": (90.0, 60.0, 1800.0)}  # mean gap, buy delay min, max (s)
T_START = 1_780_000_000.0


@dataclass
class Shop:
    """A merchant with one red-balloon campaign and two displays, on a simulated clock."""
    sf: SessionFactory
    merchant_id: int
    base: str
    rotors: list[Rotor]
    limits: Limits
    t: float = T_START
    orders: dict[str, list[int]] = field(default_factory=dict)  # kind -> order ids

    def display_code(self, rng: random.Random) -> str:
        r = rng.choice(self.rotors)
        return format_code(self.base, r.value(window(self.t, PERIOD_S)), 2)

    def arrive(self, code: str, visitor: str) -> str:
        return str(codes.resolve(self.sf, code, visitor, self.t)["entry_id"])

    def share(self, entry_id: str) -> str:
        return str(codes.share(self.sf, entry_id)["share_code"])

    def buy(self, entry_id: str, kind: str, rng: random.Random, at: float | None = None) -> None:
        answer, _ = orders.place_order(self.sf, self.merchant_id, secrets.token_hex(8), entry_id,
                                       rng.randrange(1000, 50000), at_ms=int((at or self.t) * 1000))
        self.orders.setdefault(kind, []).append(int(answer["order_id"]))


def open_shop(sf: SessionFactory, settings: Settings) -> Shop:
    m = merchants.create_merchant(sf, "Fraud sim 风控模拟")
    c = campaigns.create(sf, m["merchant_id"], base_code="5150", slots=4, digits=2, period_s=PERIOD_S,
                         pool_minor=POOL_MINOR, label_zh="模拟", label_en="Simulation")
    rotors = []
    for _ in range(2):
        d = provision.create_device(sf, c["campaign_id"], label="shelf", location="aisle")
        rotors.append(Rotor(rotation_key(bytes.fromhex(d["key"])), d["slot"], c["slots"], c["digits"]))
    return Shop(sf, m["merchant_id"], "5150", rotors, Limits(sf, settings, lambda: 0.0))


def honest(shop: Shop, rng: random.Random, shoppers: int, pace: str) -> None:
    """The demo's shoppers (see the module's docstring); buys are booked in time order."""
    gap, buy_lo, buy_hi = PACES[pace]
    sharers: list[str] = []
    buys: list[tuple[float, str]] = []
    for _ in range(shoppers):
        shop.t += rng.expovariate(1 / gap) if pace == "day" else gap
        _book_due(shop, buys, rng)
        code = rng.choice(sharers) if sharers and rng.random() < 0.5 else shop.display_code(rng)
        entry = shop.arrive(code, codes.new_visitor())
        if rng.random() < 0.6 and len(sharers) < MAX_SHARERS:
            sharers.append(shop.share(entry))
        if rng.random() < 0.35:
            buys.append((shop.t + rng.uniform(buy_lo, buy_hi), entry))
    shop.t += buy_hi + 1
    _book_due(shop, buys, rng)


def _book_due(shop: Shop, buys: list[tuple[float, str]], rng: random.Random) -> None:
    buys.sort()
    while buys and buys[0][0] <= shop.t:
        at, entry = buys.pop(0)
        shop.buy(entry, "honest", rng, at)


def _real_sharer(shop: Shop, rng: random.Random) -> str:
    """A sharer with history: arrived at a display, shared, and brought two friends who stayed."""
    entry = shop.arrive(shop.display_code(rng), codes.new_visitor())
    code = shop.share(entry)
    for _ in range(2):
        shop.t += rng.uniform(600, 7200)
        shop.arrive(code, codes.new_visitor())
    shop.t += 3600
    return code


def sybil(shop: Shop, rng: random.Random, fakes: int, step_s: float) -> None:
    """A real sharer puts `fakes` new identities between their code and a friend who buys."""
    code = _real_sharer(shop, rng)
    for _ in range(fakes):
        shop.t += step_s
        code = shop.share(shop.arrive(code, codes.new_visitor()))
    shop.t += rng.uniform(60, 1800)  # the friend comes when they come
    buyer = shop.arrive(code, codes.new_visitor())
    shop.t += rng.uniform(60, 1800)
    shop.buy(buyer, f"sybil k={fakes} step={step_s:g}s", rng)


def self_referral(shop: Shop, rng: random.Random, second_phone: bool) -> None:
    """A sharer buys through their own code: on a second phone linked to their person, or on the
    phone that made the code."""
    visitor = codes.new_visitor()
    code = shop.share(shop.arrive(shop.display_code(rng), visitor))
    shop.t += rng.uniform(600, 7200)
    other = visitor
    if second_phone:
        recovery = people.new_recovery(shop.sf, visitor, int(shop.t * 1000))
        other = codes.new_visitor()
        people.add_phone(shop.sf, shop.limits, f"10.0.{rng.randrange(256)}.1", other, recovery,
                         int(shop.t * 1000))
    entry = shop.arrive(code, other)
    shop.t += rng.uniform(60, 600)
    shop.buy(entry, "self-referral, second phone" if second_phone else "self-referral, same phone", rng)


def velocity(shop: Shop, rng: random.Random, pumped_code: bool) -> None:
    """A bot: one phone typing the display code 15 times in 10 minutes then buying, or 40 new
    phones through one sharer's code in 10 minutes, one of which buys."""
    if pumped_code:
        code = shop.share(shop.arrive(shop.display_code(rng), codes.new_visitor()))
        last = ""
        for _ in range(40):
            shop.t += 15
            last = shop.arrive(code, codes.new_visitor())
        shop.buy(last, "velocity, one code pumped", rng)
        return
    visitor, last = codes.new_visitor(), ""
    for _ in range(15):
        shop.t += 40
        last = shop.arrive(shop.display_code(rng), visitor)
    shop.buy(last, "velocity, one phone", rng)


ATTACK_RULE = {"sybil": fraud.SYBIL, "self-referral": fraud.SELF_REFERRAL, "velocity": fraud.VELOCITY}


def attacks(shop: Shop, rng: random.Random, rounds: int) -> None:
    for _ in range(rounds):
        for k in (2, 3, 5):
            sybil(shop, rng, k, 20)
            sybil(shop, rng, k, 1800)
        self_referral(shop, rng, True)
        self_referral(shop, rng, False)
        velocity(shop, rng, False)
        velocity(shop, rng, True)
        shop.t += 3 * 3600  # the bursts' span passes before the next round


def run_one(seed: int, shoppers: int, pace: str, rounds: int, workdir: Path) -> dict[str, Any]:
    url = f"sqlite:///{workdir / f'fraud-{pace}-{seed}.db'}"
    settings = Settings(db_url=url, master_key=secrets.token_hex(32))
    engine = migrated_engine(url)
    try:
        shop = open_shop(vault.session_factory(engine, settings), settings)
        rng = random.Random(seed)
        honest(shop, rng, shoppers, pace)
        attacks(shop, rng, rounds)
        fraud.scan(shop.sf, shop.merchant_id, int(shop.t * 1000))
        with shop.sf() as s:
            flags: dict[int, set[str]] = {}
            for oid, rule in s.execute(select(FraudFlag.order_id, FraudFlag.rule)):
                flags.setdefault(oid, set()).add(rule)
            paid = dict(s.execute(select(Payout.order_id, func.sum(Payout.amount_minor))
                                  .where(Payout.payee == "participant").group_by(Payout.order_id)).all())
        return {kind: [(sorted(flags.get(o, set())), int(paid.get(o, 0))) for o in ids]
                for kind, ids in shop.orders.items()}
    finally:
        engine.dispose()


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Honest orders flagged per rule, and attacks detected by their rule and by any."""
    honest = [fp for r in runs for fp in r.get("honest", [])]
    honest_flags = [f for f, _ in honest]
    out: dict[str, Any] = {"honest_orders": len(honest_flags),
                           "honest_flagged_any": sum(1 for f in honest_flags if f),
                           "honest_sharer_credits_minor": sum(p for _, p in honest),
                           "honest_sharer_credits_held_minor": sum(p for f, p in honest if f)}
    for rule in fraud.RULES:
        n = sum(1 for f in honest_flags if rule in f)
        out[f"honest_flagged_{rule}"] = n
    out["false_positive_rate"] = round(out["honest_flagged_any"] / max(1, len(honest_flags)), 4)
    attacks_out = {}
    for kind in sorted({k for r in runs for k in r if k != "honest"}):
        got = [f for r in runs for f, _ in r.get(kind, [])]
        own = ATTACK_RULE[kind.split(" ")[0].rstrip(",")]
        attacks_out[kind] = {"injected": len(got), "by_its_rule": sum(1 for f in got if own in f),
                             "by_any_rule": sum(1 for f in got if f),
                             "rules": sorted({r for f in got for r in f})}
    out["attacks"] = attacks_out
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="False positives and detection of the fraud rules "
                                             "(docs/fraud.md) / 风控规则的误报率与检出率")
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds / 随机种子，逗号分隔")
    ap.add_argument("--shoppers", type=int, default=600, help="honest shoppers per run / 每次诚实顾客数")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of attacks per run / 每次注入攻击轮数")
    ap.add_argument("--paces", default="demo,day", help="demo,day")
    a = ap.parse_args(argv)
    try:
        seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
        paces = [p for p in a.paces.split(",") if p]
        if not seeds or any(p not in PACES for p in paces) or not 1 <= a.shoppers <= 100_000 or a.rounds < 0:
            raise ValueError
    except ValueError:
        print("error: --seeds integers, --paces demo,day, --shoppers 1..100000, --rounds >= 0\n"
              "错误：--seeds 为整数，--paces 取 demo,day，--shoppers 1..100000，--rounds >= 0",
              file=sys.stderr)
        return 2
    result: dict[str, Any] = {"seeds": seeds, "shoppers": a.shoppers, "rounds": a.rounds,
                              "thresholds": thresholds()}
    with tempfile.TemporaryDirectory() as tmp:
        for pace in paces:
            result[pace] = summarize([run_one(seed, a.shoppers, pace, a.rounds, Path(tmp)) for seed in seeds])
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


def thresholds() -> dict[str, int]:
    return {name: getattr(fraud, name) for name in dir(fraud)
            if name.split("_")[0] in ("VELOCITY", "FRESH", "SYBIL") and isinstance(getattr(fraud, name), int)}


if __name__ == "__main__":
    raise SystemExit(main())
