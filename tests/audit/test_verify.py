"""`mcode verify BUNDLE` on bundles built from protocol/ (tests/audit/bundles.py): a good bundle
verifies, and each kind of tampering is refused with its reason, in en and zh."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.audit import bundles
from tests.audit.cliapp import app

RUN = CliRunner()


@pytest.fixture(scope="module")
def world() -> bundles.World:
    return bundles.build_world()


def verify(tmp: Path, w: bundles.World, text: str, *extra: str,
           lang: str = "en_US.UTF-8") -> tuple[int, str]:
    p = tmp / "b.json"
    p.write_text(text)
    out = RUN.invoke(app, ["verify", str(p), "--log-key", w.log.verifier.vkey(), *extra], env={"LANG": lang})
    assert "Traceback" not in out.output
    return out.exit_code, out.output


def test_a_good_bundle_verifies_and_says_what_it_skipped(world: bundles.World, tmp_path: Path) -> None:
    code, out = verify(tmp_path, world, bundles.bundle(world).dumps(),
                       "--witness-key", world.witness.verifier.vkey())
    assert code == 0, out
    assert "VERIFIED" in out and "witness.test/w1" in out
    assert "share chain of 2 sharer(s) [12, 11]" in out and "3 tap(s)" in out
    assert "skip" in out and "device key" in out  # MACs need the device key


def test_with_the_device_key_macs_and_the_code_are_checked(world: bundles.World, tmp_path: Path) -> None:
    dk = f"{bundles.DEV.hex()}={bundles.DEV_KEY.hex()}"
    code, out = verify(tmp_path, world, bundles.bundle(world).dumps(), "--device-key", dk)
    assert code == 0 and "record MACs and display code" in out
    wrong = f"{bundles.DEV.hex()}={bytes(32).hex()}"
    code, out = verify(tmp_path, world, bundles.bundle(world).dumps(), "--device-key", wrong)
    assert code == 1 and "bad_mac" in out


def test_zh(world: bundles.World, tmp_path: Path) -> None:
    code, out = verify(tmp_path, world, bundles.bundle(world).dumps(), lang="zh_CN.UTF-8")
    assert code == 0 and "验证通过" in out and "跳过" in out


def _flip(b64: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where", ["leaf", "proof", "envelope", "checkpoint"])
def test_a_flipped_bit_is_refused(world: bundles.World, tmp_path: Path, where: str) -> None:
    d = json.loads(bundles.bundle(world).dumps())
    if where == "checkpoint":
        lines = d["checkpoint"].split("\n")
        lines[2] = _flip(lines[2], 77)
        d["checkpoint"] = "\n".join(lines)
        want = "bad_signature"
    elif where == "envelope":
        d["links"][1]["envelope"] = _flip(d["links"][1]["envelope"], 300)
        want = "bad_batch"
    else:
        link = d["links"][7]  # the order: e.g. a rewritten amount
        if where == "leaf":
            link["leaf"] = _flip(link["leaf"], 200)
        else:
            link["proof"][2] = _flip(link["proof"][2], 5)
        want = "not_included"
    code, out = verify(tmp_path, world, json.dumps(d))
    assert code == 1 and "REFUSED" in out and want in out, out


def test_a_proof_for_another_tree_size_is_refused(world: bundles.World, tmp_path: Path) -> None:
    n = len(world.leaves)
    code, out = verify(tmp_path, world, bundles.bundle(world, proof_size=n - 5).dumps())
    assert code == 1 and "not_included" in out and f"size {n}" in out


def test_a_checkpoint_without_the_cosignature_is_refused(world: bundles.World, tmp_path: Path) -> None:
    code, out = verify(tmp_path, world, bundles.bundle(world, cosign=False).dumps(),
                       "--witness-key", world.witness.verifier.vkey(), lang="zh_CN.UTF-8")
    assert code == 1 and "拒绝" in out and "missing_cosignature" in out


def test_a_missing_link_is_refused(world: bundles.World, tmp_path: Path) -> None:
    d = json.loads(bundles.bundle(world).dumps())
    del d["links"][5]  # the middle sharer's share leaf
    code, out = verify(tmp_path, world, json.dumps(d))
    assert code == 1 and "broken_chain" in out


def test_a_forged_gateway_key_is_refused(world: bundles.World, tmp_path: Path) -> None:
    fake = base64.b64encode(bytes(32)).decode()
    code, out = verify(tmp_path, world, bundles.bundle(world).dumps(),
                       "--gateway-key", f"{bundles.GW.hex()}={fake}")
    assert code == 1 and ("bad_signature" in out or "bad_batch" in out)


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"format": "mcode-proof-bundle/v1"}', "\xff"])
def test_not_a_bundle(world: bundles.World, tmp_path: Path, text: str) -> None:
    code, out = verify(tmp_path, world, text)
    assert code == 1 and "not a proof bundle" in out


def test_bad_arguments(world: bundles.World, tmp_path: Path) -> None:
    out = RUN.invoke(app, ["verify", str(tmp_path / "none.json"), "--log-key", world.log.verifier.vkey()])
    assert out.exit_code == 1 and "cannot read" in out.output
    out = RUN.invoke(app, ["verify", str(tmp_path / "none.json"), "--log-key", "x+y+z"])
    assert out.exit_code == 2 and "bad key" in out.output
    out = RUN.invoke(app, ["verify", str(tmp_path / "none.json"), "--log-key", world.log.verifier.vkey(),
                           "--device-key", "zz=11"])
    assert out.exit_code == 2 and "--device-key" in out.output
