"""Submitting a big batch: time and Redis memory per image beside their floors, and the workers'
time beside the previous release's, in one run.

    .venv/bin/python benchmarks/submit.py --uris 10000
    git worktree add -f --detach /tmp/base main
    .venv/bin/python benchmarks/submit.py --uris 10000 --base /tmp/base --images 1000

Each figure is measured in a child process that imports blurq from one tree (this one, or --base),
so the previous release runs the same code paths it ships:

- ``Client.submit(uris=N)`` on a throwaway redis-server (status and broker), median of --repeats;
  beside it the floor: the same N message envelopes pushed with one pipelined LPUSH each;
- Redis memory per queued image (messages and records), from INFO used_memory around the first
  submission, split into the queue's MEMORY USAGE and the rest;
- with --images: the workers' cost for a batch of that many tiny JPEGs (64x48, u2netp) through two
  workers of the embedded stack: their CPU seconds per image (worker and pool processes, from
  /proc: what a busy machine disturbs least) and the time from the batch's first start to its
  end (submission excluded), runs of the two trees interleaved, medians compared; with each run,
  the Redis commands per image (INFO commandstats from the submission to the end, those inside
  Lua steps included), the redis-server's CPU time per image (INFO cpu, everything included: the
  benchmark's polling and the workers' heartbeats too), and the memory of a done image's record.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scratch_redis import scratch_redis  # beside this script

HERE = Path(__file__).resolve().parent.parent


def child(tree: Path, *argv: str) -> dict[str, Any]:
    """Run this script as a child importing blurq from tree; its last stdout line, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, *argv], env=env, cwd=tree, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"child in {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_submit(count: int, repeats: int) -> dict[str, Any]:
    """(child) Client.submit of count URIs, the LPUSH floor, and memory per queued image."""
    import redis

    from infra.settings import Settings
    from producer.client import Client

    with scratch_redis() as url:
        raw = redis.Redis.from_url(url)
        client = Client(Settings(redis_url=url, s3_endpoint_url="http://127.0.0.1:9"))
        uris = [f"s3://shop/catalogue/{n:06d}.jpg" for n in range(count)]
        submits, floors, memory = [], [], {}
        for repeat in range(repeats):
            before = int(raw.info("memory")["used_memory"])
            begin = time.perf_counter()
            client.submit(uris=uris, output="s3://shop/blurred/")
            submits.append(time.perf_counter() - begin)
            if repeat == 0:
                queue = int(raw.memory_usage("bulk") or 0)
                total = int(raw.info("memory")["used_memory"]) - before
                message = len(raw.lindex("bulk", 0) or b"")
                memory = {"total": total / count, "messages": queue / count, "bytes": message}
            envelopes = raw.lrange("bulk", 0, count - 1)  # the newest batch's messages
            floors.append(floor(raw, envelopes))
            raw.delete("bulk")
        return {"submit": statistics.median(submits), "floor": statistics.median(floors)} | {
            "memory": memory
        }


def floor(raw: Any, envelopes: list[bytes]) -> float:
    """Seconds to push the envelopes with one pipelined LPUSH each (and remove them again)."""
    pipe = raw.pipeline(transaction=False)
    begin = time.perf_counter()
    for envelope in envelopes:
        pipe.lpush("floor", envelope)
    pipe.execute()
    spent = time.perf_counter() - begin
    raw.delete("floor")
    return spent


def measure_workers(images: int) -> dict[str, Any]:
    """(child) A batch of tiny images through two workers: seconds from its first start to its
    end, the workers' CPU seconds per image, and what it cost Redis."""
    from infra.jobs import BlurParams
    from infra.storage import S3Storage
    from producer.client import Client
    from producer.local.stack import LocalStack

    with LocalStack(workers=2, flower=False, api=False) as stack:
        stack.wait_for_workers(timeout=180)
        storage = S3Storage(stack.settings())
        uris = upload_tiny(storage, images)
        client = Client(stack.settings(), storage=storage)
        raw = client.status_store.redis
        raw.config_resetstat()
        pids = [stack.processes[name].pid for name in ("worker1", "worker2")]
        before = (worker_cpu(pids), redis_cpu(raw))
        params = BlurParams(strength=30, model="u2netp")
        batch = client.submit(uris=uris, output="s3://tiny/out/", params=params)
        status = client.wait(batch, timeout=3600, poll=0.5)
        assert status.done == images, status
        assert status.started_at is not None and status.finished_at is not None
        stats = raw.info("commandstats")  # commands run inside Lua steps count too
        records = [raw.memory_usage(key) for key in raw.scan_iter("blurq:image:*", count=1000)]
        return {
            "workers": status.finished_at - status.started_at,
            "cpu": (worker_cpu(pids) - before[0]) / images,
            "commands": sum(stat["calls"] for stat in stats.values()) / images,
            "scripts": stats.get("cmdstat_evalsha", {}).get("calls", 0) / images,
            "redis_us": (redis_cpu(raw) - before[1]) * 1e6 / images,
            "record": statistics.mean(records),
        }


def upload_tiny(storage: Any, images: int) -> list[str]:
    """That many distinct 64x48 JPEGs of noise in a bucket "tiny"; their URIs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(14)
    storage.ensure_bucket("tiny")
    uris = []
    for n in range(images):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
        storage.put("tiny", f"in/{n:05d}.jpg", buffer.getvalue(), content_type="image/jpeg")
        uris.append(f"s3://tiny/in/{n:05d}.jpg")
    return uris


def worker_cpu(pids: list[int]) -> float:
    """CPU seconds (user and system) of the worker processes and their pool processes."""
    tick = os.sysconf("SC_CLK_TCK")
    every = list(pids)
    for pid in pids:
        every += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for pid in every:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def redis_cpu(raw: Any) -> float:
    """Seconds of CPU the redis-server process has used (user and system)."""
    found = raw.info("cpu")
    return float(found["used_cpu_user"]) + float(found["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uris", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base", type=Path, help="a worktree of the previous release")
    parser.add_argument("--images", type=int, default=0, help="the workers' batch (0: skip)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved worker runs per tree")
    parser.add_argument("--child", choices=("submit", "workers"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "submit":
        print(json.dumps(measure_submit(args.uris, args.repeats)))
        return
    if args.child == "workers":
        print(json.dumps(measure_workers(args.images)))
        return
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    trees = {"this tree": HERE} | ({"base": args.base.resolve()} if args.base else {})
    for name, tree in trees.items():
        report_submit(name, child(tree, "--child", "submit", *counts(args)), args.uris)
    if args.images and args.base:
        report_workers(trees, args)


def counts(args: argparse.Namespace) -> list[str]:
    return ["--uris", str(args.uris), "--repeats", str(args.repeats)]


def report_submit(name: str, found: dict[str, Any], count: int) -> None:
    submit, lpush, memory = found["submit"], found["floor"], found["memory"]
    print(f"{name}: Client.submit(uris={count}): median {submit:.3f} s")
    print(f"  floor, pipelined LPUSH of the same {count} messages: median {lpush:.3f} s")
    print(f"  ratio to the floor: {submit / lpush:.1f}x")
    records = memory["total"] - memory["messages"]
    print(
        f"  Redis memory per queued image: {memory['total']:.0f} B "
        f"(messages {memory['messages']:.0f} B, records {records:.0f} B; "
        f"one message is {memory['bytes']} bytes of JSON)"
    )


def report_workers(trees: dict[str, Path], args: argparse.Namespace) -> None:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    order = list(trees)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            found = child(trees[name], "--child", "workers", "--images", str(args.images))
            runs[name].append(found)
            print(
                f"  workers, {name}: {found['workers']:.1f} s, {found['cpu'] * 1000:.0f} ms of "
                f"worker CPU per image; Redis per image: {found['commands']:.0f} commands "
                f"({found['scripts']:.0f} Lua steps), {found['redis_us']:.0f} us of CPU; "
                f"a done image's record {found['record']:.0f} B",
                flush=True,
            )
    print(f"{args.images} tiny images through two workers (medians):")
    medians = {}
    for name, found in runs.items():
        wall = statistics.median(run["workers"] for run in found)
        cpu = statistics.median(run["cpu"] for run in found)
        medians[name] = (wall, cpu)
        print(f"  {name}: first start to end {wall:.1f} s, worker CPU {cpu * 1000:.0f} ms/image")
    (wall, cpu), (base_wall, base_cpu) = medians["this tree"], medians["base"]
    change = f"worker CPU per image {cpu / base_cpu - 1:+.1%}, time {wall / base_wall - 1:+.1%}"
    print(f"  this tree vs base: {change}")


if __name__ == "__main__":
    main()
