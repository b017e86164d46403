"""Headless Debian Chromium for the browser tests (the WebAudio oracle, the TF.js recognizer)."""

from __future__ import annotations

import contextlib
import shutil
from typing import Iterator, Sequence

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
)  # fmt: skip
"""Flags for a root, offline, GPU-less machine (no background connections to refuse)."""


def missing() -> str:
    """Why a browser cannot be started here ("" when it can)."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(binary) is None:
            return f"{binary} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return ""


@contextlib.contextmanager
def driver(*, extra_flags: Sequence[str] = (), script_timeout_s: float = 120) -> Iterator[object]:
    """A selenium WebDriver of headless Chromium, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *extra_flags):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.set_script_timeout(script_timeout_s)
        yield browser
    finally:
        browser.quit()
