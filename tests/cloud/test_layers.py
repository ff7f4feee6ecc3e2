"""The cloud's floors, kept by reading its imports: services never import HTTP, pages, MQTT or the
CLI; the store imports no service; nothing in cloud/ imports another tier (sim/, gateway/,
firmware/); and there is no import cycle inside cloud/. The checker is shown to catch each kind of
violation on a synthetic package."""

from __future__ import annotations

from pathlib import Path

from tests.cloud.layers import violations

ROOT = Path(__file__).resolve().parents[2]


def test_cloud_keeps_its_floors() -> None:
    assert violations(ROOT, "cloud") == []


def _tree(tmp: Path, files: dict[str, str]) -> Path:
    for name, src in files.items():
        f = tmp / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(src)
    return tmp


CLEAN = {
    "cloud/__init__.py": "",
    "cloud/settings.py": "",
    "cloud/store/__init__.py": "",
    "cloud/store/engine.py": "import sqlalchemy\nfrom cloud import settings\n",
    "cloud/services/__init__.py": "",
    "cloud/services/codes.py": "from cloud.store import engine\nfrom protocol import rotation\n",
    "cloud/http/__init__.py": "",
    "cloud/http/app.py": "from cloud.services import codes\nfrom cloud.store.engine import x\n",
    "cloud/mqtt/__init__.py": "",
    "cloud/mqtt/worker.py": "from cloud.services import codes\n",
}


def test_a_clean_synthetic_tree_passes(tmp_path: Path) -> None:
    assert violations(_tree(tmp_path, CLEAN), "cloud") == []


def test_each_kind_of_violation_is_caught(tmp_path: Path) -> None:
    bad = dict(CLEAN)
    bad["cloud/services/codes.py"] = ("from cloud.store import engine\n"
                                      "def f():\n    from cloud.http.app import create_app\n")
    bad["cloud/store/engine.py"] = "from cloud.services.codes import resolve\n"
    bad["cloud/mqtt/worker.py"] = ("import sim.broker\nfrom gateway import spool\n"
                                   "from firmware import device\n")
    found = violations(_tree(tmp_path, bad), "cloud")
    assert "cloud.services.codes imports cloud.http.app: services may not import http" in found
    assert "cloud.store.engine imports cloud.services.codes: store may not import services" in found
    for tier in ("sim.broker", "gateway", "firmware"):  # `from gateway import spool` names gateway
        assert any(v.startswith(f"cloud.mqtt.worker imports {tier}:") for v in found), tier
    # http -> services -> http, through a function-level import (as db.py and migrate.py had one)
    assert "import cycle: cloud.http.app -> cloud.services.codes -> cloud.http.app" in found


def test_a_cycle_within_one_floor_is_caught(tmp_path: Path) -> None:
    bad = dict(CLEAN)
    bad["cloud/services/a.py"] = "from cloud.services import b\n"
    bad["cloud/services/b.py"] = "def f():\n    from cloud.services.a import g\n"
    assert violations(_tree(tmp_path, bad), "cloud") == [
        "import cycle: cloud.services.a -> cloud.services.b -> cloud.services.a"]
