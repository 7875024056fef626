"""The dashboard's table of batches and its batch page, on a real redis-server through a real
uvicorn server: filters and paging, the image table, cancel and retry from the page (own site,
submit keys only), the one-batch event stream, and signing in from a batch's address."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from event_stream import events
from fastapi import FastAPI

from infra.settings import Settings
from infra.status import StatusStore
from infra.status.keys import image_key
from infra.tenants import key_hash, new_key
from producer.http.app import create_app

Serve = Callable[[FastAPI], AbstractContextManager[str]]
SUBMIT, VIEW = new_key(), new_key()


@pytest.fixture
def app(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> FastAPI:
    keys = [
        {"sha256": key_hash(SUBMIT), "role": "submit"},
        {"sha256": key_hash(VIEW), "role": "view"},
    ]
    tenant = {"name": "shop", "keys": keys, "inputs": ["s3://shop/"], "outputs": ["s3://shop/"]}
    (tmp_path / "tenants.json").write_text(json.dumps({"tenants": [tenant]}))
    update = {"tenants_file": str(tmp_path / "tenants.json"), "api_keys": ""}
    return create_app(settings.model_copy(update=update))


@pytest.fixture
def url(app: FastAPI, serve: Serve) -> Iterator[str]:
    with serve(app) as found:
        yield found


@contextmanager
def signed_in(url: str, key: str) -> Iterator[httpx.Client]:
    """A browser-like client: signed in with the form, posting from the site's own page."""
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=30) as client:
        assert client.post("/dashboard/session", data={"key": key}).status_code == 303
        yield client


def store_of(app: FastAPI) -> StatusStore:
    store: StatusStore = app.state.client.status_store
    return store


def create(store: StatusStore, batch: str, count: int) -> None:
    images = [(f"{n:06d}", f"s3://shop/in/{batch}/p{n}.jpg") for n in range(count)]
    meta = {"output": "s3://shop/out/", "params": '{"strength": 40}', "queue": "bulk"}
    assert store.create_batch(f"shop/{batch}", images, meta)


def end(store: StatusStore, batch: str, image: str, error: str = "") -> None:
    assert store.start(f"shop/{batch}", image, "w")[0] == "running"
    if error:
        store.fail(f"shop/{batch}", image, error)
    else:
        store.complete(
            f"shop/{batch}", image, timings={"get": 0.5, "bokeh": 1.0}, output="s3://shop/o"
        )


def test_the_table_of_batches_pages_and_filters_on_batch_records_only(
    app: FastAPI, url: str, redis_client: redis.Redis
) -> None:
    store = store_of(app)
    outcomes: dict[str, str] = {}
    for n in range(60):
        name = f"day-{n:02d}"
        create(store, name, 2)
        kind = ("running", "finished", "failures", "cancelled")[n % 4]
        if kind in ("finished", "failures"):
            end(store, name, "000000")
            end(store, name, "000001", "bad" if kind == "failures" else "")
        if kind == "cancelled":
            store.cancel(f"shop/{name}")
        outcomes[name] = kind
        time.sleep(0.002)  # the index orders by creation time
    newest_first = [f"day-{n:02d}" for n in reversed(range(60))]
    with signed_in(url, VIEW) as web:
        redis_client.config_resetstat()
        first = web.get("/dashboard/batches").json()
        assert [b["batch_id"] for b in first["batches"]] == newest_first[:25]
        assert first["next_offset"] == 25 and first["role"] == "view"
        for kind in ("running", "finished", "failures", "cancelled"):
            seen: list[str] = []
            offset: int | None = 0
            while offset is not None:
                page = web.get(
                    "/dashboard/batches", params={"state": kind, "offset": offset, "limit": 7}
                )
                seen += [b["batch_id"] for b in page.json()["batches"]]
                offset = page.json()["next_offset"]
            assert seen == [name for name in newest_first if outcomes[name] == kind], kind
        found = web.get("/dashboard/batches", params={"q": "Y-1", "state": "failures"}).json()
        assert [b["batch_id"] for b in found["batches"]] == ["day-18", "day-14", "day-10"]
        stats = redis_client.info("commandstats")
    assert "cmdstat_lrange" not in stats  # no image list, no image record was read


def test_the_image_table_filters_searches_and_shows_stage_times(
    app: FastAPI, url: str, redis_client: redis.Redis
) -> None:
    store = store_of(app)
    create(store, "look", 30)
    end(store, "look", "000001")
    end(store, "look", "000002", "cannot identify image format (17 bytes)")
    redis_client.hset(image_key("shop/look", "000003"), mapping={"confidence": "0.41"})
    store.start("shop/look", "000003", "w")
    redis_client.hset(image_key("shop/look", "000003"), mapping={"review": "1"})
    store.complete("shop/look", "000003", timings={"matting": 2.0}, output="s3://shop/out/3.jpg")
    with signed_in(url, VIEW) as web:
        rows = web.get("/dashboard/batches/look/images", params={"limit": 5}).json()
        assert [r["image_id"] for r in rows["images"]] == [f"00000{n}" for n in range(5)]
        assert rows["next_offset"] == 5
        done = rows["images"][1]
        assert (done["key"], done["seconds"], done["timings"]) == (
            "in/look/p1.jpg",
            1.5,
            {"get": 0.5, "bokeh": 1.0},
        )
        failed = web.get("/dashboard/batches/look/images", params={"state": "failed"}).json()
        assert [r["error"] for r in failed["images"]] == ["cannot identify image format (17 bytes)"]
        review = web.get("/dashboard/batches/look/images", params={"review": "true"}).json()
        assert [(r["image_id"], r["confidence"]) for r in review["images"]] == [("000003", 0.41)]
        search = web.get("/dashboard/batches/look/images", params={"q": "P2"}).json()["images"]
        assert [r["key"] for r in search] == [
            "in/look/p2.jpg",
            *(f"in/look/p2{n}.jpg" for n in range(10)),
        ]
        redis_client.hset("blurq:batch:shop/look", "review", 1)  # as completion counts it
        listed = web.get("/dashboard/batches", params={"q": "look"}).json()["batches"]
        assert listed[0]["review"] == 1
        manifest = web.get("/dashboard/batches/look/manifest", params={"state": "failed"})
        assert 'filename="look-failed.csv"' in manifest.headers["content-disposition"]
        assert manifest.text.count("\n") == 2  # the header and the one failure


def test_cancel_and_retry_from_the_page_need_a_submit_key_and_this_site(
    app: FastAPI, url: str, redis_client: redis.Redis
) -> None:
    store = store_of(app)
    create(store, "go", 4)
    end(store, "go", "000000", "bad")
    end(store, "go", "000001")
    with signed_in(url, VIEW) as viewer:
        assert viewer.post("/dashboard/batches/go/retry").status_code == 403
        assert viewer.post("/dashboard/batches/go/cancel").status_code == 403
    with signed_in(url, SUBMIT) as web:
        forged = web.post("/dashboard/batches/go/retry", headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and redis_client.llen("bulk") == 0
        retried = web.post("/dashboard/batches/go/retry").json()
        assert retried["retried"] == 1 and retried["counts"]["queued"] == 3
        assert redis_client.llen("bulk") == 1  # the one failed image, sent again
        cancelled = web.post("/dashboard/batches/go/cancel").json()
        assert cancelled["counts"]["cancelled"] == 3 and cancelled["finished"]
        assert web.post("/dashboard/batches/go/cancel").status_code == 409  # finished
        # The retried image's message was on its way: it is cancelled, not run.
        assert store.start("shop/go", "000000", "w")[0] == "cancelled"
        create(store, "stopped", 2)
        end(store, "stopped", "000000", "bad")
        store.cancel("shop/stopped")
        assert web.post("/dashboard/batches/stopped/retry").status_code == 409
        assert web.post("/dashboard/batches/nope/retry").status_code == 404


def test_the_batch_pages_stream_carries_its_batch_only(app: FastAPI, url: str) -> None:
    store = store_of(app)
    create(store, "mine", 3)
    create(store, "other", 3)
    with signed_in(url, VIEW) as web, web.stream("GET", "/dashboard/events?batch=mine") as reply:
        stream = events(reply)
        name, first = next(stream)
        assert name == "snapshot" and [b["batch_id"] for b in first["batches"]] == ["mine"]
        end(store, "other", "000000")
        create(store, "newer", 1)
        end(store, "mine", "000000")
        while (found := next(stream))[0] != "batches":
            assert [b["batch_id"] for b in found[1]["batches"]] in ([], ["mine"])
        assert [b["batch_id"] for b in found[1]["batches"]] == ["mine"]
        assert found[1]["batches"][0]["counts"]["done"] == 1
    with signed_in(url, VIEW) as web, web.stream("GET", "/dashboard/events?batch=nope") as reply:
        name, first = next(events(reply))
        assert name == "snapshot" and first["batches"] == []


def test_signing_in_on_a_batch_page_comes_back_to_it_and_nowhere_else(url: str) -> None:
    with httpx.Client(base_url=url, headers={"Origin": url}) as web:
        page = web.get("/batches/spring")
        assert page.status_code == 200 and 'name="next" value="batches/spring"' in page.text
        back = web.post("/dashboard/session", data={"key": SUBMIT, "next": "batches/spring"})
        assert back.status_code == 303 and back.headers["location"] == "/batches/spring"
        assert web.get("/batches/spring").text.count('id="image-rows"') == 1
    for elsewhere in (
        "//evil.example/x",
        "https://evil.example/",
        "batches/../../x",
        "batches/a b",
    ):
        with httpx.Client(base_url=url, headers={"Origin": url}) as web:
            sent = web.post("/dashboard/session", data={"key": SUBMIT, "next": elsewhere})
            assert sent.status_code == 303 and sent.headers["location"] == "/", elsewhere
