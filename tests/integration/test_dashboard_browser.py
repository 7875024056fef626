"""The dashboard in a real headless Chromium against the real stack (its API process included).

The key is typed into the page's sign-in form, a batch is submitted through the Python API, and
the page must show the batch progressing to its end without a reload, with the failure's reason,
previews of the outputs and the link to Flower; signing out ends the session. A screenshot is
saved to the artifact directory (``--artifacts``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from infra.jobs import BlurParams
from infra.settings import Settings
from infra.storage import S3Storage
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "dashboard-e2e"
BATCH = "dashboard-e2e"
T = TypeVar("T")

# What the page shows of the batch, read from the DOM as a person would read it.
READ_CARD = """
const card = document.querySelector(`[data-batch="${arguments[0]}"]`);
if (!card) return null;
const field = (name) => Number(card.querySelector(`[data-field="${name}"]`).textContent);
return {done: field("done"), failed: field("failed"), running: field("running"),
        queued: field("queued"), total: field("total"), finished: card.dataset.finished};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Debian Chromium through its chromedriver."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromium-driver are needed: ./dev setup installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll condition until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def upload(storage: S3Storage) -> int:
    """The batch's inputs: the sample photos, small, and one object that is not an image."""
    storage.ensure_bucket(BUCKET)
    for sample in SAMPLES:
        data = sample.jpeg(long_side=384)
        storage.put(BUCKET, f"photos/{sample.name}.jpg", data, content_type="image/jpeg")
    storage.put(BUCKET, "photos/zz-broken.jpg", b"not a jpeg at all", content_type="image/jpeg")
    return len(SAMPLES) + 1


def sign_in(browser: WebDriver, stack: LocalStack) -> None:
    """Type the key into the page's form as a person would; the key never enters the address."""
    browser.get(f"{stack.api_url}/")
    field = browser.find_element(By.ID, "key")
    field.send_keys(stack.api_key)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    until(lambda: browser.find_elements(By.ID, "batches"), 30, "the dashboard after sign-in")
    assert browser.current_url == f"{stack.api_url}/"
    cookies = browser.get_cookies()
    assert [c["name"] for c in cookies] == ["blurq_session"] and cookies[0]["httpOnly"]
    assert stack.api_key not in cookies[0]["value"]


def test_the_page_follows_a_batch_to_its_end_without_reloading(
    stack: LocalStack, browser: WebDriver, artifacts: Path
) -> None:
    settings = stack.settings(Settings())
    client = Client(settings)
    total = upload(client.storage)  # type: ignore[arg-type]
    sign_in(browser, stack)
    until(lambda: browser.find_element(By.ID, "connection").text == "live", 30, "the stream")
    browser.execute_script("window.sameDocument = 'yes'")

    client.submit(
        prefix=f"s3://{BUCKET}/photos/",
        output=f"s3://{BUCKET}/out/",
        params=BlurParams(strength=50),
        batch_id=BATCH,
    )
    seen: list[dict[str, Any]] = []
    running = artifacts / "dashboard-running.png"
    running.unlink(missing_ok=True)

    def finished() -> bool:
        card = browser.execute_script(READ_CARD, BATCH)
        if card is None:
            return False
        seen.append(card)
        if card["done"] and card["queued"] and not running.exists():
            browser.save_screenshot(str(running))  # the batch half-way, for people to look at
        return bool(card["finished"] == "true")

    until(finished, 300, "the batch to finish on the page")
    done = [card["done"] for card in seen]
    assert done == sorted(done), "the done count went backwards"
    assert len(set(done)) >= 3, f"no progress seen in between: {done}"
    assert seen[0]["done"] + seen[0]["failed"] < total
    last = seen[-1]
    assert (last["done"], last["failed"], last["total"]) == (total - 1, 1, total)
    assert (last["running"], last["queued"]) == (0, 0)
    # One document all along: no reload, no second navigation.
    assert browser.execute_script("return window.sameDocument") == "yes"
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    assert browser.execute_script("return window.blurqDashboard.updates") > 2

    card = browser.find_element(By.CSS_SELECTOR, f'[data-batch="{BATCH}"]')
    card.find_element(By.CSS_SELECTOR, "details.failures summary").click()
    reason = until(
        lambda: card.find_elements(By.CSS_SELECTOR, ".failure-list li"), 10, "the failure"
    )[0].text
    assert "zz-broken.jpg" in reason and "cannot identify image format" in reason

    previews = until(
        lambda: browser.execute_script(
            "const imgs = [...document.querySelectorAll('#recent img')];"
            "return imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0)"
            " && imgs.length"
        ),
        30,
        "the before/after previews",
    )
    assert previews % 2 == 0
    flower = browser.find_element(By.ID, "flower")
    assert flower.is_displayed() and flower.get_attribute("href").rstrip("/") == stack.flower_url
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    screenshot = artifacts / "dashboard.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"dashboard screenshots: {running} (half-way), {screenshot} (finished)")

    browser.find_element(By.ID, "signout").click()
    until(lambda: browser.find_elements(By.ID, "login"), 30, "the sign-in form after sign-out")
    browser.get(f"{stack.api_url}/")
    assert browser.find_elements(By.ID, "login") and not browser.get_cookies()
