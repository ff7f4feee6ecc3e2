"""gateway.toml parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config as gconfig


def test_minimal_and_errors(tmp_path: Path) -> None:
    base: dict[str, object] = {"gateway_id": "a1a2a3a4a5a6a7a8", "private_key": "k.pem", "spool": "s.db"}
    c = gconfig.parse(dict(base), tmp_path)
    assert c.gateway_id == bytes.fromhex("a1a2a3a4a5a6a7a8") and c.spool_path == tmp_path / "s.db"
    assert c.ble.backend == "default" and c.batch.max_records == 100
    bad: list[dict[str, object]] = [
        {**base, "gateway_id": "a1a2"},
        {**base, "devices": [{"id": "0102030405060708", "key": "00"}]},
        {**base, "devices": [{"id": "0102030405060708", "key": "00" * 32}] * 2},
        {**base, "mqtt": {"hots": "x"}},
        {**base, "batch": {"max_records": 5000}},
        {k: v for k, v in base.items() if k != "spool"},
    ]
    for raw in bad:
        with pytest.raises(gconfig.ConfigError):
            gconfig.parse(raw, tmp_path)
