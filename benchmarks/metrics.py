"""/metrics' batches by state: the phase sets the transitions keep, beside a scan of every record.

    .venv/bin/python benchmarks/metrics.py --batches 30000

Starts a throwaway redis-server, records that many one-image batches (a third started, a ninth
done), checks that both ways count the same, and prints the median milliseconds of each and
their ratio, measured in one run, in interleaved rounds.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import time
from collections.abc import Callable

import redis

from infra.status import BATCHES_KEY, StatusStore, batch_key


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
            store.complete(f"b{n}", "000000", timings={}, output="")


def timed(work: Callable[[], object], times: list[float]) -> None:
    """Run work once, adding its milliseconds to times."""
    begin = time.perf_counter()
    work()
    times.append((time.perf_counter() - begin) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        client = redis.Redis(port=port, decode_responses=True)
        store = StatusStore(client, ttl=86_400, max_deliveries=3)
        record(store, args.batches)
        assert scan(client) == store.batch_states(), "the two ways disagree"
        old: list[float] = []
        new: list[float] = []
        for _ in range(args.repeats):
            timed(lambda: scan(client), old)
            timed(store.batch_states, new)
        slow, fast = statistics.median(old), statistics.median(new)
        print(f"{args.batches} batches, counts {store.batch_states()}")
        print(f"scan of every record (baseline): median {slow:.1f} ms")
        print(f"phase sets: median {fast:.2f} ms ({slow / fast:.0f}x faster)")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
