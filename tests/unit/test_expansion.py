"""Prefix and manifest batches expanded on real Redis and the local S3 server: the records and
messages they make, the refusals that fail them whole with nothing sent, and a resumed expansion
(no worker processes here: tests/integration/test_expansion_faults.py runs the expander and the
API)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from infra.errors import PermanentError
from infra.jobs import JobMessage
from infra.publish import Publisher
from infra.settings import Settings
from infra.status import EXPANDING_KEY, StatusStore, batch_key
from infra.storage import S3Storage
from infra.tenants import key_hash
from producer.client import Client
from producer.expander import EXPAND_CHUNK, Expansion

pytestmark = pytest.mark.services

BUCKET = "expand-in"
LIMITS = {"images_per_batch": 3_000, "outstanding_images": 5_000, "submits_per_minute": 100}


@pytest.fixture
def client(
    settings: Settings, storage: S3Storage, status_store: StatusStore, tmp_path: Path
) -> Client:
    """A client for tenant "shop" (reads expand-in, writes expand-out), on the flushed Redis."""
    tenant = {
        "name": "shop",
        "keys": [{"sha256": key_hash("k" * 32), "role": "submit"}],
        "inputs": [f"s3://{BUCKET}/"],
        "outputs": ["s3://expand-out/"],
        "limits": LIMITS,
    }
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [tenant]}))
    scoped = settings.model_copy(update={"tenants_file": str(path), "api_keys": ""})
    storage.ensure_bucket(BUCKET)
    return Client(scoped, storage=storage, status=status_store)


def manifest(storage: S3Storage, name: str, count: int, *extra: str) -> str:
    lines = [f"photos/{n:05d}.jpg" for n in range(count)] + list(extra)
    storage.put(BUCKET, name, "\n".join(lines).encode(), content_type="text/plain")
    return f"s3://{BUCKET}/{name}"


def sent(client: redis.Redis, queue: str = "bulk") -> list[JobMessage]:
    bodies = [json.loads(json.loads(raw)["body"]) for raw in client.lrange(queue, 0, -1)[::-1]]
    return [JobMessage.decode(body[0][0]) for body in bodies]


def submit(client: Client, source: str, *, background: bool = False, **kind: Any) -> str:
    found = client.submit_batch(
        manifest=source,
        output="s3://expand-out/x/",
        tenant=client.tenant("shop"),
        background=background,
        **kind,
    )
    return f"shop/{found.batch_id}"


def test_a_manifest_is_recorded_and_sent_in_order_a_chunk_at_a_time(
    client: Client, storage: S3Storage, redis_client: redis.Redis
) -> None:
    batch_id = submit(client, manifest(storage, "m.txt", 2_500))
    batch = client.status_store.batch(batch_id)
    assert batch is not None and batch.total == 2_500
    assert not batch.expanding and batch.submitted and batch.queued == 2_500
    keys = [message.input_key for message in sent(redis_client)]
    assert keys == [f"photos/{n:05d}.jpg" for n in range(2_500)]
    assert [m.image_id for m in sent(redis_client)][:2] == ["000000", "000001"]
    assert client.status_store.outstanding("shop") == 2_500
    assert redis_client.zcard(EXPANDING_KEY) == 0


def test_in_the_background_the_batch_exists_at_once_and_an_expander_lists_it(
    client: Client, storage: S3Storage, redis_client: redis.Redis
) -> None:
    batch_id = submit(client, manifest(storage, "m.txt", 5), background=True)
    batch = client.status_store.batch(batch_id)
    assert batch is not None and batch.expanding and batch.total == 0 and not batch.finished
    [task] = [json.loads(raw) for raw in redis_client.lrange("expand", 0, -1)]
    assert task["headers"]["task"] == "blurq.expand_batch"
    assert Expansion(client, batch_id).run() == "expanded"
    batch = client.status_store.batch(batch_id)
    assert batch is not None and (batch.total, batch.queue) == (5, "interactive")
    assert len(sent(redis_client, "interactive")) == 5


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (3_001, "more than 3000 images"),
        (2, "outside this tenant's allowed S3 prefixes"),  # the extra line below
        (0, "no inputs"),
    ],
)
def test_a_refused_expansion_fails_the_batch_whole_and_sends_nothing(
    client: Client, storage: S3Storage, redis_client: redis.Redis, lines: int, reason: str
) -> None:
    extra = ("s3://elsewhere/secret.jpg",) if "outside" in reason else ()
    with pytest.raises(PermanentError, match=reason):  # the caller hears it, and it is recorded
        submit(client, manifest(storage, "m.txt", lines, *extra), batch_id="refused")
    batch = client.status_store.batch("shop/refused")
    assert batch is not None and reason in batch.error and batch.finished
    assert (batch.total, batch.expanding, batch.cancel_requested) == (0, False, False)
    assert client.status_store.batch_states()["finished"] == 1
    assert sent(redis_client) == [] and sent(redis_client, "interactive") == []
    assert not list(redis_client.scan_iter("blurq:image:*"))
    assert client.status_store.outstanding("shop") == 0
    assert client.status_store.tenant_summary("shop")["active"] == 0


def test_over_the_outstanding_quota_the_batch_fails_with_the_reason(
    client: Client, storage: S3Storage, redis_client: redis.Redis
) -> None:
    first = submit(client, manifest(storage, "a.txt", 2_900))
    with pytest.raises(PermanentError, match="limit of 5000"):
        submit(client, manifest(storage, "b.txt", 2_900), batch_id="second")
    found = client.status_store.batch("shop/second")
    assert found is not None and "limit of 5000 queued or running" in found.error
    assert client.status_store.outstanding("shop") == 2_900
    assert len(sent(redis_client)) == 2_900 and first != "shop/second"


class _Stopping(Publisher):
    """A real publisher whose process stops at its second push."""

    def __init__(self, broker: redis.Redis) -> None:
        super().__init__(broker)
        self.pushes = 0

    def push(self, queue: str, values: list[str]) -> None:
        self.pushes += 1
        if self.pushes == 2:
            raise KeyboardInterrupt
        super().push(queue, values)


def test_a_stopped_expansion_goes_on_from_where_it_stopped_once_its_lease_lapsed(
    client: Client, storage: S3Storage, redis_client: redis.Redis, settings: Settings
) -> None:
    source = manifest(storage, "m.txt", 2_500)
    batch_id = submit(client, source, background=True)
    client.publisher = _Stopping(redis.Redis.from_url(settings.broker))
    with pytest.raises(KeyboardInterrupt):
        Expansion(client, batch_id).run()
    batch = client.status_store.batch(batch_id)
    assert batch is not None and batch.expanding
    assert (batch.total, batch.sent) == (2 * EXPAND_CHUNK, EXPAND_CHUNK)  # 2nd chunk unsent
    client.publisher = Publisher(redis.Redis.from_url(settings.broker))
    assert Expansion(client, batch_id).run().startswith("not expanding, or another")
    redis_client.hset(batch_key(batch_id), "expanding_at", str(time.time() - 61))
    assert Expansion(client, batch_id).run() == "expanded"
    keys = [message.input_key for message in sent(redis_client)]
    assert keys == [f"photos/{n:05d}.jpg" for n in range(2_500)]  # each once, in order
    batch = client.status_store.batch(batch_id)
    assert batch is not None and (batch.total, batch.sent, batch.expanding) == (2_500, 2_500, False)
    assert client.status_store.outstanding("shop") == 2_500


def test_the_cli_and_the_api_say_a_batch_is_expanding_or_failed_whole(
    client: Client, storage: S3Storage
) -> None:
    from producer.cli.progress import render
    from producer.http.schemas import Batch

    listing = client.status_store.batch(
        submit(client, manifest(storage, "m.txt", 3), background=True)
    )
    with pytest.raises(PermanentError, match="no inputs"):
        submit(client, manifest(storage, "n.txt", 0), batch_id="empty")
    refused = client.status_store.batch("shop/empty")
    assert listing is not None and refused is not None
    assert "expanding: 0 found so far" in render(listing) and not listing.finished
    assert Batch.of(listing).state == "expanding"
    assert "batch failed: the batch has no inputs" in render(refused)
    assert (Batch.of(refused).state, Batch.of(refused).error) == ("failed", refused.error)


def test_a_batch_cancelled_while_it_is_listed_stops_there(
    client: Client, storage: S3Storage, redis_client: redis.Redis, settings: Settings
) -> None:
    batch_id = submit(client, manifest(storage, "m.txt", 2_500), background=True)

    class Cancelling(Publisher):
        def push(self, queue: str, values: list[str]) -> None:
            super().push(queue, values)
            client.cancel(batch_id.split("/")[1], tenant="shop")  # after the first chunk

    client.publisher = Cancelling(redis.Redis.from_url(settings.broker))
    assert Expansion(client, batch_id).run() == "cancelled"
    batch = client.status_store.batch(batch_id)
    assert batch is not None and batch.finished and batch.cancel_requested
    assert (batch.total, batch.cancelled, batch.expanding) == (EXPAND_CHUNK, EXPAND_CHUNK, False)
    assert len(sent(redis_client)) == EXPAND_CHUNK  # nothing listed after the cancel
    assert client.status_store.outstanding("shop") == 0  # the reservation given back
