"""Radio fixtures: a real hub on loopback and real MicroPython peripherals on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.radio import RadioHub
from tests.mp.harness import micropython_exe

ROOT = Path(__file__).resolve().parents[2]
PERIPHERAL = ROOT / "tests" / "sim" / "mp_peripheral.py"
SHIM_DIR = ROOT / "sim" / "micropython"


def mp_env(hub: RadioHub, **extra: str) -> dict[str, str]:
    return dict(os.environ, MICROPYPATH=f"{SHIM_DIR}:{ROOT}:.frozen", MCODE_RADIO=hub.dev_addr, **extra)


class MpDevice:
    """tests/sim/mp_peripheral.py in the real MicroPython interpreter."""

    def __init__(self, hub: RadioHub, address: str, service: str | None = None,
                 name: str = "mp-test") -> None:
        self.address = address
        extra = {"MCODE_RADIO_ADDR": address, "MCODE_TEST_NAME": name}
        if service is not None:
            extra["MCODE_TEST_SERVICE"] = service
        self.proc = subprocess.Popen([micropython_exe(), "-X", "heapsize=128K", str(PERIPHERAL)],
                                     env=mp_env(hub, **extra), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the script prints READY once it advertises
        assert line.strip() == "READY", line + self.proc.stdout.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


class Devices:
    def __init__(self, hub: RadioHub) -> None:
        self.hub = hub
        self.started: list[MpDevice] = []

    def __call__(self, address: str, **kw: str) -> MpDevice:
        d = MpDevice(self.hub, address, **kw)
        self.started.append(d)
        return d


@pytest.fixture
def hub() -> Iterator[RadioHub]:
    with RadioHub() as h:
        yield h


@pytest.fixture
def spec(hub: RadioHub) -> str:
    """The factory spec for bleak on this hub."""
    return "bumble:" + hub.hci_spec


@pytest.fixture
def devices(hub: RadioHub) -> Iterator[Devices]:
    ds = Devices(hub)
    yield ds
    for d in ds.started:
        d.kill()
