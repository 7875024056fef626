"""The API behind the dashboard's buttons, on a real redis-server through a real uvicorn server:
retry (messages really land on the broker), image search and review filter, the streamed
manifest, and the fleet (from real Celery heartbeat events on the broker's event channel)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from infra.celery_app import create_app as celery_app
from infra.jobs import JobMessage
from infra.settings import Settings
from infra.status import StatusStore
from infra.status.keys import image_key
from infra.tenants import key_hash, new_key
from producer.http.app import create_app
from producer.http.manifest import COLUMNS, inert

Serve = Callable[[FastAPI], AbstractContextManager[str]]
KEY, VIEW = new_key(), new_key()
BUCKET = "acts"
PARAMS = '{"strength": 35, "format": "png"}'


@pytest.fixture
def app(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> FastAPI:
    """The app with one tenant, the operator's default tenant: a submit key and a view key."""
    tenants = tmp_path / "tenants.json"
    keys = [{"sha256": key_hash(KEY), "role": "submit"}, {"sha256": key_hash(VIEW), "role": "view"}]
    everywhere = ["s3://acts/"]
    tenant = {"name": "default", "keys": keys, "inputs": everywhere, "outputs": everywhere}
    tenant["limits"] = {"submits_per_minute": 5}  # a retry counts as a submission
    tenants.write_text(json.dumps({"tenants": [tenant]}))
    return create_app(settings.model_copy(update={"tenants_file": str(tenants), "api_keys": ""}))


@pytest.fixture
def api(app: FastAPI, serve: Serve) -> Iterator[httpx.Client]:
    with serve(app) as url, httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as client:
        yield client


def store_of(app: FastAPI) -> StatusStore:
    store: StatusStore = app.state.client.status_store
    return store


def create(store: StatusStore, batch: str, count: int) -> None:
    images = [(f"{n:06d}", f"s3://{BUCKET}/in/Shot-{n}.jpg") for n in range(count)]
    meta = {"output": f"s3://{BUCKET}/out/", "params": PARAMS, "queue": "bulk"}
    assert store.create_batch(batch, images, meta)


def end(store: StatusStore, batch: str, image: str, error: str = "") -> None:
    assert store.start(batch, image, "w")[0] == "running"
    if error:
        store.fail(batch, image, error)
    else:
        store.complete(batch, image, timings={"get": 0.25, "bokeh": 1.5}, output=f"s3://o/{image}")


def queued_jobs(broker: redis.Redis, queue: str) -> list[JobMessage]:
    """The blur jobs waiting in a broker queue in delivery order, decoded from kombu's messages."""
    jobs = []
    for raw in reversed(broker.lrange(queue, 0, -1)):  # kombu pushes left, pops right
        message = json.loads(raw)  # type: ignore[arg-type]
        args, _, _ = json.loads(message["body"])  # infra.publish: JSON text, not base64
        jobs.append(JobMessage.decode(args[0]))
    return jobs


def test_retry_sends_exactly_the_failed_images_again(
    api: httpx.Client, app: FastAPI, redis_client: redis.Redis, serve: Serve
) -> None:
    store = store_of(app)
    create(store, "shoot", 5)
    end(store, "shoot", "000000")
    end(store, "shoot", "000001", "not an image")
    end(store, "shoot", "000002", "NoSuchKey")
    redis_client.delete("bulk")  # the batch's first messages were never sent here
    with serve(app) as url, httpx.Client(base_url=url, headers={"X-API-Key": VIEW}) as viewer:
        refused = viewer.post("/v1/batches/shoot/retry")
        assert refused.status_code == 403 and not redis_client.llen("bulk")
    answer = api.post("/v1/batches/shoot/retry")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["retried"] == 2 and body["counts"]["queued"] == 4 and body["batch_id"] == "shoot"
    jobs = queued_jobs(redis_client, "bulk")
    assert [(job.image_id, job.input_key) for job in jobs] == [
        ("000001", "in/Shot-1.jpg"),
        ("000002", "in/Shot-2.jpg"),
    ]
    assert {(job.batch_id, job.input_bucket) for job in jobs} == {("shoot", BUCKET)}
    # the parameters and output stay the batch's, which workers read from its record
    batch = store.batch("shoot")
    assert batch is not None and batch.params["strength"] == 35 and batch.output.endswith("out/")
    again = api.post("/v1/batches/shoot/retry", json={"images": ["000000", "000003"]})
    assert again.json()["retried"] == 0 and redis_client.llen("bulk") == 2  # nothing failed
    assert api.post("/v1/batches/nope/retry").status_code == 404
    assert api.post("/v1/batches/shoot/retry", json={"images": ["x:y"]}).status_code == 422
    assert api.post("/v1/batches/shoot/retry", json={"strength": 9}).status_code == 422
    create(store, "stopped", 2)
    end(store, "stopped", "000000", "bad")
    store.cancel("stopped")
    cancelled = api.post("/v1/batches/stopped/retry")
    assert cancelled.status_code == 409 and cancelled.json()["error"]["code"] == "batch_cancelled"
    # 5 a minute: a 429 within 11 more, even if a minute's counter starts afresh on the way.
    answers = [api.post("/v1/batches/shoot/retry") for _ in range(11)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused and int(refused[0].headers["retry-after"]) <= 60
    assert {a.status_code for a in answers} == {200, 429}


def test_images_are_searched_by_input_key_and_filtered_by_review(
    api: httpx.Client, app: FastAPI, redis_client: redis.Redis
) -> None:
    store = store_of(app)
    create(store, "look", 12)
    for n, review in ((0, "0"), (1, "1"), (11, "1")):
        store.start("look", f"{n:06d}", "w")
        redis_client.hset(image_key("look", f"{n:06d}"), mapping={"review": review})
        store.complete("look", f"{n:06d}", timings={}, output=f"s3://o/{n}")
    found = api.get("/v1/batches/look/images", params={"q": "shot-1"}).json()["images"]
    assert [image["input"] for image in found] == [
        f"s3://{BUCKET}/in/Shot-{n}.jpg" for n in (1, 10, 11)
    ]
    doubtful = api.get("/v1/batches/look/images", params={"review": "true"}).json()["images"]
    assert [(i["image_id"], i["review"]) for i in doubtful] == [("000001", True), ("000011", True)]
    redis_client.hset("blurq:batch:look", "review", 2)  # as completion counts them
    assert api.get("/v1/batches/look").json()["review"] == 2
    both = api.get("/v1/batches/look/images", params={"review": "true", "q": "shot-11"}).json()
    assert [image["image_id"] for image in both["images"]] == ["000011"]


def test_the_manifest_streams_every_image_as_csv_or_json_lines(
    api: httpx.Client, app: FastAPI
) -> None:
    store = store_of(app)
    create(store, "big", 2_345)  # more than two pages of the manifest
    end(store, "big", "000007")
    end(store, "big", "002000", "not an image, really")
    with api.stream("GET", "/v1/batches/big/manifest", params={"format": "csv"}) as reply:
        assert reply.headers["content-type"].startswith("text/csv")
        assert 'filename="big.csv"' in reply.headers["content-disposition"]
        assert "content-length" not in reply.headers  # streamed, not built whole
        text = "".join(reply.iter_text())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 2_345
    done, failed = rows[7], rows[2000]
    assert (done["state"], done["output"], done["seconds"], done["bokeh"]) == (
        "done",
        "s3://o/000007",
        "1.75",
        "1.5",
    )
    assert (failed["input"], failed["error"]) == (
        f"s3://{BUCKET}/in/Shot-2000.jpg",
        "not an image, really",
    )
    listed = api.get("/v1/batches/big/images", params={"limit": 1000}).json()["images"]
    lines = api.get("/v1/batches/big/manifest", params={"format": "jsonl"}).text.splitlines()
    assert [json.loads(line) for line in lines[:1000]] == listed
    failures = api.get("/v1/batches/big/manifest", params={"state": "failed"})
    assert 'filename="big-failed.csv"' in failures.headers["content-disposition"]
    assert [row["image_id"] for row in csv.DictReader(io.StringIO(failures.text))] == ["002000"]
    assert api.get("/v1/batches/nope/manifest").status_code == 404
    assert api.get("/v1/batches/big/manifest", params={"format": "xml"}).status_code == 422


def heartbeat(settings: Settings, kind: str, **fields: Any) -> None:
    """A worker event on the broker's event channel, as a Celery worker sends it."""
    app = celery_app(settings)
    with app.connection_for_write() as connection:
        dispatcher = app.events.Dispatcher(connection, hostname="gpu-7@node-3", enabled=True)
        dispatcher.send(kind, freq=0.5, **fields)
        dispatcher.close()


def test_the_fleet_from_heartbeats_queue_depths_and_the_last_hour(
    api: httpx.Client, app: FastAPI, settings: Settings, redis_client: redis.Redis, serve: Serve
) -> None:
    store = store_of(app)
    create(store, "hour", 4)
    end(store, "hour", "000000")
    end(store, "hour", "000001")
    end(store, "hour", "000002", "bad")
    redis_client.rpush("bulk", "m1", "m2", "m3")
    assert api.get("/v1/fleet").json()["workers_online"] == 0  # no worker has a heartbeat yet

    def fleet_after(kind: str, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while True:
            heartbeat(settings, kind, **fields)
            found: dict[str, Any] = api.get("/v1/fleet").json()
            if found["workers"] and found["workers"][0]["online"] == (kind != "worker-offline"):
                return found
            assert time.monotonic() < deadline, found
            time.sleep(0.2)

    seen = fleet_after("worker-heartbeat", active=1, processed=41)
    assert seen["watching"] and (seen["workers_online"], seen["workers_busy"]) == (1, 1)
    ((worker,),) = (seen["workers"],)
    assert (worker["name"], worker["busy"], worker["processed"]) == ("gpu-7@node-3", True, 41)
    assert abs(worker["last_heartbeat"] - time.time()) < 15
    assert seen["queues"] == {"interactive": 0, "webhooks": 0, "bulk": 3}
    assert (seen["done_last_hour"], seen["failed_last_hour"]) == (2, 1)
    assert seen["failure_rate"] == pytest.approx(1 / 3, abs=1e-3) and len(seen["minutes"]) == 60
    gone = fleet_after("worker-offline")
    assert (gone["workers_online"], gone["workers_busy"]) == (0, 0)
    assert gone["workers"][0]["processed"] == 41
    with httpx.Client(base_url=str(api.base_url), headers={"X-API-Key": VIEW}) as viewer:
        shown = viewer.get("/v1/fleet").json()
    assert shown["workers"] == [] and shown["queues"]["bulk"] == 3  # names: the operator's only


PROBES = {"/healthz", "/livez"}
"""Health probes, open to the orchestrator when a deployment serves them."""


def test_every_route_in_the_openapi_document_refuses_a_request_without_a_key(
    app: FastAPI, serve: Serve
) -> None:
    """The routes outside it are the public ones: the pages (their sign-in form when signed
    out), their scripts, the sign-in form's POSTs and /metrics (open without its token)."""
    values = {"batch_id": "b", "image_id": "000000", "side": "input"}
    checked = []
    with serve(app) as url, httpx.Client(base_url=url) as anonymous:
        for path, operations in app.openapi()["paths"].items():
            if path in PROBES:
                continue
            for method in operations:
                answer = anonymous.request(method, path.format(**values))
                # 429: refusals count against the address, and the 21st is throttled.
                assert answer.status_code in (401, 429), (method, path, answer.status_code)
                checked.append(f"{method.upper()} {path}")
    assert {"POST /v1/batches/{batch_id}/retry", "GET /v1/fleet"} <= set(checked)
    assert "POST /dashboard/batches/{batch_id}/retry" in checked and len(checked) >= 17


def test_csv_cells_that_look_like_formulas_stay_text() -> None:
    """An input key or a reason is anyone's text: a spreadsheet must not run it."""
    assert inert('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [inert(c) for c in ("+1", "-2", "@a", "\tb", "s3://b/k.jpg", 3.5)] == [
        "'+1",
        "'-2",
        "'@a",
        "'\tb",
        "s3://b/k.jpg",
        3.5,
    ]
