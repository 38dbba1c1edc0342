"""A real headless browser for the status-page tests: Debian's chromium driven by Selenium.

Browser builds downloaded by installers (Playwright's, Selenium Manager's) are not used:
the packages `chromium` and `chromium-driver` come from the distribution, in matching
versions. `make test` installs them when it runs as root; elsewhere the test is skipped
with the packages' names.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

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
