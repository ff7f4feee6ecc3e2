"""zh-CN and en for `mcode tools`: stdlib gettext over catalogs in tools/locale, chosen by LANGUAGE,
LC_ALL, LC_MESSAGES or LANG as gettext does. The English text is the message id.

The .mo files are built from the .po files and committed; after editing a .po run
`python -m tools.i18n` (Babel) to rebuild them. tests/tools/test_i18n.py fails when they drift.
"""

from __future__ import annotations

import gettext
import io
import os
import sys
from pathlib import Path

LOCALES = Path(__file__).resolve().parent / "locale"
DOMAIN = "mcode-tools"
_cache: dict[tuple[str, ...], gettext.NullTranslations] = {}


def translator(domain: str = DOMAIN, localedir: Path = LOCALES) -> gettext.NullTranslations:
    env = tuple(os.environ.get(k, "") for k in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"))
    key = (domain, str(localedir), *env)
    if key not in _cache:
        _cache[key] = gettext.translation(domain, str(localedir), fallback=True)
    return _cache[key]


def _(message: str) -> str:
    return translator().gettext(message)


def zh() -> bool:
    """True when the catalog in use is Chinese (for texts that come with both, like API errors)."""
    return _("en") == "zh"


def compile_catalogs(localedir: Path = LOCALES) -> list[Path]:
    """Every .po under localedir compiled to the .mo beside it; returns the .mo paths."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    out = []
    for po in sorted(localedir.rglob("*.po")):
        with po.open("rb") as f:
            catalog = read_po(f)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        mo = po.with_suffix(".mo")
        mo.write_bytes(buf.getvalue())
        out.append(mo)
    return out


if __name__ == "__main__":
    dirs = [Path(a) for a in sys.argv[1:]] or [LOCALES]
    for d in dirs:
        for mo in compile_catalogs(d):
            print(mo)
