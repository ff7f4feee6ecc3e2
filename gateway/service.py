"""The gateway's run loop: collector sweeps, batcher (seal by count or age), uplink pump.

    gw = Gateway(config.load("gateway.toml"))
    await gw.run()            # until gw.stop() or, via run_until_signal, SIGTERM/SIGINT

Everything durable lives in the spool; stopping at any moment loses nothing (records not yet
batched or acked are picked up on the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.collector import Collector
from gateway.config import GatewayConfig
from gateway.remote_config import RemoteConfig
from gateway.spool import Spool
from gateway.uplink import Uplink
from protocol import gwconfig
from protocol.gwconfig import GwConfigError

log = logging.getLogger(__name__)

TICK_S = 0.1  # batcher / pump period
HEALTH_EVERY_S = 5.0  # how often the health that `mcode gateway status` shows is saved
REALARM_EVERY_S = 600.0  # a spool in alarm is logged again this often, not only on crossing


class Gateway:
    def __init__(self, cfg: GatewayConfig, ble: Any = None, collect: bool = True) -> None:
        self.cfg = cfg
        sc = cfg.spool
        self.spool = Spool(cfg.spool_path, cfg.gateway_id, cfg.load_private_key(),
                           max_records=sc.max_records or None, max_bytes=sc.max_bytes or None,
                           warn_fraction=sc.warn_fraction, keep_confirmed=sc.keep_confirmed)
        # The cloud's signed config, once applied, wins over gateway.toml's devices (restarts too).
        self._key = cfg.load_private_key()  # signs config delivery reports
        self.remote = RemoteConfig(cfg.remote_config_file, cfg.gateway_id, cfg.cloud_key())
        self.remote.load()
        self.uplink = Uplink(cfg.mqtt, cfg.gateway_hex, self.spool, on_config=self._on_config)
        self.collector = Collector(cfg, self.spool, ble=ble, config_writes=self.remote)
        applied = self.remote.devices()
        if applied is not None:
            self.collector.set_devices(applied)
        self.remote.on_change = self.send_report
        self._loop: asyncio.AbstractEventLoop | None = None
        self.collect = collect
        self.sweeps = 0
        self.sealed = 0
        self.started = time.time()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def _on_config(self, payload: bytes) -> None:
        """The config topic (paho's thread): verify and persist here, swap the allowlist on the loop."""
        try:
            c = self.remote.offer(payload)
        except GwConfigError as e:
            log.error("CLOUD CONFIG REFUSED: %s; keeping v%d", e, self.remote.version)
            self.send_report()
            return
        if c is None:  # the retained config again, after a reconnect: refresh the cloud's view
            self.send_report()
            return
        devices = self.remote.devices()
        if devices is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.collector.set_devices, devices)

    def send_report(self) -> None:
        """Config delivery results, signed, retained on the report topic (a full snapshot, so a
        report lost while offline is made good by the next one, at the latest on reconnect)."""
        if self.remote.config is None and self.remote.last_refusal is None:
            return
        info = self.uplink.client.publish(gwconfig.report_topic(self.cfg.gateway_hex),
                                          self.remote.report(self._key), qos=1, retain=True)
        if info.rc != 0:
            log.info("config report not sent now (rc %s); it goes again on reconnect", info.rc)

    async def _sleep(self, s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), s)

    async def collect_loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                await self.collector.sweep()
            except Exception:
                log.exception("sweep failed")
            self.sweeps += 1
            await self._sleep(max(0.0, self.cfg.ble.sweep_interval_s - (time.monotonic() - t0)))

    def seal_due(self) -> int:
        """Seal full batches, and a partial one once its oldest record is max_age_s old."""
        b = self.cfg.batch
        n = 0
        while True:
            unbatched = self.spool.unbatched_count()
            if unbatched == 0:
                break
            if unbatched < b.max_records:
                oldest = self.spool.oldest_unbatched()
                if oldest is None or time.time() - oldest < b.max_age_s:
                    break
            if self.spool.seal_batch(b.max_records) is None:
                break
            n += 1
        self.sealed += n
        return n

    async def batch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.seal_due)
                await asyncio.to_thread(self.uplink.pump)
            except Exception:
                log.exception("batcher failed")
            await self._sleep(TICK_S)

    def save_health(self, stopped: bool = False) -> None:
        """What `status` shows of the running process: broker state, uplink and spool fill."""
        fill = self.spool.fill()
        self.spool.set_health({
            "updated": time.time(), "started": self.started, "pid": os.getpid(), "stopped": stopped,
            "mqtt_connected": self.uplink.connected, "broker": f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}",
            "uplink": asdict(self.uplink.stats), "inflight": len(self.uplink.inflight()),
            "sweeps": self.sweeps, "sealed": self.sealed, "spool_fill": fill.as_dict(),
        })

    async def health_loop(self) -> None:
        last_alarm = time.monotonic()
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.save_health)
                fill = await asyncio.to_thread(self.spool.fill)
                if fill.level != "ok" and time.monotonic() - last_alarm >= REALARM_EVERY_S:
                    last_alarm = time.monotonic()
                    log.warning("SPOOL STILL %.0f%% FULL (%s): %d records unconfirmed",
                                100 * fill.fraction, fill.level, fill.records,
                                extra={"spool_fill": round(fill.fraction, 4), "alarm": fill.level})
            except Exception:
                log.exception("health not saved")
            await self._sleep(HEALTH_EVERY_S)

    async def run(self) -> None:
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        self.uplink.start()
        tasks = [asyncio.create_task(self.batch_loop(), name="batcher"),
                 asyncio.create_task(self.health_loop(), name="health")]
        if self.collect:
            tasks.append(asyncio.create_task(self.collect_loop(), name="collector"))
        log.info("gateway %s running: %d devices, spool %s, broker %s:%d", self.cfg.gateway_hex,
                 len(self.cfg.devices), self.cfg.spool_path, self.cfg.mqtt.host, self.cfg.mqtt.port)
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self.uplink.stop)
            with contextlib.suppress(Exception):
                self.save_health(stopped=True)  # the last word, for `status`
            self.spool.close()
            log.info("gateway stopped")

    def status(self) -> dict[str, Any]:
        return {
            "gateway_id": self.cfg.gateway_hex,
            "mqtt_connected": self.uplink.connected,
            "uplink": asdict(self.uplink.stats),
            "inflight": self.uplink.inflight(),
            "spool": asdict(self.spool.counts()),
            "spool_fill": self.spool.fill().as_dict(),
            "devices": {k: asdict(v) for k, v in self.collector.devices.items()},
            "remote_config": self.remote.summary(),
            "sweeps": self.sweeps,
            "sealed": self.sealed,
        }


async def run_until_signal(gw: Gateway) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gw.stop)
    try:
        await gw.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


EXIT_CONFIG = 2  # a bad config or a spool this version must not open: fix it, restarting won't


def _tr(message: str) -> str:
    """zh-CN or en by the locale: the catalog gateway/cli.py uses (gateway/locale), same message ids."""
    import gettext

    locales = Path(__file__).resolve().parent / "locale"
    return gettext.translation("mcode-gateway", str(locales), fallback=True).gettext(message)


def _say(message: str) -> int:
    print(f"{_tr('error')}: {message}", file=sys.stderr)
    return EXIT_CONFIG


def serve(config: Path, collect: bool = True, verbose: bool = False, log_format: str = "text") -> int:
    """`run`'s whole job without typer (gateway/__main__.py): logging, config, key, Gateway, until
    SIGTERM/SIGINT. Returns the exit code; a bad config, key or spool is one line on stderr
    (EXIT_CONFIG), never a traceback. The messages are gateway/cli.py's, in zh-CN and en."""
    from gateway import config as gconfig
    from gateway import logs as glogs
    from gateway.spool import SpoolSchemaError

    if log_format not in glogs.FORMATS:
        return _say(f"--log-format: {', '.join(glogs.FORMATS)}")
    glogs.setup(log_format, logging.DEBUG if verbose else logging.INFO)
    try:
        cfg = gconfig.load(config)
    except FileNotFoundError:
        return _say(_tr("no config at {path}").format(path=config))
    except (gconfig.ConfigError, ValueError) as e:  # tomllib.TOMLDecodeError is a ValueError
        return _say(f"{config}: {e}")
    key = cfg.private_key_path
    if not key.exists():
        return _say(_tr("no gateway key at {path}. Make one: mcode gateway keygen {path} ; then give the "
                        "public key it prints to the cloud's admin (POST /admin/gateways with gateway_id "
                        "and public_key).").format(path=key))
    try:
        gw = Gateway(cfg, collect=collect)
    except SpoolSchemaError as e:
        log.error("%s", e)
        return _say(str(e))
    except (OSError, ValueError, gconfig.ConfigError) as e:  # an unusable key file
        return _say(_tr("the gateway key {path} cannot be used: {error}. Make a new one: mcode gateway "
                        "keygen {path} --force").format(path=key, error=e))
    asyncio.run(run_until_signal(gw))
    return 0
