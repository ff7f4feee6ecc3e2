"""What the fraud rules cost an order (docs/fraud.md): the time of fraud.evaluate for an order, as a
ratio of the time to book that order (orders.place_order, which runs the rules inside it), same run,
by chain depth.

Run: python -m benchmarks.fraud_rules [--orders 100] [--depths 1,4,16,50] [--json]

One SQLite file (cloud.store.migrate.migrated_engine, the app's schema), a shop of sim/fraud_traffic.py
with 300 honest shoppers of its "day" pace first, so the rules' queries meet other rows. Per depth,
`orders` chains of that many sharers (10 minutes between links) are built, then each is bought
(place_order, timed) and, after all are booked, each order is evaluated again in a session of its own
(fraud.evaluate, timed; read-only, as the review's scan does). Reported per depth: the median of each
and their ratio. place_order includes the rules, so evaluate/place_order is the rules' share of
booking an order (an upper bound: evaluate's session starts cold).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cloud.services import codes, fraud, orders
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.migrate import migrated_engine
from cloud.store.models import Order
from sim import fraud_traffic as ft


def _chain(shop: ft.Shop, rng: random.Random, depth: int) -> str:
    code = shop.share(shop.arrive(shop.display_code(rng), codes.new_visitor()))
    for _ in range(depth - 1):
        shop.t += 600
        code = shop.share(shop.arrive(code, codes.new_visitor()))
    shop.t += 600
    return shop.arrive(code, codes.new_visitor())


def measure(shop: ft.Shop, rng: random.Random, depth: int, n: int) -> dict[str, Any]:
    entries = [_chain(shop, rng, depth) for _ in range(n)]
    book, ids = [], []
    for e in entries:
        t0 = time.perf_counter()
        answer, _ = orders.place_order(shop.sf, shop.merchant_id, secrets.token_hex(8), e, 5000,
                                       at_ms=int(shop.t * 1000))
        book.append(time.perf_counter() - t0)
        ids.append(int(answer["order_id"]))
    rules = []
    for oid in ids:
        with shop.sf() as s:
            t0 = time.perf_counter()
            o = s.get(Order, oid)
            assert o is not None
            fraud.evaluate(s, o)
            rules.append(time.perf_counter() - t0)
    b, r = statistics.median(book), statistics.median(rules)
    return {"depth": depth, "orders": n, "place_order_ms_p50": round(b * 1000, 2),
            "rules_ms_p50": round(r * 1000, 2), "rules_over_order": round(r / b, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The fraud rules' cost per order / 风控规则每单耗时")
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--depths", default="1,4,16,50")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        depths = [int(x) for x in a.depths.split(",")]
        if not 1 <= a.orders <= 10_000 or not all(1 <= d <= fraud.MAX_LINKS for d in depths):
            raise ValueError
    except ValueError:
        print(f"error: --orders 1..10000, --depths 1..{fraud.MAX_LINKS}\n"
              f"错误：--orders 取 1..10000，--depths 取 1..{fraud.MAX_LINKS}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        st = Settings(db_url=url, master_key=secrets.token_hex(32))
        engine = migrated_engine(url)
        try:
            shop = ft.open_shop(vault.session_factory(engine, st), st)
            rng = random.Random(7)
            ft.honest(shop, rng, 300, "day")
            rows = [measure(shop, rng, d, a.orders) for d in depths]
        finally:
            engine.dispose()
    if a.json:
        print(json.dumps({"benchmark": "fraud_rules", "rows": rows}))
    else:
        for row in rows:
            print(f"depth {row['depth']:>3}: order {row['place_order_ms_p50']:.1f} ms, "
                  f"rules {row['rules_ms_p50']:.1f} ms, ratio {row['rules_over_order']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
