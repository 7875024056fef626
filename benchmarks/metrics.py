"""The reads dashboards and Prometheus make often, at many batch records, beside a scan of them all.

    .venv/bin/python benchmarks/metrics.py --batches 30000

Starts a throwaway redis-server, records that many one-image batches (a third started, a ninth
done), checks that the phase sets count what a scan of every record counts, and prints the median
milliseconds of each read, measured in one run in interleaved rounds:

- the scan of every batch record that /metrics' batches by state used to be (the baseline);
- the whole ``GET /metrics`` page (queue depths, image totals, stage histograms, batches by
  state), rendered by the app's Prometheus registry;
- the batch list, ``GET /v1/batches``' default page of 20;
- the dashboard's snapshot: its 100 batches and the tenant's summary;
- the dashboard's summary alone (the tenant's active batches and images to go: two counters).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import redis
from prometheus_client import generate_latest
from scratch_redis import scratch_redis  # beside this script

from infra.settings import Settings
from infra.status import BATCHES_KEY, StatusStore, batch_key
from infra.tenants import Principal, Role, single_tenant
from producer.dashboard.events import snapshot
from producer.http.metrics import registry

TARGET_MS = 20.0
"""What each read may take at 30,000 batch records."""


def scan(client: redis.Redis) -> dict[str, int]:
    """Batches by state read from every batch record (what /metrics did before phase sets)."""
    fields = ("total", "done", "failed", "cancelled", "started_at", "cancelled_at")
    ids = client.zrange(BATCHES_KEY, 0, -1)
    pipe = client.pipeline()
    for batch_id in ids:
        pipe.hmget(batch_key(str(batch_id)), fields)
    counts = dict.fromkeys(("queued", "running", "finished", "cancelled"), 0)
    for total, done, failed, cancelled, started, flag in pipe.execute():
        if total is None:
            continue
        if flag:
            counts["cancelled"] += 1
        elif int(done) + int(failed) + int(cancelled or 0) == int(total):
            counts["finished"] += 1
        else:
            counts["running" if started else "queued"] += 1
    return counts


def record(store: StatusStore, count: int) -> None:
    """One-image batches: every third started, every ninth done."""
    for n in range(count):
        store.create_batch(f"b{n}", [("000000", "s3://in/x.jpg")], {"output": "s3://out/"})
        if n % 3 == 0:
            store.start(f"b{n}", "000000", "w")
        if n % 9 == 0:
            store.complete(f"b{n}", "000000", timings={"get": 0.01}, output="")


def timed(work: Callable[[], object], times: list[float]) -> None:
    """Run work once, adding its milliseconds to times."""
    begin = time.perf_counter()
    work()
    times.append((time.perf_counter() - begin) * 1000)


def reads(client: redis.Redis, store: StatusStore, url: str) -> dict[str, Callable[[], object]]:
    """Each read by name, the baseline first."""
    settings = Settings(redis_url=url)
    page = registry(store, url)
    principal = Principal(single_tenant(frozenset({"k" * 32})).by_name["default"], Role.SUBMIT)
    return {
        "scan of every batch record (baseline)": lambda: scan(client),
        "GET /metrics, every family": lambda: generate_latest(page),
        "batch list, a page of 20": lambda: store.recent_batches(20, tenant="default"),
        "dashboard snapshot, 100 batches + summary": lambda: snapshot(
            store, settings, 100, principal
        ),
        "dashboard summary (counters)": lambda: store.tenant_summary("default"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with scratch_redis() as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        store = StatusStore(client, ttl=86_400, max_deliveries=3)
        record(store, args.batches)
        assert scan(client) == {k: v for k, v in store.batch_states().items() if k != "expanding"}
        named = reads(client, store, url)
        times: dict[str, list[float]] = {name: [] for name in named}
        for _ in range(args.repeats):
            for name, read in named.items():
                timed(read, times[name])
        report(args.batches, store, times)


def report(batches: int, store: StatusStore, times: dict[str, list[float]]) -> None:
    print(f"{batches} batch records, counts {store.batch_states()}")
    print(f"summary {store.tenant_summary('default')}; median of each read, target {TARGET_MS} ms:")
    baseline = statistics.median(next(iter(times.values())))
    for name, spent in times.items():
        median = statistics.median(spent)
        print(f"  {name:<44} {median:8.2f} ms  ({baseline / median:6.0f}x the baseline's speed)")


if __name__ == "__main__":
    main()
