"""Ingest by COPY on PostgreSQL (cloud/services/ingest.py, `_copy_events`): the same results as the
executemany path it replaced, and a COPY that fails on the database's side is an error the
worker retries, never a bug it quarantines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from cloud.mqtt.worker import TRANSIENT
from cloud.services.ingest import Ingestor
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.migrate import migrated_engine
from cloud.store.models import BatchRow, Event, Quarantine
from protocol import batch as pbatch
from tests.cloud.conftest import SETTINGS, World, provision_world
from tests.cloud.mqtt_helpers import records
from tests.conftest import GATEWAY_ID
from tests.pg import TEMPLATE, PgCluster

TOPIC = pbatch.batch_topic(GATEWAY_ID)


@pytest.fixture
def pg_engine(pg: PgCluster) -> Iterator[Engine]:
    """PostgreSQL only: SQLite has no COPY and stores by executemany."""
    with pg.database(TEMPLATE) as url:
        e = migrated_engine(url)
        yield e
        e.dispose()


@pytest.fixture
def sf(pg_engine: Engine) -> SessionFactory:
    return vault.session_factory(pg_engine, SETTINGS)


@pytest.fixture
def world(sf: SessionFactory) -> World:
    return provision_world(sf)


def _deliveries(world: World) -> list[tuple[str, bytes]]:
    """Overlapping batches, one delivered twice, a forged one between them."""
    gw = bytes.fromhex(GATEWAY_ID)
    d0, d1 = world.devices

    def signed(bseq: int, recs: list[tuple[bytes, bytes]]) -> bytes:
        return pbatch.sign(pbatch.Batch(gw, bseq, 0, recs), world.gw_key)

    p1 = signed(1, records(d0, range(1, 11)) + records(d1, range(1, 4)))
    p2 = signed(2, records(d1, range(3, 9)) + records(d0, [10, 11]))
    return [(TOPIC, p1), (TOPIC, p2), (TOPIC, p1), (TOPIC, b"\xa0"), (TOPIC, signed(3, records(d0, [12])))]


def _stored(sf: SessionFactory) -> tuple[list[tuple[Any, ...]], dict[int, tuple[int, int, int]], list[str]]:
    with sf() as s:
        keys = sorted(tuple(r) for r in s.execute(select(Event.device_id, Event.epoch, Event.seq)))
        batches = {b.bseq: (b.stored, b.duplicates, b.deliveries) for b in s.scalars(select(BatchRow))}
        return keys, batches, list(s.scalars(select(Quarantine.reason)))


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "executemany"])
def test_copy_and_executemany_give_the_same_results(pg_engine: Engine, sf: SessionFactory, world: World,
                                                     copy: bool) -> None:
    """Per delivery: a record already stored earlier in the same transaction is a duplicate of the
    later delivery, the same batch twice counts once."""
    res = Ingestor(sf, copy=copy).ingest_many(_deliveries(world))
    assert [(r.status, r.bseq, r.stored, r.duplicates) for r in res] == [
        (pbatch.ACK_STORED, 1, 13, 0), (pbatch.ACK_STORED, 2, 6, 2), (pbatch.ACK_STORED, 1, 0, 13),
        (pbatch.ACK_QUARANTINED, -1, 0, 0), (pbatch.ACK_STORED, 3, 1, 0)]
    keys, batches, reasons = _stored(sf)
    assert len(keys) == len(set(keys)) == 13 + 6 + 1
    assert batches == {1: (13, 0, 2), 2: (6, 2, 1), 3: (1, 0, 1)}
    assert reasons == ["malformed_envelope"]
    # again, in another transaction: all duplicates
    again = Ingestor(sf, copy=copy).ingest_many(_deliveries(world)[:2])
    assert [(r.stored, r.duplicates) for r in again] == [(0, 13), (0, 8)]


@pytest.fixture
def slow_stage(pg_engine: Engine) -> Iterator[list[str]]:
    """Right after the ingest has made its temporary table, inside its transaction: a statement
    timeout of 50 ms and a check on the table that sleeps 20 ms a row, so the COPY that follows (on
    the raw psycopg connection) is cancelled, as an operator's statement_timeout or
    pg_cancel_backend would cancel it. Both go with the transaction's rollback."""
    done: list[str] = []

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("CREATE TEMPORARY TABLE") and not done:
            done.append(statement)
            conn.exec_driver_sql("ALTER TABLE mcode_ingest_stage ADD CHECK (pg_sleep(0.02) IS NOT NULL)")
            conn.exec_driver_sql("SET LOCAL statement_timeout = 50")

    event.listen(pg_engine, "after_cursor_execute", after)
    yield done
    event.remove(pg_engine, "after_cursor_execute", after)


def test_a_cancelled_copy_is_retried_not_quarantined(pg_engine: Engine, sf: SessionFactory, world: World,
                                                     slow_stage: list[str]) -> None:
    """The COPY runs on psycopg's connection, outside SQLAlchemy's error handling: its errors are
    turned into SQLAlchemy's, so the worker sees an OperationalError (TRANSIENT: retried with
    backoff, the deliveries not PUBACKed meanwhile), not a bug to quarantine as internal_error."""
    ingestor = Ingestor(sf)
    with pytest.raises(TRANSIENT, match="statement timeout"):
        ingestor.ingest_many(_deliveries(world))
    assert slow_stage  # the COPY was the statement cancelled
    with sf() as s:
        assert s.scalar(select(func.count(Event.id))) == 0  # nothing half-stored
    res = ingestor.ingest_many(_deliveries(world))  # the retry
    assert [r.stored for r in res] == [13, 6, 0, 0, 1]
    keys, _, reasons = _stored(sf)
    assert len(keys) == 20 and reasons == ["malformed_envelope"]
