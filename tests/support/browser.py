"""A real headless browser for the status-page tests: Debian's chromium driven by Selenium.

Browser builds downloaded by installers (Playwright's, Selenium Manager's) are not used:
the packages `chromium` and `chromium-driver` come from the distribution, in matching
versions. `make test` installs them when it runs as root; elsewhere the test is skipped
with the packages' names.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.processes import wait_until

CHROMIUM_NAMES = ("chromium", "chromium-browser")
MISSING = (
    "the status-page browser test needs Debian's packages chromium and chromium-driver "
    "(apt-get install chromium chromium-driver, as root; `make test` does it when run as root)"
)
# Where screenshots are kept after the run (CI keeps the directory as an artefact).
ARTIFACTS = Path(
    os.environ.get("SCANHUB_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)


def headless_chromium(width: int = 1280, height: int = 760) -> Any:
    """A Selenium driver for a headless chromium; skips the test when none is installed."""
    browser = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def save_screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def wait_for_text(driver: Any, selector: str, accept: Callable[[str], bool], timeout: float = 30) -> str:
    """The rendered text of the first element matching the CSS `selector` once `accept`
    takes it; fails with the last text seen.

    The text is read by one script in the page, so a refresh that replaces the element
    between finding it and reading it (the status page re-renders every few seconds)
    cannot leave the test holding a stale element: the next poll reads the new one.
    """
    seen: list[str | None] = [None]

    def shown() -> tuple[str] | None:
        text = driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            selector,
        )
        if text is None:
            return None
        # Table cells come tab-separated from innerText: one space, as a reader sees them.
        seen[0] = text = re.sub(r"[ \t]+", " ", text).strip()
        return (text,) if accept(text) else None  # a tuple: an accepted "" is still an answer

    try:
        return str(wait_until(shown, timeout, interval=0.2, what=selector)[0])
    except TimeoutError as error:  # its message names the last error the page raised, if any
        raise AssertionError(f"{selector!r} did not show the expected text: {seen[0]!r} ({error})") from None
