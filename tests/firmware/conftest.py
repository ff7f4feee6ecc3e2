"""Fixtures for the firmware's radio tests: a radio hub and one real-firmware device on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.radio import RadioHub
from tests.vdev import Dev


@pytest.fixture
def hub() -> Iterator[RadioHub]:
    with RadioHub() as h:
        yield h


@pytest.fixture
def dev(hub: RadioHub, tmp_path: Path) -> Iterator[Dev]:
    d = Dev(tmp_path / "flash", hub.dev_addr).start()
    yield d
    d.vd.stop()
