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


def test_example_config_parses() -> None:
    # The file the install notes copy: it must stay loadable as the config grows.
    cfg = gconfig.load(Path(__file__).resolve().parents[2] / "gateway" / "gateway.example.toml")
    assert cfg.spool_path.name == "spool.sqlite"
    assert cfg.spool.max_records == 1_000_000 and len(cfg.devices) == 1
    assert cfg.cloud_public_key is None and not cfg.mqtt.tls_ca
