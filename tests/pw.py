"""Playwright for Python driving Debian's Chromium (`playwright install` cannot download here):
one browser per test session, contexts at phone and desktop sizes, in zh-CN or en."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.browser import chromium_exe

PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
                         "device_scale_factor": 2}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_exe(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def context(browser: Browser, size: dict[str, Any], locale: str = "zh-CN") -> Iterator[BrowserContext]:
    """A fresh person: own cookies, the given screen and language (Accept-Language follows)."""
    ctx = browser.new_context(locale=locale, **size)
    try:
        yield ctx
    finally:
        ctx.close()
