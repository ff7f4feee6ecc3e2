"""The zh-CN catalogs (mcode tools, the gateway CLI) are complete and their committed .mo files
match their .po files."""

from __future__ import annotations

import gettext
import shutil
from pathlib import Path

import pytest

from tools.i18n import DOMAIN, LOCALES, compile_catalogs

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = [(DOMAIN, LOCALES, ROOT / "tools", "**.py"),
            ("mcode-gateway", ROOT / "gateway" / "locale", ROOT / "gateway", "cli.py")]


@pytest.mark.parametrize(("domain", "locales", "src", "pattern"), CATALOGS)
def test_committed_mo_matches_po(tmp_path: Path, domain: str, locales: Path, src: Path, pattern: str) -> None:
    copy = tmp_path / "locale"
    shutil.copytree(locales, copy)
    compile_catalogs(copy)
    fresh = gettext.translation(domain, str(copy), ["zh_CN"])
    committed = gettext.translation(domain, str(locales), ["zh_CN"])
    assert fresh._catalog == committed._catalog, "run: python -m tools.i18n"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("domain", "locales", "src", "pattern"), CATALOGS)
def test_every_message_has_a_chinese_translation(domain: str, locales: Path, src: Path, pattern: str) -> None:
    from babel.messages.extract import extract_from_dir

    keywords: dict[str, object] = {"_": None}
    ids = {m[2] for m in extract_from_dir(str(src), [(pattern, "python")], keywords)}  # type: ignore[arg-type]
    assert len(ids) > 10
    zh = gettext.translation(domain, str(locales), ["zh_CN"])
    missing = sorted(i for i in ids if isinstance(i, str) and zh.gettext(i) == i)
    assert not missing
