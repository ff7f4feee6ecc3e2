"""Which protocol modules are host-only is said once, by each module (`HOST_ONLY = True`); the
build leaves exactly those out, and no firmware module imports one."""

from __future__ import annotations

import ast
from pathlib import Path

from tools.build import ROOT, device_sources, host_only

PROTOCOL = ROOT / "protocol"


def _declared() -> set[str]:
    return {p.stem for p in PROTOCOL.glob("*.py") if host_only(p)}


def test_the_build_ships_every_protocol_module_but_the_host_only_ones() -> None:
    shipped = {dst.stem for _src, dst in device_sources() if dst.parts[0] == "protocol"}
    everything = {p.stem for p in PROTOCOL.glob("*.py")}
    assert _declared() and shipped == everything - _declared()
    assert {"batch", "gwconfig", "note"} <= _declared() and "record" in shipped


def test_no_firmware_module_imports_a_host_only_one() -> None:
    host = _declared()
    for f in (ROOT / "firmware").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module == "protocol":
                names = {a.name for a in node.names}
            elif node.module.startswith("protocol."):
                names = {node.module.split(".")[1]}
            else:
                continue
            assert not names & host, f"{f.name} imports host-only {names & host}"


def test_the_marker_is_read_from_the_module(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import json\n\nHOST_ONLY = True\n")
    (tmp_path / "b.py").write_text("HOST_ONLY = False\n")
    (tmp_path / "c.py").write_text("# HOST_ONLY = True in a comment does not count\n")
    assert [host_only(tmp_path / n) for n in ("a.py", "b.py", "c.py")] == [True, False, False]
