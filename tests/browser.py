"""Debian's Chromium for the browser tests, driven by Playwright (no browser is downloaded).

As root and on a closed network it needs these flags: without the background-networking
ones it keeps trying to reach Google's hosts at every start."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch() -> Iterator[Any]:
    """One Chromium for a test module (the ``browser`` fixture of tests/conftest.py). No
    skipping: a screen that is untested is not tested; scripts/setup installs Chromium."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None, "Debian's chromium is missing: run scripts/setup"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
