"""`mcode cloud ...`: run the API and the ingest worker; sign and publish gateway configs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from cloud.settings import ENV_PREFIX, Settings

app = typer.Typer(help="Cloud: ingest gateway batches, resolve codes, split rewards.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keeps `run` a sub-command even while it is the only one."""


def _worker_id(value: str) -> str:
    from cloud.mqtt.identity import ingest_role

    try:
        ingest_role(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return value


WorkerIdOpt = Annotated[str, typer.Option(
    "--worker-id", envvar=f"{ENV_PREFIX}WORKER_ID", callback=_worker_id,
    help="this ingest worker's id (broker user <broker user>-ingest-<id>): one per worker, the same across "
         "its restarts (the broker keeps its session and resends what it had not acknowledged)")]
IngestGroupOpt = Annotated[str | None, typer.Option(
    "--ingest-group", envvar=f"{ENV_PREFIX}INGEST_GROUP",
    help="shared-subscription group: workers in one group split the batches ('' = each gets all); "
         "default: derived from the broker password, so that no gateway can join it")]


@app.command("run")
def run(db_url: str | None = typer.Option(None, help=f"SQLAlchemy URL [env {ENV_PREFIX}DB_URL]"),
        host: str | None = typer.Option(None, help=f"HTTP bind address [env {ENV_PREFIX}HTTP_HOST]"),
        port: int | None = typer.Option(None, help=f"HTTP port [env {ENV_PREFIX}HTTP_PORT]"),
        broker_host: str | None = typer.Option(None, help=f"MQTT broker host [env {ENV_PREFIX}BROKER_HOST]"),
        broker_port: int | None = typer.Option(None, help=f"MQTT broker port [env {ENV_PREFIX}BROKER_PORT]"),
        ingest: bool = typer.Option(True, "--ingest/--no-ingest", help="Run the MQTT ingest worker too"),
        worker_id: WorkerIdOpt = "0", ingest_group: IngestGroupOpt = None,
        ) -> None:
    """Serve the HTTP API (uvicorn) and run the MQTT ingest worker. Secrets (admin key, broker
    password, master key) come from the environment only: MCODE_CLOUD_ADMIN_KEY,
    MCODE_CLOUD_BROKER_PASSWORD, MCODE_CLOUD_MASTER_KEY (required)."""
    import dataclasses

    import uvicorn

    from cloud.http import access_log
    from cloud.http.app import create_app
    from cloud.mqtt.worker import IngestWorker, default_group

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    st = Settings.from_env()
    st = dataclasses.replace(
        st, db_url=db_url or st.db_url, http_host=host or st.http_host, http_port=port or st.http_port,
        broker_host=broker_host or st.broker_host, broker_port=broker_port or st.broker_port)
    with _refusal():
        api = create_app(st)
        _start_log_publisher(api, st)
    worker = reports = statuses = None
    if ingest:
        from cloud.mqtt.report_listener import ReportListener
        from cloud.mqtt.status_listener import StatusListener

        group = default_group(st.broker_password) if ingest_group is None else ingest_group
        worker = IngestWorker(api.state.session_factory, st, worker_id=worker_id, group=group).start()
        reports = ReportListener(api.state.session_factory, st).start()
        statuses = StatusListener(api.state.session_factory, st).start()
    try:
        uvicorn.run(api, host=st.http_host, port=st.http_port, log_config=access_log.log_config(),
                    **proxy_options(st))
    finally:
        if worker is not None:
            worker.stop()
        if reports is not None:
            reports.stop()
        if statuses is not None:
            statuses.stop()


def _start_log_publisher(api: Any, st: Settings) -> None:
    """Sign the trust log's checkpoints every log_checkpoint_interval_s (a daemon thread)."""
    from cloud.services import tlog

    if st.trust_log:
        try:
            signer = tlog.settings_signer(st)
        except (OSError, ValueError) as e:
            typer.echo(f"error: the trust log's key cannot be used / 日志密钥无法使用: {e}", err=True)
            raise typer.Exit(2) from None
        tlog.Publisher(api.state.session_factory, signer, st.log_checkpoint_interval_s).start()


def proxy_options(st: Settings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling from settings: believed only from trusted_proxies (uvicorn
    alone would trust 127.0.0.1, so any local client could pick its own address for the limits)."""
    if not st.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": st.trusted_proxies}


DbUrlOpt = Annotated[str | None, typer.Option(help=f"SQLAlchemy URL [env {ENV_PREFIX}DB_URL]")]


@app.command("ingest")
def ingest_only(worker_id: WorkerIdOpt = "0", ingest_group: IngestGroupOpt = None,
                db_url: DbUrlOpt = None,
                broker_host: Annotated[str | None, typer.Option(help="MQTT broker host")] = None,
                broker_port: Annotated[int | None, typer.Option(help="MQTT broker port")] = None,
                report_s: Annotated[float, typer.Option(help="log the worker's counts this often")] = 60.0,
                retire: Annotated[bool, typer.Option(
                    help="on exit, leave the group for good (unsubscribe, finish, end the session)")] = False,
                ) -> None:
    """Run one ingest worker without the HTTP API; start several, each with its own --worker-id, to
    share the load. Stops on SIGTERM or Ctrl-C after finishing what it was handling."""
    import dataclasses
    import signal
    import threading

    from cloud.mqtt.worker import IngestWorker, default_group

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger(__name__)
    st, sf = _session_factory(db_url)
    st = dataclasses.replace(st, broker_host=broker_host or st.broker_host,
                             broker_port=broker_port or st.broker_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    group = default_group(st.broker_password) if ingest_group is None else ingest_group
    worker = IngestWorker(sf, st, worker_id=worker_id, group=group).start()
    log.info("ingest worker %s subscribed (%s group)", worker_id, "a shared" if group else "no")
    try:
        while not stop.wait(report_s):
            log.info("ingest counts %s", json.dumps(worker.snapshot()))
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop(retire=retire)
        log.info("ingest counts %s", json.dumps(worker.snapshot()))


def _session_factory(db_url: str | None) -> tuple[Settings, Any]:
    import dataclasses

    from cloud.store import vault
    from cloud.store.migrate import migrated_engine

    st = Settings.from_env()
    st = dataclasses.replace(st, db_url=db_url or st.db_url)
    with _refusal():
        st.check()
        sf = vault.session_factory(migrated_engine(st.db_url, st.master_key), st)
        vault.check_opens(sf)
    from cloud.services import tlog

    tlog.configure(sf, st.trust_log)
    return st, sf


@contextmanager
def _refusal() -> Iterator[None]:
    """Settings the cloud must not start with end the command with their message, not a traceback."""
    from cloud.settings import SettingsError
    from cloud.store.vault import SealError

    try:
        yield
    except (SettingsError, SealError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command("public-key")
def public_key() -> None:
    """Print the cloud's config signing public key (hex), for a gateway.toml's `cloud_public_key`.
    Makes the key first if there is none (its PEM file: env MCODE_CLOUD_SIGNING_KEY)."""
    from cloud.services.signing_key import public_hex, signing_key

    print(public_hex(signing_key(Settings.from_env().signing_key)))


def _report(fn: Any, *args: Any, **kw: Any) -> None:
    from cloud.errors import ApiError

    try:
        print(json.dumps(fn(*args, **kw)))
    except (ApiError, RuntimeError, OSError) as e:  # bad input, or the broker not reached
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command("device-config")
def device_config(device: Annotated[str, typer.Argument(help="device id, 16 hex")],
                  tx_power: Annotated[int, typer.Option(help="BLE TX power, dBm")] = 0,
                  label: Annotated[str | None, typer.Option(help="new label shown on the display")] = None,
                  db_url: DbUrlOpt = None) -> None:
    """Seal a new configuration write for a device (its campaign settings, label, TX power); the
    next `push-config` to its gateway carries it to the device."""
    from cloud.services.gateway_config import seal_device_config

    _, sf = _session_factory(db_url)
    _report(seal_device_config, sf, device, tx_power=tx_power, label=label)


@app.command("push-config")
def push_config(gateway: Annotated[str, typer.Argument(help="gateway id, 16 hex")],
                firmware: Annotated[list[str] | None, typer.Option(
                    help="firmware target BOARD=VERSION (repeat); none keeps the last ones")] = None,
                db_url: DbUrlOpt = None) -> None:
    """Sign the gateway's config (allowlist, command keys, device config writes, firmware targets)
    and publish it retained to mcode/v0/gw/<gateway>/config (broker: env MCODE_CLOUD_BROKER_*)."""
    from cloud.mqtt.config_publisher import publish_config

    targets: dict[str, int] | None = None
    if firmware:
        targets = {}
        for f in firmware:
            board, _, ver = f.partition("=")
            if not board or not ver.isdigit():
                raise typer.BadParameter(f"--firmware {f!r}: want BOARD=VERSION")
            targets[board] = int(ver)
    st, sf = _session_factory(db_url)
    _report(publish_config, sf, st, gateway, targets)
