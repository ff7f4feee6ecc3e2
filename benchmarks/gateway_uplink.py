"""Gateway uplink throughput: events/s from the spool to the cloud's ack, as a ratio of raw paho.

Run: python -m benchmarks.gateway_uplink [--events 200000 --rounds 5 --batch 100] [--quick] [--json]

One real Mosquitto with auth (sim/broker.py) and one cloud stand-in in its own process
(sim/cloud_acker.py: verifies each batch's Ed25519 signature, acks with protocol.batch.encode_ack)
serve every run. Each round seals a fresh spool (real SQLite, synchronous=FULL) into signed batches,
outside the clock, then times, in alternating order (A/B, then B/A):

- gateway: gateway.uplink.Uplink, pumped every service tick as gateway/service.py does, from start
  until the cloud's ack has deleted every batch from the spool (`Spool.confirm`);
- raw: one paho-mqtt client as the same gateway user publishing the same signed batch bytes at
  QoS 1 with paho's in-flight window (`--raw-window`, paho's default 20) and TCP_NODELAY, as the
  gateway's, from connect until the last PUBACK (`raw_puback`) and until the last application ack
  of the same cloud (`raw_appack`).

The gateway's in-flight window adapts (gateway/inflight.py) up to `--window` (its max_inflight).

Both clocks include connect and subscribe. Also reported: this process's CPU per batch in each run
(the client side only: broker and cloud are other processes), steadier than ev/s on a busy machine.
Prints a table per round and the median ratios.
--profile runs one more gateway pass with the Uplink's ack thread (acks applied to the spool, then
pump) under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttConfig
from gateway.inflight import InflightWindow
from gateway.service import TICK_S
from gateway.spool import Spool
from gateway.uplink import Uplink, tcp_nodelay
from protocol import batch as pbatch
from protocol import record
from protocol.hmac256 import HmacKey
from sim.broker import Broker

GW_ID = bytes.fromhex("b0b1b2b3b4b5b6b7")
GW_HEX = GW_ID.hex()
GW_PW = "gw-pw"
RECORD_KEY = HmacKey(b"k" * 32)
WAIT_S = 300.0  # give up waiting for a run; never a pass/fail bound
RAW_WINDOW = 20  # paho's default max_inflight_messages


def make_records(n: int, devices: int = 10) -> list[tuple[bytes, list[bytes]]]:
    """n valid 40-byte tap records spread over `devices` made-up devices, per device in seq order."""
    out = []
    for d in range(devices):
        dev = (0xD0 + d).to_bytes(1, "big") * 8
        out.append((dev, [record.make(RECORD_KEY, dev, record.KIND_TAP, 0, 1, s, 1000 + s,
                                      s.to_bytes(8, "big")) for s in range(1, n // devices + 1)]))
    return out


def start_acker(broker: Broker, keys: dict[bytes, Ed25519PrivateKey],
                store_resends: bool = False) -> subprocess.Popen[str]:
    """sim/cloud_acker.py in its own process: the cloud is another machine, not our GIL.
    `store_resends`: the same batches are replayed (rounds, raw and gateway) and commit each time."""
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    spec = [f"{gw.hex()}:{k.public_key().public_bytes(*raw).hex()}" for gw, k in keys.items()]
    args = [sys.executable, "-m", "sim.cloud_acker", "--port", str(broker.port), "--exit-on-eof"]
    args += ["--store-resends"] if store_resends else []
    for s in spec:
        args += ["--key", s]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != "READY":
        p.kill()
        raise RuntimeError(f"cloud acker did not start: {line!r}")
    return p


def stop_acker(p: subprocess.Popen[str]) -> dict[str, int]:
    p.terminate()
    out, _ = p.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def sealed_spool(path: Path, key: Ed25519PrivateKey, recs: list[tuple[bytes, list[bytes]]],
                 per_batch: int) -> Spool:
    spool = Spool(path, GW_ID, key)
    chunk = 1000  # a collector's pull lands in transactions of about this size
    for dev, rs in recs:
        for i in range(0, len(rs), chunk):
            spool.add_records(dev, rs[i:i + chunk])
    while spool.seal_batch(per_batch):
        pass
    return spool


def _mqtt_cfg(broker: Broker, window: int) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, username=GW_HEX, password=GW_PW,
                      max_inflight=window)


def _drop_session(broker: Broker, client_id: str) -> None:
    """End a persistent session so acks for later runs do not queue up for it in the broker."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(GW_HEX, GW_PW)
    c.connect(broker.host, broker.port, clean_start=True)  # session expiry 0: gone on disconnect
    c.loop_start()
    c.disconnect()
    c.loop_stop()


def run_gateway(broker: Broker, spool: Spool, window: int, profile: cProfile.Profile | None = None,
                nagle: bool = False) -> tuple[float, float, float]:
    """Seconds from Uplink start until the cloud's acks have emptied the spool, seconds until
    the broker's last PUBACK of a batch, and the CPU seconds this process spent meanwhile.
    `nagle`: as before issue 17, no TCP_NODELAY and a fixed window of `window`."""
    expected = {p.bseq for p in spool.pending_batches()}
    got: set[int] = set()
    done = threading.Event()
    pubacked = threading.Event()

    def on_ack(bseq: int, ack: dict[str, object]) -> None:
        if bseq in expected:
            got.add(bseq)
            if len(got) == len(expected):
                done.set()

    cfg = _mqtt_cfg(broker, window)
    client_id = f"gw-{GW_HEX}"
    up = Uplink(cfg, GW_HEX, spool, on_ack=on_ack, client_id=client_id)
    if nagle:
        up.client.on_socket_open = None
        up.window = InflightWindow(lo=window, hi=window, start=window)
    t_puback = 0.0
    def count_puback(client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode,
                     props: Properties | None) -> None:  # the Uplink's own handler, then the clock
        nonlocal t_puback
        up._on_publish(client, userdata, mid, rc, props)
        if not pubacked.is_set():
            # The time of the latest PUBACK: if the last one beat pump to registering its mid,
            # pump counts it a moment later, so the count alone may not say which is last.
            t_puback = time.perf_counter()
            if up.stats.pubacks >= len(expected):
                pubacked.set()

    up.client.on_publish = count_puback
    t0, c0 = time.perf_counter(), time.process_time()
    if profile is not None:  # the ack thread, where acks are applied to the spool, under the profiler
        ack_loop = up._ack_loop

        def profiled() -> None:
            profile.enable()
            ack_loop()
            profile.disable()

        up._ack_loop = profiled  # type: ignore[method-assign]
    up.start()
    deadline = t0 + WAIT_S
    while not done.wait(TICK_S):  # the service's batch loop pumps every tick
        up.pump()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"gateway run stuck: {len(got)}/{len(expected)} acked, {up.stats}")
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    # A batch is acked by the cloud only after the broker took it, so every PUBACK has arrived.
    if up.stats.pubacks < len(expected):
        raise RuntimeError(f"gateway run: {up.stats.pubacks} PUBACKs of {len(expected)}")
    up.stop()
    _drop_session(broker, client_id)
    left = spool.counts()
    if left.records or left.batches:
        raise RuntimeError(f"spool not empty after every ack: {left}")
    return dt, t_puback - t0, cpu


def run_raw(broker: Broker, payloads: list[tuple[int, bytes]], window: int,
            nagle: bool = False) -> tuple[float, float, float]:
    """A plain paho publisher: seconds to the last PUBACK and to the last application ack, and
    the CPU seconds this process spent until then."""
    expected = {b for b, _ in payloads}
    acked: set[int] = set()
    pubacks = 0
    t_puback = t_appack = 0.0
    all_pubacked, all_acked, subscribed = threading.Event(), threading.Event(), threading.Event()
    # the gateway user's own client id: the broker may bind each user to one (sim/broker.py)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{GW_HEX}", protocol=mqtt.MQTTv5)
    c.username_pw_set(GW_HEX, GW_PW)
    c.max_inflight_messages_set(window)
    c.on_socket_open = None if nagle else tcp_nodelay

    def on_publish(cl: mqtt.Client, ud: object, mid: int, rc: object, props: object) -> None:
        nonlocal pubacks, t_puback
        pubacks += 1
        if pubacks == len(payloads):
            t_puback = time.perf_counter()
            all_pubacked.set()

    def on_message(cl: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal t_appack
        bseq = int(pbatch.decode_ack(bytes(msg.payload))["bseq"])
        if bseq in expected:
            acked.add(bseq)
            if len(acked) == len(expected):
                t_appack = time.perf_counter()
                all_acked.set()

    c.on_publish = on_publish
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(pbatch.ack_topic(GW_HEX), qos=1)
    t0, c0 = time.perf_counter(), time.process_time()
    c.connect(broker.host, broker.port, clean_start=True)
    c.loop_start()
    try:
        if not subscribed.wait(WAIT_S):
            raise RuntimeError("raw publisher not subscribed")
        for _, payload in payloads:
            info = c.publish(pbatch.batch_topic(GW_HEX), payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"raw publish refused: {mqtt.error_string(info.rc)}")
        if not (all_pubacked.wait(WAIT_S) and all_acked.wait(WAIT_S)):
            raise RuntimeError(f"raw run stuck: {pubacks} PUBACKs, {len(acked)} acks of {len(payloads)}")
        cpu = time.process_time() - c0
    finally:
        c.disconnect()
        c.loop_stop()
    return t_puback - t0, t_appack - t0, cpu


@dataclass
class Round:
    order: str
    gateway_eps: float  # to the cloud's ack (the batch leaves the spool)
    gateway_puback_eps: float  # to the broker's last PUBACK, in the same run
    raw_puback_eps: float
    raw_appack_eps: float
    gateway_cpu_us: float  # this process's CPU per batch: client side only (broker, cloud apart)
    raw_cpu_us: float

    @property
    def ratio_puback(self) -> float:
        return self.gateway_eps / self.raw_puback_eps

    @property
    def ratio_appack(self) -> float:
        return self.gateway_eps / self.raw_appack_eps

    @property
    def ratio_puback_puback(self) -> float:
        return self.gateway_puback_eps / self.raw_puback_eps


def _table(rounds: list[Round]) -> str:
    lines = [f"{'round':>5} {'order':>7} {'gw app-ack ev/s':>16} {'gw PUBACK ev/s':>15} "
             f"{'raw PUBACK ev/s':>16} {'raw app-ack ev/s':>17} {'gw/PUBACK':>10} {'gw/app-ack':>11} "
             f"{'gwPUBACK/PUBACK':>16} {'CPU us/batch gw':>16} {'raw':>5}"]
    for i, r in enumerate(rounds, 1):
        lines.append(f"{i:>5} {r.order:>7} {r.gateway_eps:>16,.0f} {r.gateway_puback_eps:>15,.0f} "
                     f"{r.raw_puback_eps:>16,.0f} {r.raw_appack_eps:>17,.0f} {r.ratio_puback:>10.3f} "
                     f"{r.ratio_appack:>11.3f} {r.ratio_puback_puback:>16.3f} "
                     f"{r.gateway_cpu_us:>16,.0f} {r.raw_cpu_us:>5,.0f}")
    return "\n".join(lines)


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4)}


def measure(events: int, rounds: int, per_batch: int, window: int, profile: bool = False,
            verbose: bool = True, raw_window: int = RAW_WINDOW) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mcode-uplink-bench-", ignore_cleanup_errors=True) as d:
        return _measure(Path(d), events, rounds, per_batch, window, profile, verbose, raw_window)


def _drop_spool(spool: Spool) -> None:
    spool.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{spool.path}{suffix}").unlink(missing_ok=True)


def _measure(work: Path, events: int, rounds: int, per_batch: int, window: int, profile: bool,
             verbose: bool, raw_window: int) -> dict[str, object]:
    key = Ed25519PrivateKey.generate()
    recs = make_records(events)
    n_events = sum(len(rs) for _, rs in recs)
    out: list[Round] = []
    prof_text = ""
    with Broker(work / "broker", {"cloud": "cloud-pw", GW_HEX: GW_PW}) as broker:
        acker = start_acker(broker, {GW_ID: key}, store_resends=True)
        try:
            for i in range(rounds):
                spool = sealed_spool(work / f"spool-{i}.sqlite", key, recs, per_batch)
                try:
                    payloads = [(p.bseq, p.payload) for p in spool.pending_batches()]
                    runs: dict[str, float] = {}
                    order = ("raw", "gateway") if i % 2 == 0 else ("gateway", "raw")
                    for what in order:
                        if what == "raw":
                            runs["puback"], runs["appack"], runs["raw_cpu"] = run_raw(broker, payloads,
                                                                                      raw_window)
                        else:
                            runs["gateway"], runs["gateway_puback"], runs["gateway_cpu"] = \
                                run_gateway(broker, spool, window)
                finally:
                    _drop_spool(spool)
                r = Round("/".join("R" if w == "raw" else "G" for w in order), n_events / runs["gateway"],
                          n_events / runs["gateway_puback"], n_events / runs["puback"],
                          n_events / runs["appack"],
                          1e6 * runs["gateway_cpu"] / len(payloads), 1e6 * runs["raw_cpu"] / len(payloads))
                out.append(r)
                if verbose:
                    print(_table(out).splitlines()[-1] if i else _table(out), file=sys.stderr, flush=True)
            if profile:
                prof = cProfile.Profile()
                spool = sealed_spool(work / "spool-profile.sqlite", key, recs, per_batch)
                try:
                    run_gateway(broker, spool, window, prof)
                finally:
                    _drop_spool(spool)
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(30)
                prof_text = s.getvalue()
        finally:
            acker_stats = stop_acker(acker)
    return {
        "events_per_round": n_events, "batch": per_batch, "window": window, "raw_window": raw_window,
        "rounds": rounds,
        "batches_per_round": -(-n_events // per_batch),
        "gateway_eps": _spread([r.gateway_eps for r in out]),
        "gateway_puback_eps": _spread([r.gateway_puback_eps for r in out]),
        "raw_puback_eps": _spread([r.raw_puback_eps for r in out]),
        "raw_appack_eps": _spread([r.raw_appack_eps for r in out]),
        "ratio_gateway_to_raw_puback": _spread([r.ratio_puback for r in out]),
        "ratio_gateway_to_raw_appack": _spread([r.ratio_appack for r in out]),
        "ratio_gateway_puback_to_raw_puback": _spread([r.ratio_puback_puback for r in out]),
        "gateway_cpu_us_per_batch": _spread([r.gateway_cpu_us for r in out]),
        "raw_cpu_us_per_batch": _spread([r.raw_cpu_us for r in out]),
        "cloud": acker_stats, "cpus": os.cpu_count(),
        "table": _table(out), "profile": prof_text,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Gateway uplink events/s as a ratio of a raw paho publisher.")
    ap.add_argument("--events", type=int, default=200_000, help="records per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=100, help="records per batch (gateway default 100)")
    ap.add_argument("--window", type=int, default=MqttConfig.max_inflight,
                    help="gateway max_inflight (the cap of its adaptive window)")
    ap.add_argument("--raw-window", type=int, default=RAW_WINDOW,
                    help="the raw publisher's paho in-flight window (paho's default)")
    ap.add_argument("--quick", action="store_true", help="20,000 events, 2 rounds (a smoke run)")
    ap.add_argument("--profile", action="store_true", help="one more gateway pass under cProfile")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    a = ap.parse_args(argv)
    if a.quick:
        a.events, a.rounds = 20_000, 2
    res = measure(a.events, a.rounds, a.batch, a.window, a.profile, verbose=not a.json,
                  raw_window=a.raw_window)
    if a.json:
        print(json.dumps(res))
        return
    print(res["table"])
    for k in ("ratio_gateway_to_raw_puback", "ratio_gateway_to_raw_appack",
              "ratio_gateway_puback_to_raw_puback"):
        v = res[k]
        assert isinstance(v, dict)
        print(f"{k}: median {v['median']:.3f} (min {v['min']:.3f}, max {v['max']:.3f}) "
              f"over {a.rounds} rounds")
    print(f"{res['events_per_round']:,} events/round in batches of {a.batch}, gateway window up to "
          f"{a.window}, raw window {a.raw_window}; "
          f"cloud stand-in: {res['cloud']}")
    if res["profile"]:
        print(res["profile"])


if __name__ == "__main__":
    main()
