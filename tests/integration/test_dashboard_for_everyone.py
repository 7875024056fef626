"""The dashboard for everyone, in a real headless Chromium on the real stack's Redis and S3.

A 5,000-image batch (pre-recorded records: 312 failures, 52 for each of 6 reasons, 157 images
flagged for review) and a 50-image one. Both pages, at 1280 and 390 px wide, light and dark: no
horizontal scrolling, no serious or critical axe-core violation (the viewer open too),
screenshots to the artifact directory. Every control is reached with Tab and the viewer is
worked with the keyboard. The 5,000-image page's time to its first rows and to a filter change
is measured against the 50-image page's in the same run (medians). An outage of the API greys
the figures and says since when, until the stream is back.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from browsing import sign_in, until, view_as
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from infra.settings import Settings
from infra.status import StatusStore
from infra.status.keys import image_key
from producer.http.app import create_app
from producer.local.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

AXE = Path(__file__).resolve().parents[2] / ".blurq" / "axe-core-4.10.3.min.js"
"""Fetched and checked against its SHA-256 by ./dev setup."""
BIG, SMALL = "catalogue-5000", "headshots-50"
REASONS = [
    "s3://shop/in/{n}.jpg not found (NoSuchKey)",
    "cannot identify image format ({n} bytes)",
    "corrupt or truncated jpeg: image file is truncated",
    "timed out after 240 s",
    "s3://shop/in/{n}.jpg is {n} bytes, limit 67108864",
    "gave up after 3 retries: S3 503 SlowDown",
]


def record(store: StatusStore, batch: str, count: int) -> None:
    """A finished batch of count images: every 16th failed (the 6 reasons in turn), every 32nd
    flagged for review."""
    images = [(f"{n:06d}", f"s3://shop/in/{batch}/photo-{n:05d}.jpg") for n in range(count)]
    meta = {"output": "s3://shop/out/", "params": '{"strength": 40}', "queue": "bulk"}
    assert store.create_batch(batch, images, meta)
    for n in range(count):
        image = f"{n:06d}"
        store.start(batch, image, "w")
        if n % 16 == 8:
            store.fail(batch, image, REASONS[(n // 16) % 6].format(n=n))
            continue
        doubt = n % 32 == 0
        flags = {"confidence": "0.41" if doubt else "0.93", "review": "1" if doubt else "0"}
        store.redis.hset(image_key(batch, image), mapping=flags)
        timings = {"get": 0.02, "decode": 0.05, "matting": 1.1, "bokeh": 0.3, "put": 0.02}
        store.complete(batch, image, timings=timings, output=f"s3://shop/out/{n}.jpg")


@pytest.fixture(scope="module")
def recorded(stack: LocalStack) -> LocalStack:
    store = StatusStore.from_url(stack.redis_url, ttl=3600, max_deliveries=5)
    record(store, SMALL, 50)
    record(store, BIG, 5_000)
    return stack


def axe_problems(browser: WebDriver) -> list[dict[str, Any]]:
    """The page's serious and critical axe-core violations."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: ./dev setup fetches axe-core")
    browser.execute_script(AXE.read_text())
    found: dict[str, Any] = browser.execute_async_script(
        "axe.run(document, {resultTypes: ['violations']}).then(arguments[0])"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"] for n in v["nodes"][:3]]}
        for v in found["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def settled(browser: WebDriver, rows: str) -> None:
    until(lambda: browser.find_elements(By.CSS_SELECTOR, rows), 30, rows)
    time.sleep(0.5)  # the stream's first update and the fleet cards


def look(browser: WebDriver, artifacts: Path, page: str, rows: str) -> None:
    """Screenshots at 1280 and 390 px, light and dark; no sideways scrolling; axe each time."""
    for width in (1280, 390):
        for dark in (False, True):
            view_as(browser, width, dark=dark)
            settled(browser, rows)
            name = f"dashboard-{page}-{width}-{'dark' if dark else 'light'}.png"
            assert browser.save_screenshot(str(artifacts / name))
            scroll = "const d = document.documentElement; return [d.scrollWidth, d.clientWidth];"
            wide, shown = browser.execute_script(scroll)
            assert wide <= shown, f"{name}: {wide} px of content in {shown} px"
            assert axe_problems(browser) == [], name


def test_both_pages_at_phone_and_desktop_widths_light_and_dark(
    recorded: LocalStack, browser: WebDriver, artifacts: Path
) -> None:
    sign_in(browser, recorded.api_url, recorded.api_key)
    look(browser, artifacts, "overview", "#batch-rows tr")
    browser.get(f"{recorded.api_url}/batches/{BIG}")
    look(browser, artifacts, "batch", "#image-rows tr")
    view_as(browser, 1280, dark=False)
    browser.find_element(By.CSS_SELECTOR, "#image-rows button.open").click()
    until(lambda: browser.execute_script("return document.getElementById('viewer').open"), 5, "")
    assert axe_problems(browser) == []
    browser.find_element(By.ID, "viewer-close").click()
    reasons = browser.find_elements(By.CSS_SELECTOR, ".reasons summary")
    assert [r.text.split(" ", 1)[0] for r in reasons] == ["52"] * 6


def tab_through(browser: WebDriver, presses: int) -> list[str]:
    """What Tab focuses, in order, from the top of the page."""
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = []
    describe = """const e = document.activeElement;
      return e.id || e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30);"""
    for _ in range(presses):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(browser.execute_script(describe))
    return reached


def test_every_control_by_keyboard(recorded: LocalStack, browser: WebDriver) -> None:
    view_as(browser, 1280, dark=False)
    browser.get(f"{recorded.api_url}/")
    settled(browser, "#batch-rows tr")
    reached = tab_through(browser, 14)
    for control in ("Skip to the batches", "signout", "state", "search", BIG, SMALL):
        assert control in reached, (control, reached)
    browser.get(f"{recorded.api_url}/batches/{BIG}")
    settled(browser, "#image-rows tr")
    reached = tab_through(browser, 24)
    for control in ("download-csv", "image-state", "review-only", "image-search"):
        assert control in reached, (control, reached)
    assert any(name.startswith("View in/") for name in reached), reached
    opener = browser.find_element(By.CSS_SELECTOR, "#image-rows button.open")
    opener.send_keys(Keys.ENTER)
    until(lambda: browser.execute_script("return document.getElementById('viewer').open"), 5, "")
    inside = "return document.getElementById('viewer').contains(document.activeElement)"
    assert browser.execute_script(inside)
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    is_open = "return document.getElementById('viewer').open"
    until(lambda: not browser.execute_script(is_open), 5, "the viewer to close")
    assert browser.switch_to.active_element == opener  # back where the reader was


def rows_shown(browser: WebDriver, state: str | None) -> bool:
    states: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#image-rows tr')].map((r) => r.dataset.state)"
    )
    return len(states) > 0 and (state is None or set(states) == {state})


def timings(browser: WebDriver, url: str) -> tuple[float, float]:
    """Seconds from opening the page to its first rows, and from a filter change to its rows."""
    browser.get("about:blank")
    started = time.perf_counter()
    browser.get(url)
    until(lambda: rows_shown(browser, None), 30, "the first rows")
    first = time.perf_counter() - started
    started = time.perf_counter()
    Select(browser.find_element(By.ID, "image-state")).select_by_value("failed")
    until(lambda: rows_shown(browser, "failed"), 30, "the failed rows")
    return first, time.perf_counter() - started


def test_a_5000_image_batch_page_stays_responsive(
    recorded: LocalStack, browser: WebDriver, artifacts: Path
) -> None:
    view_as(browser, 1280, dark=False)
    runs = {
        name: [timings(browser, f"{recorded.api_url}/batches/{name}") for _ in range(3)]
        for name in (SMALL, BIG)
    }
    medians = {
        name: [statistics.median(run[i] for run in found) for i in (0, 1)]
        for name, found in runs.items()
    }
    figures = {
        "first_rows_s": {name: round(m[0], 3) for name, m in medians.items()},
        "filter_change_s": {name: round(m[1], 3) for name, m in medians.items()},
        "ratio_5000_to_50": [round(medians[BIG][i] / medians[SMALL][i], 2) for i in (0, 1)],
    }
    (artifacts / "dashboard-5000-images.json").write_text(json.dumps(figures, indent=2))
    print(f"5,000-image batch page: {figures}")
    assert medians[BIG][0] < 5 and medians[BIG][1] < 5, figures


def test_an_outage_greys_the_figures_and_says_since_when(
    recorded: LocalStack, browser: WebDriver, serve: Any
) -> None:
    app, port = create_app(recorded.settings(Settings())), free_port()
    with serve(app, port) as url:  # the session cookie (127.0.0.1, any port) signs in here too
        browser.get(f"{url}/batches/{SMALL}")
        until(lambda: browser.find_element(By.ID, "connection").text == "live", 30, "live")
    notice = browser.find_element(By.ID, "outage")
    until(lambda: notice.is_displayed(), 30, "the outage notice")
    assert notice.text.startswith("Live updates stopped at ") and "from then" in notice.text
    assert "stale" in browser.find_element(By.TAG_NAME, "body").get_attribute("class")
    figures = browser.find_element(By.ID, "counts").value_of_css_property("opacity")
    assert float(figures) < 0.6
    with serve(create_app(recorded.settings(Settings())), port):
        until(lambda: browser.find_element(By.ID, "connection").text == "live", 30, "back")
        assert not notice.is_displayed()
