"""The gateway's operator commands (gateway/cli.py): a missing key file says how to make one, and
`gateway status` fits an 80-column SSH window with relative times and device names; zh-CN and en.
(Kept here with the other operator-CLI checks of issue 15; the gateway's own tests are in
tests/gateway.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gateway import config as gconfig
from gateway.spool import Spool
from tests.conftest import GATEWAY_ID
from tests.gateway.helpers import DEV_A, GW_ID, recs

ROOT = Path(__file__).resolve().parents[2]


def gateway(*args: str, lang: str = "en_US.UTF-8") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LANG=lang, LANGUAGE="", LC_ALL="", COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "mcode.cli", "gateway", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=ROOT)


def test_example_config_without_key_says_how_to_make_one() -> None:
    r = gateway("run", "-c", "gateway/gateway.example.toml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no gateway key at gateway/gateway.key" in r.stderr
    assert "mcode gateway keygen gateway/gateway.key" in r.stderr
    r = gateway("run", "-c", "gateway/gateway.example.toml", lang="zh_CN.UTF-8")
    assert r.returncode == 2 and "没有网关密钥" in r.stderr and "mcode gateway keygen" in r.stderr


def test_status_fits_80_columns_with_relative_times_and_names(tmp_path: Path) -> None:
    gconfig.generate_key(tmp_path / "gw.key")
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(f"""
gateway_id = "{GATEWAY_ID}"
private_key = "gw.key"
[spool]
path = "state/spool.sqlite"
[mqtt]
host = "127.0.0.1"
port = 1
username = "{GATEWAY_ID}"
password = "pw"
[[devices]]
id = "{DEV_A.hex()}"
key = "{'11' * 32}"
""")
    cfg = gconfig.load(cfg_path)
    with Spool(cfg.spool_path, GW_ID, cfg.load_private_key()) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 10)))
        s.seal_batch(3)
        s.set_device_status(DEV_A, last_seen=time.time() - 190, last_ok=time.time() - 190,
                            last_error="connect timed out after 5.0 s while the device was far away")
    for lang, ago, name in (("en_US.UTF-8", "3 min ago", "seen"), ("zh_CN.UTF-8", "3 分钟前", "最近发现")):
        r = gateway("status", "-c", str(cfg_path), lang=lang)
        assert r.returncode == 0, r.stderr
        wide = [line for line in r.stdout.splitlines() if len(line) > 80]
        assert not wide, "\n".join(wide)
        assert ago in r.stdout and name in r.stdout and f"mc-{DEV_A.hex()[-4:]}" in r.stdout
        assert "None" not in r.stdout
