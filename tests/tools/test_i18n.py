"""The zh-CN catalog is complete and its committed .mo matches its .po."""

from __future__ import annotations

import gettext
import shutil
from pathlib import Path

from tools.i18n import DOMAIN, LOCALES, compile_catalogs

ROOT = Path(__file__).resolve().parents[2]


def test_committed_mo_matches_po(tmp_path: Path) -> None:
    copy = tmp_path / "locale"
    shutil.copytree(LOCALES, copy)
    compile_catalogs(copy)
    for lang in ("zh_CN",):
        fresh = gettext.translation(DOMAIN, str(copy), [lang])
        committed = gettext.translation(DOMAIN, str(LOCALES), [lang])
        assert fresh._catalog == committed._catalog, "run: python -m tools.i18n"  # type: ignore[attr-defined]


def test_every_message_has_a_chinese_translation() -> None:
    from babel.messages.extract import extract_from_dir

    keywords: dict[str, object] = {"_": None}
    ids = {m[2] for m in extract_from_dir(str(ROOT / "tools"), [("**.py", "python")], keywords)}  # type: ignore[arg-type]
    assert len(ids) > 60
    zh = gettext.translation(DOMAIN, str(LOCALES), ["zh_CN"])
    missing = sorted(i for i in ids if isinstance(i, str) and zh.gettext(i) == i)
    assert not missing
