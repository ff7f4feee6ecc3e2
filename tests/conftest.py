"""Shared fixtures: real servers on free loopback ports, started and stopped by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.broker import Broker

GATEWAY_ID = "a1a2a3a4a5a6a7a8"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto with auth: users 'cloud'/'cloud-pw' and gateway GATEWAY_ID/'gw-pw'."""
    with Broker(tmp_path / "broker", {"cloud": "cloud-pw", GATEWAY_ID: "gw-pw",
                                      "b1b2b3b4b5b6b7b8": "gw2-pw"}) as b:
        yield b
