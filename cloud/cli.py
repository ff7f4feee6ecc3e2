"""`mcode cloud ...`: run the API and the ingest worker."""

from __future__ import annotations

import logging

import typer

from cloud.settings import ENV_PREFIX, Settings

app = typer.Typer(help="Cloud: ingest gateway batches, resolve codes, split rewards.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keeps `run` a sub-command even while it is the only one."""


@app.command("run")
def run(db_url: str | None = typer.Option(None, help=f"SQLAlchemy URL [env {ENV_PREFIX}DB_URL]"),
        host: str | None = typer.Option(None, help=f"HTTP bind address [env {ENV_PREFIX}HTTP_HOST]"),
        port: int | None = typer.Option(None, help=f"HTTP port [env {ENV_PREFIX}HTTP_PORT]"),
        broker_host: str | None = typer.Option(None, help=f"MQTT broker host [env {ENV_PREFIX}BROKER_HOST]"),
        broker_port: int | None = typer.Option(None, help=f"MQTT broker port [env {ENV_PREFIX}BROKER_PORT]"),
        ingest: bool = typer.Option(True, "--ingest/--no-ingest", help="Run the MQTT ingest worker too"),
        ) -> None:
    """Serve the HTTP API (uvicorn) and run the MQTT ingest worker. Secrets (admin key, broker
    password) come from the environment only: MCODE_CLOUD_ADMIN_KEY, MCODE_CLOUD_BROKER_PASSWORD."""
    import dataclasses

    import uvicorn

    from cloud.app import create_app
    from cloud.worker import IngestWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    st = Settings.from_env()
    st = dataclasses.replace(
        st, db_url=db_url or st.db_url, http_host=host or st.http_host, http_port=port or st.http_port,
        broker_host=broker_host or st.broker_host, broker_port=broker_port or st.broker_port)
    api = create_app(st)
    worker = None
    if ingest:
        worker = IngestWorker(api.state.session_factory, st.broker_host, st.broker_port, st.broker_user,
                              st.broker_password).start()
    try:
        uvicorn.run(api, host=st.http_host, port=st.http_port)
    finally:
        if worker is not None:
            worker.stop()
