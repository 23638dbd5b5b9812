"""Headless Chromium (the Debian packages) driven by Selenium, for the console's browser tests.

The browser and its driver are the system's (/usr/bin/chromium, /usr/bin/chromedriver; `make setup`
installs them): Selenium downloads nothing. Chromium starts with a fresh profile and without any of
its own network traffic (the machine may have no network)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


def chromium(profile: Path) -> WebDriver:
    """A headless Chromium on a fresh profile directory."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise RuntimeError(f"{path} is missing: `make setup` installs chromium and chromium-driver")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


class Pages:
    """Screenshots of each page a test visits, numbered in order, under `folder`."""

    def __init__(self, driver: WebDriver, folder: Path) -> None:
        self.driver = driver
        self.folder = folder
        self.count = 0

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def keep(self, test_name: str) -> Path:
        """Copy the screenshots to build/test-artifacts/<test> (CI keeps that folder)."""
        target = ARTIFACTS / test_name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.folder, target)
        return target


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout: float = 60.0) -> Any:
    """The condition's first truthy value, polled until `timeout` (a deadline, not a sleep)."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=f"waiting for {what}")
