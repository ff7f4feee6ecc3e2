"""The protocol core, checked under CPython and under the real MicroPython interpreter."""

import pytest

from tests.mp.harness import assert_all_pass
from tests.protocol import cases

CASES = sorted(n for n in dir(cases) if n.startswith("test_"))


@pytest.mark.parametrize("name", CASES)
def test_cpython(name: str) -> None:
    getattr(cases, name)()


def test_micropython_runs_the_same_cases() -> None:
    out = assert_all_pass("tests.protocol.cases", heapsize="64K")
    for name in CASES:
        assert f"PASS {name}" in out
