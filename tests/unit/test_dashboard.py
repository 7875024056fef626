"""The dashboard's endpoints on a real redis-server and S3 server: sign-in, batch summaries,
failures by reason, previews, and the server-sent event stream (through a real uvicorn server).
The batch page's own reads and actions: ``test_dashboard_batch_page``."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from event_stream import events
from fastapi import FastAPI
from PIL import Image

from infra.errors import InputTooLarge
from infra.settings import Settings
from infra.status import ImageState, StatusStore
from infra.storage import S3Storage, StoredObject
from infra.tenants import key_hash, new_key
from producer.dashboard import events as live
from producer.dashboard.sessions import COOKIE, SESSION_KEY
from producer.dashboard.thumbnails import Busy, Thumbnails, shrink
from producer.http.app import create_app

Serve = Callable[[FastAPI], AbstractContextManager[str]]
KEY = "dashboard-test-key-of-24-chars"
BUCKET = "dash"


@pytest.fixture
def app_settings(settings: Settings, redis_client: redis.Redis) -> Settings:
    """Settings on the flushed test database, with a known key and a Flower address."""
    return settings.model_copy(update={"api_keys": KEY, "flower_url": "http://127.0.0.1:5555"})


@pytest.fixture
def app(app_settings: Settings) -> FastAPI:
    return create_app(app_settings)


@pytest.fixture
def web(app: FastAPI, serve: Serve) -> Iterator[httpx.Client]:
    """A client of the app served by a real uvicorn server."""
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def signed(web: httpx.Client) -> httpx.Client:
    web.headers["X-API-Key"] = KEY
    return web


def store_of(app: FastAPI) -> StatusStore:
    store: StatusStore = app.state.client.status_store
    return store


def create(store: StatusStore, batch: str, count: int, params: str = '{"strength": 40}') -> None:
    images = [(f"{n:06d}", f"s3://{BUCKET}/in/{batch}/{n}.jpg") for n in range(count)]
    assert store.create_batch(batch, images, {"output": f"s3://{BUCKET}/out/", "params": params})


def move(
    store: StatusStore,
    batch: str,
    image: str,
    state: ImageState,
    *,
    output: str = "",
    error: str = "",
) -> None:
    assert store.start(batch, image, "w")[0] == "running"
    if state is ImageState.DONE:
        assert store.complete(batch, image, timings={}, output=output) == "done"
    elif state is ImageState.FAILED:
        assert store.fail(batch, image, error) == "failed"


DASHBOARD_READS = (
    "/dashboard/batches",
    "/dashboard/fleet",
    "/dashboard/events",
    "/dashboard/batches/b/images",
    "/dashboard/batches/b/reasons",
    "/dashboard/batches/b/manifest",
    "/dashboard/thumbnails/b/000000/input",
)


def test_every_dashboard_route_but_the_assets_needs_a_key(web: httpx.Client) -> None:
    for path in DASHBOARD_READS:
        assert web.get(path).status_code == 401
    # Each refusal counts against the address (20 a minute): the other two kinds once each.
    assert web.get("/dashboard/batches", headers={"X-API-Key": "wrong"}).status_code == 401
    assert web.get("/dashboard/events", headers={"Cookie": f"{COOKIE}=made-up"}).status_code == 401
    for action in ("cancel", "retry"):
        assert web.post(f"/dashboard/batches/b/{action}").status_code == 401
    form = web.get("/")
    assert form.status_code == 200 and 'method="post" action="dashboard/session"' in form.text
    # The batch page signed out: the form, one level down, coming back to the batch.
    deep = web.get("/batches/b")
    assert deep.status_code == 200 and '<base href="../">' in deep.text
    assert '<input type="hidden" name="next" value="batches/b">' in deep.text
    # A key in the address signs nothing in any more (it would sit in logs and history).
    keyed = web.get(f"/?key={KEY}", follow_redirects=False)
    assert keyed.status_code == 200 and 'id="login"' in keyed.text and not web.cookies
    for script in ("common.js", "overview.js", "batch.js", "viewer.js"):
        answer = web.get(f"/dashboard/static/{script}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/javascript")
    assert web.get("/dashboard/static/login.js").status_code == 404
    assert web.get("/dashboard/static/index.html").status_code == 404
    assert web.get("/dashboard/batches", headers={"Authorization": f"Bearer {KEY}"}).is_success


def session_records(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every dashboard session in Redis: key -> record."""
    keys = client.keys(f"{SESSION_KEY}*")
    return {key: json.loads(client.get(key)) for key in keys}  # type: ignore[arg-type]


def test_the_form_signs_in_with_an_opaque_server_side_session_that_sign_out_ends(
    web: httpx.Client, redis_client: redis.Redis
) -> None:
    origin = {"Origin": str(web.base_url).rstrip("/")}
    signed_in = web.post("/dashboard/session", data={"key": KEY}, headers=origin)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=43200" in cookie
    session = web.cookies[COOKIE]
    assert KEY not in cookie and len(session) >= 40
    records = session_records(redis_client)
    ((stored, record),) = records.items()
    assert record == {"tenant": "default", "role": "submit", "key_sha256": key_hash(KEY)}
    assert session not in stored and KEY not in json.dumps(record)  # Redis keeps only hashes
    assert 43_000 < redis_client.ttl(stored) <= 43_200
    page = web.get("/")
    assert page.status_code == 200 and 'id="batch-rows"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert web.get("/dashboard/batches").json()["tenant"] == "default"

    signed_out = web.post("/dashboard/signout", headers=origin)
    assert signed_out.status_code == 303 and not session_records(redis_client)
    assert (
        web.get("/dashboard/batches", headers={"Cookie": f"{COOKIE}={session}"}).status_code == 401
    )


def test_sign_in_refuses_other_sites_pages_and_wrong_keys(
    web: httpx.Client, redis_client: redis.Redis
) -> None:
    for origin in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
    ):
        forged = web.post("/dashboard/session", data={"key": KEY}, headers=origin)
        assert forged.status_code == 403 and COOKIE not in web.cookies
    wrong = web.post("/dashboard/session", data={"key": "x" * 30})
    assert wrong.status_code == 401 and "not accepted" in wrong.text
    assert not session_records(redis_client)
    assert web.post("/dashboard/session", data={"key": KEY}).status_code == 303  # no browser
    forged_out = web.post("/dashboard/signout", headers={"Origin": "https://evil.example"})
    assert forged_out.status_code == 403 and len(session_records(redis_client)) == 1
    assert web.get("/dashboard/batches").status_code == 200


def test_a_view_key_signs_in_read_only_and_its_removal_ends_the_session(
    app_settings: Settings, redis_client: redis.Redis, tmp_path: Path, serve: Serve
) -> None:
    submit, view = new_key(), new_key()
    tenant = {
        "name": "shop-a",
        "keys": [{"sha256": key_hash(submit), "role": "submit"}],
        "inputs": ["s3://shop-a-photos/"],
        "outputs": ["s3://shop-a-results/"],
    }
    both = {
        "tenants": [
            {**tenant, "keys": [*tenant["keys"], {"sha256": key_hash(view), "role": "view"}]}
        ]
    }
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(both))
    settings = app_settings.model_copy(update={"api_keys": "", "tenants_file": str(path)})
    with serve(create_app(settings)) as url, httpx.Client(base_url=url) as web:
        assert web.post("/dashboard/session", data={"key": view}).status_code == 303
        shown = web.get("/dashboard/batches").json()
        assert (shown["tenant"], shown["role"], shown["flower_url"]) == ("shop-a", "view", "")
        session = web.cookies[COOKIE]
    path.write_text(json.dumps({"tenants": [tenant]}))  # the view key is revoked
    with serve(create_app(settings)) as url, httpx.Client(base_url=url) as web:
        assert (
            web.get("/dashboard/batches", headers={"Cookie": f"{COOKIE}={session}"}).status_code
            == 401
        )


def test_summaries_are_newest_first_with_counts_rate_eta_and_params(
    signed: httpx.Client, app: FastAPI
) -> None:
    store = store_of(app)
    create(store, "older", 4)
    time.sleep(0.01)  # the index orders by creation time
    create(store, "newer", 5, params='{"strength": 70, "model": "u2netp"}')
    move(store, "newer", "000000", ImageState.DONE, output="s3://dash/out/0.jpg")
    move(store, "newer", "000001", ImageState.FAILED, error="bad image")
    move(store, "newer", "000002", ImageState.RUNNING)
    for image in ("000000", "000001", "000002", "000003"):
        move(store, "older", image, ImageState.DONE)
    body = signed.get("/dashboard/batches").json()
    assert body["flower_url"] == "http://127.0.0.1:5555"
    newer, older = body["batches"]
    assert (newer["batch_id"], older["batch_id"]) == ("newer", "older")
    counts = newer["counts"]
    assert (counts["done"], counts["failed"], counts["running"], counts["queued"]) == (1, 1, 1, 2)
    assert newer["params"] == {"strength": 70, "model": "u2netp"} and not newer["finished"]
    # One image done and one failed at once: too little to promise an ETA.
    assert newer["estimating"] and newer["eta_seconds"] is None
    assert older["finished"] and older["eta_seconds"] is None and older["finished_at"]
    assert older["rate"] > 0 and not older["estimating"]
    assert [b["batch_id"] for b in signed.get("/dashboard/batches?limit=1").json()["batches"]] == [
        "newer"
    ]


def test_failures_are_grouped_by_reason_with_counts(signed: httpx.Client, app: FastAPI) -> None:
    store = store_of(app)
    create(store, "big", 2500)  # more than one chunk of the image list
    reasons = {
        "missing": "s3://dash/in/big/{n}.jpg not found (NoSuchKey)",
        "unreadable": "cannot identify image format ({n} bytes)",
        "odd": "internal error: ValueError: matte is all zero",
    }
    kinds = {n: ("missing", "unreadable", "missing", "odd")[n % 4] for n in range(3, 2500, 7)}
    for n, kind in kinds.items():
        move(store, "big", f"{n:06d}", ImageState.FAILED, error=reasons[kind].format(n=n))
    move(store, "big", "000001", ImageState.DONE)
    found = signed.get("/dashboard/batches/big/reasons").json()
    assert found["failed"] == len(kinds) and found["complete"]
    counts = {group["reason"]: group["count"] for group in found["reasons"]}
    assert counts == {
        "s3://… not found (NoSuchKey)": sum(k == "missing" for k in kinds.values()),
        "cannot identify image format (N bytes)": sum(k == "unreadable" for k in kinds.values()),
        "internal error: ValueError: matte is all zero": sum(k == "odd" for k in kinds.values()),
    }
    assert list(counts.values()) == sorted(counts.values(), reverse=True)  # most frequent first
    top = found["reasons"][0]
    assert top["example"] == "s3://dash/in/big/10.jpg not found (NoSuchKey)"  # its first
    assert len(top["images"]) == 20 and top["images"][0]["input"] == "s3://dash/in/big/10.jpg"
    create(store, "clean", 3)
    assert signed.get("/dashboard/batches/clean/reasons").json()["reasons"] == []
    assert signed.get("/dashboard/batches/nope/reasons").status_code == 404


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def test_previews_small_and_large_only_for_objects_the_records_name(
    signed: httpx.Client, app: FastAPI, storage: S3Storage
) -> None:
    storage.ensure_bucket(BUCKET)
    storage.put(BUCKET, "in/shot/0.jpg", jpeg(1800, 1200), content_type="image/jpeg")
    storage.put(BUCKET, "out/0.jpg", jpeg(1800, 1200), content_type="image/jpeg")
    storage.put(BUCKET, "out/0.matte.png", jpeg(1800, 1200), content_type="image/png")
    storage.put(BUCKET, "in/shot/1.jpg", b"not an image", content_type="image/jpeg")
    store = store_of(app)
    create(store, "shot", 3, params='{"strength": 40, "save_matte": true}')
    move(store, "shot", "000000", ImageState.DONE, output=f"s3://{BUCKET}/out/0.jpg")
    move(store, "shot", "000001", ImageState.FAILED, error="bad")
    rows = signed.get("/dashboard/batches/shot/images").json()["images"]
    previews = rows[0]["previews"]
    assert rows[1]["previews"]["output"] is None and rows[1]["previews"]["matte"] is None
    for side in ("input", "output", "matte"):
        for size, shape in (("small", (160, 107)), ("large", (1280, 853))):
            answer = signed.get(f"/{previews[side]}?size={size}")
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(answer.content)).size == shape
    # Cached: still served once the object is gone.
    storage.client.delete_object(Bucket=BUCKET, Key="out/0.jpg")
    assert signed.get("/dashboard/thumbnails/shot/000000/output").status_code == 200
    assert signed.get("/dashboard/thumbnails/shot/000001/input").status_code == 422
    assert signed.get("/dashboard/thumbnails/shot/000001/output").status_code == 404
    assert signed.get("/dashboard/thumbnails/shot/000002/input").status_code == 404  # no object
    assert signed.get("/dashboard/thumbnails/shot/999999/input").status_code == 404
    assert signed.get("/dashboard/thumbnails/shot/000000/etc").status_code == 422


def test_summary_of_100_batches_and_50000_images_reads_batch_records_only(
    signed: httpx.Client, app: FastAPI, redis_client: redis.Redis
) -> None:
    store = store_of(app)
    sizes = [250 + 100 * (n % 6) - 250 * (n % 6 == 5) for n in range(100)]
    sizes[-1] += 50_000 - sum(sizes)
    assert sum(sizes) == 50_000
    for n, size in enumerate(sizes):
        create(store, f"b{n:03d}", size)
    for n in range(0, 100, 10):
        move(store, f"b{n:03d}", "000000", ImageState.DONE)
        move(store, f"b{n:03d}", "000001", ImageState.FAILED, error="x")
    redis_client.config_resetstat()
    started = time.perf_counter()
    answer = signed.get("/dashboard/batches?limit=100")
    elapsed = time.perf_counter() - started
    stats = redis_client.info("commandstats")
    batches = answer.json()["batches"]
    assert len(batches) == 100 and sum(b["total"] for b in batches) == 50_000
    by_id = {b["batch_id"]: b for b in batches}
    assert by_id["b050"]["counts"]["done"] == 1 and by_id["b050"]["counts"]["failed"] == 1
    assert by_id["b051"]["counts"]["queued"] == sizes[51]
    assert [b["batch_id"] for b in batches] == [f"b{n:03d}" for n in reversed(range(100))]
    # The tenant's totals come from two counters, whatever the number of batches and images.
    assert answer.json()["summary"] == {"active": 100, "outstanding": 50_000 - 20}
    # No image record or image list is touched: only the index and the batch hashes.
    assert "cmdstat_lrange" not in stats and "cmdstat_hget" not in stats
    assert stats["cmdstat_hgetall"]["calls"] == 100
    assert elapsed < 2.0, f"summary took {elapsed:.2f} s"


def test_event_stream_sends_a_snapshot_then_coalesced_changes(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, serve: Serve
) -> None:
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.3)
    store = store_of(app)
    create(store, "live", 400)
    with (
        serve(app) as url,
        httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as http,
        http.stream("GET", "/dashboard/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        name, first = next(stream)
        assert name == "snapshot" and [b["batch_id"] for b in first["batches"]] == ["live"]
        name, beat = next(stream)
        assert name == "heartbeat" and beat["batches"][0]["batch_id"] == "live"
        started = time.monotonic()
        for n in range(400):  # 800 transitions, as fast as Redis takes them
            move(store, "live", f"{n:06d}", ImageState.DONE if n % 50 else ImageState.FAILED)
        create(store, "later", 2)  # no transition yet: found through the batch index
        updates: list[dict[str, Any]] = []
        seen: dict[str, dict[str, Any]] = {}
        while not (seen.get("live", {}).get("finished") and "later" in seen):
            name, data = next(stream)
            if name == "batches":
                updates.append(data)
            seen.update({b["batch_id"]: b for b in data["batches"]})
        elapsed = time.monotonic() - started
    assert seen["live"]["counts"] == {
        "queued": 0,
        "running": 0,
        "done": 392,
        "failed": 8,
        "cancelled": 0,
    }
    # One message per half second at most, not one per transition.
    assert len(updates) <= elapsed / live.MIN_INTERVAL_S + 2, (len(updates), elapsed)


class SlowStorage:
    """An in-memory twin of Storage whose reads wait until the test lets them go."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject:
        self.entered.release()
        self.go.wait(timeout=20)
        return StoredObject(self.data, "etag")


def test_previews_render_two_at_a_time_and_a_third_waits_then_gets_busy() -> None:
    storage = SlowStorage(jpeg(640, 480))
    thumbnails = Thumbnails(storage, max_bytes=2**20, max_pixels=10**6, wait_s=0.3)
    with ThreadPoolExecutor(2) as pool:
        first = [pool.submit(thumbnails.get, f"s3://{BUCKET}/{n}.jpg") for n in range(2)]
        assert all(storage.entered.acquire(timeout=10) for _ in first)
        started = time.monotonic()
        with pytest.raises(Busy):
            thumbnails.get(f"s3://{BUCKET}/third.jpg")
        assert 0.25 < time.monotonic() - started < 2
        storage.go.set()
        assert all(len(done.result()) > 100 for done in first)
    assert thumbnails.get(f"s3://{BUCKET}/third.jpg")  # a slot is free again


def test_the_pixel_cap_is_checked_from_the_header_before_decoding() -> None:
    huge = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(huge, "PNG")  # 100 MP, about 100 kB compressed
    started = time.monotonic()
    with pytest.raises(InputTooLarge, match="10000×10000 is above the preview limit"):
        shrink(huge.getvalue(), size=160, max_pixels=50_000_000)
    assert time.monotonic() - started < 0.5  # decoding 100 MP takes seconds


def test_previews_are_turned_upright_from_exif() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90° clockwise to show
    out = io.BytesIO()
    Image.new("RGB", (1200, 800), (200, 30, 30)).save(out, "JPEG", exif=exif.tobytes())
    preview = Image.open(io.BytesIO(shrink(out.getvalue(), size=160, max_pixels=10**7)))
    assert preview.size == (107, 160)


def two_tenants(path: Path) -> tuple[str, str]:
    """A tenants file with shop-a and shop-b; their submit keys."""
    keys = {"shop-a": new_key(), "shop-b": new_key()}
    path.write_text(
        json.dumps(
            {
                "tenants": [
                    {
                        "name": name,
                        "keys": [{"sha256": key_hash(key), "role": "submit"}],
                        "inputs": [f"s3://{name}-photos/"],
                        "outputs": [f"s3://{name}-results/"],
                    }
                    for name, key in keys.items()
                ]
            }
        )
    )
    return keys["shop-a"], keys["shop-b"]


def test_a_tenant_sees_only_its_own_batches_images_and_events(
    app_settings: Settings, redis_client: redis.Redis, tmp_path: Path, serve: Serve
) -> None:
    key_a, _ = two_tenants(tmp_path / "tenants.json")
    settings = app_settings.model_copy(
        update={"api_keys": "", "tenants_file": str(tmp_path / "tenants.json")}
    )
    app = create_app(settings)
    store = store_of(app)
    create(store, "shop-a/spring-01", 3)
    create(store, "shop-b/spring-01", 3)  # the same id, another tenant's
    create(store, "shop-b/secret", 2)
    move(store, "shop-a/spring-01", "000000", ImageState.FAILED, error="a's failure")
    move(store, "shop-b/secret", "000000", ImageState.DONE, output="s3://shop-b-results/0.jpg")
    move(store, "shop-b/spring-01", "000000", ImageState.FAILED, error="b's failure")
    with serve(app) as url, httpx.Client(base_url=url, headers={"X-API-Key": key_a}) as web:
        shown = web.get("/dashboard/batches").json()
        assert [b["batch_id"] for b in shown["batches"]] == ["spring-01"]
        assert shown["batches"][0]["counts"]["failed"] == 1 and shown["tenant"] == "shop-a"
        failures = web.get("/dashboard/batches/spring-01/images?state=failed").json()["images"]
        assert [image["error"] for image in failures] == ["a's failure"]
        reasons = web.get("/dashboard/batches/spring-01/reasons").json()["reasons"]
        assert [group["example"] for group in reasons] == ["a's failure"]
        for path in ("images", "reasons", "manifest"):
            assert web.get(f"/dashboard/batches/secret/{path}").status_code == 404
        assert web.get("/dashboard/thumbnails/secret/000000/output").status_code == 404
        assert web.get("/dashboard/thumbnails/shop-b%2Fsecret/000000/output").status_code in (
            404,
            422,
        )
        assert web.get("/dashboard/batches/x:images/images").status_code == 422
        with web.stream("GET", "/dashboard/events") as response:
            stream = events(response)
            name, first = next(stream)
            assert [b["batch_id"] for b in first["batches"]] == ["spring-01"]
            move(store, "shop-b/secret", "000001", ImageState.DONE, output="s3://shop-b-results/1")
            move(store, "shop-a/spring-01", "000001", ImageState.DONE)
            while True:
                name, data = next(stream)
                ids = [b["batch_id"] for b in data["batches"]]
                assert "secret" not in ids  # b's batch changed first: nothing of it shows
                if name == "batches":
                    break
            assert ids == ["spring-01"] and data["batches"][0]["counts"]["done"] == 1
