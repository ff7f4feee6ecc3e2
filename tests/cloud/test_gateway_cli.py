"""`mcode cloud gateway list|revoke|rotate` on a real database file: JSON out, and bad input is one
line on stderr in en and zh with exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cloud.services import merchants, provision
from cloud.store.engine import make_session_factory
from cloud.store.migrate import migrated_engine
from mcode.cli import app
from tests.cloud.conftest import public_hex

GW = "0123456789abcdef"


def test_list_rotate_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    sf = make_session_factory(migrated_engine(url))
    mid = merchants.create_merchant(sf, "Shop A")["merchant_id"]
    provision.create_gateway(sf, GW, public_hex(Ed25519PrivateKey.generate()), merchant_id=mid)
    env = {"MCODE_CLOUD_DB_URL": url, "MCODE_CLOUD_MASTER_KEY": "42" * 32, "COLUMNS": "80"}
    run = CliRunner().invoke
    new = public_hex(Ed25519PrivateKey.generate())
    r = run(app, ["cloud", "gateway", "rotate", GW, "--public-key", new, "--until-bseq", "7"], env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["public_key"] == new and out["previous_key_until_bseq"] == 7
    r = run(app, ["cloud", "gateway", "revoke", GW], env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["revoked_at_ms"] > 0, r.output
    assert "deleteClient " + GW in r.stderr
    lines = run(app, ["cloud", "gateway", "list"], env=env).stdout.splitlines()
    listed = [json.loads(line) for line in lines]
    assert [(g["gateway_id"], g["revoked_at_ms"] is not None) for g in listed] == [(GW, True)]
    another = public_hex(Ed25519PrivateKey.generate())
    for args, code in ((["rotate", GW, "--public-key", another], "gateway_revoked"),
                       (["revoke", "ffffffffffffffff"], "unknown_gateway"),
                       (["rotate", GW, "--public-key", "zz"], "bad_public_key")):
        r = run(app, ["cloud", "gateway", *args], env=env)
        assert r.exit_code == 2 and r.stderr.startswith(f"error: {code}: "), (args, r.output)
        assert " / " in r.stderr and "Traceback" not in r.output
