"""Helpers of the dashboard's browser tests: waiting, signing in, the viewport, the console."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

T = TypeVar("T")


def until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll condition until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def sign_in(browser: WebDriver, url: str, key: str) -> None:
    """Type the key into the page's form as a person would; the key never enters the address."""
    browser.get(f"{url}/")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    until(lambda: browser.find_elements(By.ID, "batch-rows"), 30, "the dashboard after sign-in")
    assert browser.current_url == f"{url}/"
    cookies = browser.get_cookies()
    assert [c["name"] for c in cookies] == ["blurq_session"] and cookies[0]["httpOnly"]
    assert key not in cookies[0]["value"]


def view_as(browser: WebDriver, width: int, *, dark: bool) -> None:
    """Show the page at width CSS pixels (a phone below 500), in dark or light colours."""
    scheme = {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [scheme]})
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def severe_logs(browser: WebDriver) -> list[dict[str, object]]:
    """The console's errors since the last call."""
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def click(browser: WebDriver, selector: str, timeout: float = 10) -> None:
    """Click the first element matching selector once there is one (live pages redraw rows:
    an element replaced between finding and clicking is found again)."""

    def clicked() -> bool:
        try:
            found = browser.find_elements(By.CSS_SELECTOR, selector)
            if found:
                found[0].click()
            return bool(found)
        except StaleElementReferenceException:
            return False

    until(clicked, timeout, selector)
