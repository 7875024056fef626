"""A batch of thousands of small photos through two workers on the local stack.

Starts the embedded local stack (redis-server, the local S3 server, two Celery workers), uploads
N distinct 320x240 crops of the sample photos (seeded places and sizes, so content varies and no
output is reused), submits them as one batch and waits. Prints the submission time, the
end-to-end time (submit to last image final), images per second, and the resident memory of each
worker process (main and pool child) sampled every second: at start, peak and end.

    .venv/bin/python benchmarks/load.py --images 2000 --model u2netp
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from infra.errors import StatusUnavailable
from infra.jobs import BlurParams
from infra.status import BatchStatus
from infra.storage import S3Storage
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack

BUCKET = "load"
SIZE = (320, 240)


def crops(count: int) -> Iterator[bytes]:
    """count distinct 320x240 JPEGs cut from the sample photos at seeded places."""
    rng = np.random.default_rng(2000)
    sources = [Image.fromarray(sample.load()).convert("RGB") for sample in SAMPLES]
    for number in range(count):
        source = sources[number % len(sources)]
        scale = rng.uniform(0.3, 1.0)
        width, height = int(source.width * scale), int(source.height * scale)
        left = int(rng.integers(0, source.width - width + 1))
        top = int(rng.integers(0, source.height - height + 1))
        crop = source.crop((left, top, left + width, top + height)).resize(SIZE)
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=88)
        yield buffer.getvalue()


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) / 1024


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class MemorySampler:
    """Samples the RSS of every worker process once a second on a thread."""

    workers: dict[str, int]
    samples: dict[str, list[float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        for name, pid in self.workers.items():
            for label, process in [(name, pid)] + [
                (f"{name} pool {child}", child) for child in children(pid)
            ]:
                value = rss_mib(process)
                if value is not None:
                    self.samples.setdefault(label, []).append(value)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def upload(storage: S3Storage, count: int) -> list[str]:
    keys = [f"in/{number:05d}.jpg" for number in range(count)]
    with ThreadPoolExecutor(8) as pool:
        puts = [
            pool.submit(storage.put, BUCKET, key, data, content_type="image/jpeg")
            for key, data in zip(keys, crops(count), strict=True)
        ]
    for put in puts:
        put.result()
    return [f"s3://{BUCKET}/{key}" for key in keys]


def wait(client: Client, batch: str) -> BatchStatus:
    """The finished batch; a moment of Redis unavailability (a loaded machine) is waited out."""
    while True:
        try:
            return client.wait(batch, timeout=24 * 3600, poll=1.0)
        except StatusUnavailable as error:
            print(f"status unavailable, waiting: {error}", file=sys.stderr)
            time.sleep(5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--strength", type=int, default=40)
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    with LocalStack(workers=2, flower=False) as stack:
        stack.wait_for_workers(timeout=180)
        settings = stack.settings()
        storage = S3Storage(settings)
        storage.ensure_bucket(BUCKET)
        uris = upload(storage, args.images)
        client = Client(settings, storage=storage)
        pids = {name: stack.processes[name].pid for name in ("worker1", "worker2")}
        params = BlurParams(strength=args.strength, model=args.model)
        with MemorySampler(pids) as memory:
            begin = time.time()
            batch = client.submit(uris=uris, output=f"s3://{BUCKET}/out/", params=params)
            submitted = time.time() - begin
            status = wait(client, batch)
        assert status.finished_at is not None
        elapsed = status.finished_at - begin
        report(args, status.done, status.failed, submitted, elapsed, memory.samples)


def report(
    args: argparse.Namespace,
    done: int,
    failed: int,
    submitted: float,
    elapsed: float,
    samples: dict[str, list[float]],
) -> None:
    print(f"images: {args.images} of {SIZE[0]}x{SIZE[1]}, model {args.model}, two workers")
    print(f"done {done}, failed {failed}")
    print(f"submission: {submitted:.2f} s ({args.images / submitted:.0f} images/s)")
    print(f"end to end: {elapsed:.1f} s, {done / elapsed:.2f} images/s")
    print("worker RSS, MiB (start / middle / peak / end, sampled every second):")
    for label, values in sorted(samples.items()):
        middle = values[len(values) // 2]
        print(f"  {label:<24} {values[0]:6.0f} {middle:6.0f} {max(values):6.0f} {values[-1]:6.0f}")


if __name__ == "__main__":
    main()
