"""The dashboard in a real headless Chromium against the real stack (its API process included),
used as its users use it.

The key is typed into the sign-in form; a batch with a missing photo and a file that is not one
is submitted through the Python API and followed from the overview to its own page, live, to its
end without a reload. Then: the before/after viewer with the saved matte, the failures filtered
and grouped, the two objects put right and retried from the page until everything is done (the
page announces the end), the manifest downloaded through the page and checked against the API,
and signing out. Screenshots go to the artifact directory (``--artifacts``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from browsing import click, severe_logs, sign_in, until
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from infra.jobs import BlurParams
from infra.settings import Settings
from infra.storage import S3Storage
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "dashboard-e2e"
BATCH = "dashboard-e2e"
BROKEN = ("zz-broken.jpg", "zz-missing.jpg")
READ_SUMMARY = "return {...document.getElementById('summary').dataset}"
READ_ROWS = """return [...document.querySelectorAll('#image-rows tr')].map(
  (row) => ({state: row.dataset.state, input: row.querySelector('th').textContent}));"""


LONG_SIDES: dict[str, int] = {}
"""Each uploaded photo's long side in pixels, by key."""


def upload(storage: S3Storage) -> list[str]:
    """The batch's inputs: the sample photos, a file that is not an image, and one missing."""
    storage.ensure_bucket(BUCKET)
    for sample in SAMPLES:
        photo = sample.jpeg(long_side=640)
        storage.put(BUCKET, f"photos/{sample.name}.jpg", photo, content_type="image/jpeg")
        LONG_SIDES[f"photos/{sample.name}.jpg"] = max(Image.open(io.BytesIO(photo)).size)
    storage.put(BUCKET, f"photos/{BROKEN[0]}", b"not a jpeg at all", content_type="image/jpeg")
    names = [f"{sample.name}.jpg" for sample in SAMPLES] + list(BROKEN)
    return [f"s3://{BUCKET}/photos/{name}" for name in names]


def summary(browser: WebDriver) -> dict[str, str]:
    found: dict[str, str] = browser.execute_script(READ_SUMMARY)
    return found


def follow_to_the_end(browser: WebDriver, artifacts: Path, shot: str) -> list[dict[str, str]]:
    """Read the batch page's figures until the batch ends; a screenshot half-way."""
    seen: list[dict[str, str]] = []
    running = artifacts / shot
    running.unlink(missing_ok=True)

    def ended() -> bool:
        figures = summary(browser)
        if figures:
            seen.append(figures)
            if int(figures["done"]) and int(figures["queued"]) and not running.exists():
                browser.save_screenshot(str(running))
        return figures.get("finished") == "true"

    until(ended, 300, "the batch to end on its page")
    return seen


def test_a_batch_followed_viewed_filtered_retried_and_downloaded(
    stack: LocalStack, browser: WebDriver, artifacts: Path
) -> None:
    client = Client(stack.settings(Settings()))
    uris = upload(client.storage)  # type: ignore[arg-type]
    sign_in(browser, stack.api_url, stack.api_key)
    until(lambda: browser.find_element(By.ID, "connection").text == "live", 30, "the stream")
    params = BlurParams(strength=50, save_matte=True)
    client.submit(uris=uris, output=f"s3://{BUCKET}/out/", params=params, batch_id=BATCH)
    link = until(lambda: browser.find_elements(By.LINK_TEXT, BATCH), 30, "the batch's row")[0]
    link.click()
    until(lambda: summary(browser), 30, "the batch page")
    browser.execute_script("window.sameDocument = 'yes'")
    seen = follow_to_the_end(browser, artifacts, "dashboard-batch-running.png")
    done = [int(figures["done"]) for figures in seen]
    assert done == sorted(done) and len(set(done)) >= 3, f"no live progress seen: {done}"
    last = seen[-1]
    assert (int(last["done"]), int(last["failed"])) == (len(SAMPLES), 2)
    assert browser.execute_script("return window.sameDocument") == "yes"  # no reload
    assert "finished with 2 failures" in browser.find_element(By.ID, "badge").text
    until(lambda: browser.find_elements(By.CSS_SELECTOR, ".reasons summary"), 10, "the reasons")
    assert browser.save_screenshot(str(artifacts / "dashboard-batch.png"))

    viewer_shows_before_after_and_matte(browser, artifacts)
    failures_filter_and_group(browser)
    retry_from_the_page(browser, client, artifacts)
    manifest_matches_the_api(browser, stack)
    assert not severe_logs(browser)

    browser.find_element(By.ID, "signout").click()
    until(lambda: browser.find_elements(By.ID, "login"), 30, "the sign-in form after sign-out")
    browser.get(f"{stack.api_url}/batches/{BATCH}")
    assert browser.find_elements(By.ID, "login") and not browser.get_cookies()


def viewer_shows_before_after_and_matte(browser: WebDriver, artifacts: Path) -> None:
    Select(browser.find_element(By.ID, "image-state")).select_by_value("done")
    click(browser, "#image-rows tr[data-state=done] button.open")
    loaded = """
      const side = (id) => { const i = document.getElementById(id);
        return i.complete ? Math.max(i.naturalWidth, i.naturalHeight) : 0; };
      return document.getElementById('viewer').open && side('before') && side('after')
        && [side('before'), side('after'), document.getElementById('stage').clientWidth];"""
    before, after, shown = until(lambda: browser.execute_script(loaded), 30, "the previews")
    long_side = LONG_SIDES[browser.find_element(By.ID, "viewer-title").text]
    assert before == after == long_side and shown >= 600  # the whole photo, at a useful size
    browser.find_element(By.ID, "split").send_keys("\ue012" * 10)  # arrow left: more after
    assert browser.save_screenshot(str(artifacts / "dashboard-viewer.png"))
    clip = browser.find_element(By.ID, "after").value_of_css_property("clip-path")
    assert clip.startswith("inset(") and "40%" in clip
    browser.find_element(By.ID, "matte-overlay").click()
    matte = """const m = document.getElementById('matte');
      return !m.hidden && Math.max(m.naturalWidth, m.naturalHeight);"""
    assert until(lambda: browser.execute_script(matte), 30, "the matte overlay") == long_side
    browser.find_element(By.ID, "viewer-close").click()
    assert not browser.execute_script("return document.getElementById('viewer').open")


def failures_filter_and_group(browser: WebDriver) -> None:
    Select(browser.find_element(By.ID, "image-state")).select_by_value("failed")

    def failed_rows() -> list[str] | None:
        rows: list[dict[str, str]] = browser.execute_script(READ_ROWS)
        only = rows and all(row["state"] == "failed" for row in rows)
        return sorted(row["input"] for row in rows) if only else None

    assert until(failed_rows, 10, "only failed rows") == [f"photos/{name}" for name in BROKEN]
    reasons = [r.text for r in browser.find_elements(By.CSS_SELECTOR, ".reasons summary")]
    assert len(reasons) == 2 and any("not found" in reason for reason in reasons)
    assert any("cannot identify image format" in reason for reason in reasons)


def retry_from_the_page(browser: WebDriver, client: Client, artifacts: Path) -> None:
    photo = SAMPLES[0].jpeg(long_side=640)
    for name in BROKEN:  # put right what failed
        client.storage.put(BUCKET, f"photos/{name}", photo, content_type="image/jpeg")
    retry = browser.find_element(By.ID, "retry")
    assert retry.text == "Retry 2 failed images" and retry.is_enabled()
    retry.click()
    browser.switch_to.alert.accept()  # "Send the 2 failed images of ... again?"
    until(
        lambda: "2 images sent again" in browser.find_element(By.ID, "action-note").text,
        30,
        "the retry",
    )
    follow_to_the_end(browser, artifacts, "dashboard-batch-retrying.png")
    figures = summary(browser)
    assert (int(figures["done"]), int(figures["failed"])) == (len(SAMPLES) + 2, 0)
    assert browser.find_element(By.ID, "badge").text == "finished"
    until(
        lambda: browser.find_element(By.ID, "reasons-section").get_attribute("hidden"),
        10,
        "no failures",
    )
    said = browser.find_element(By.ID, "announcer").get_attribute("textContent")
    assert said == f"Batch {BATCH} finished: {len(SAMPLES) + 2} done."


def manifest_matches_the_api(browser: WebDriver, stack: LocalStack) -> None:
    href = browser.find_element(By.ID, "download-csv").get_attribute("href")
    text = browser.execute_async_script(
        "fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": stack.api_key}) as api:
        listed = api.get(f"/v1/batches/{BATCH}/images").json()["images"]
    assert [(r["image_id"], r["input"], r["state"], r["output"]) for r in rows] == [
        (i["image_id"], i["input"], i["state"], i["output"]) for i in listed
    ]
    assert all(row["state"] == "done" and float(row["seconds"]) > 0 for row in rows)
