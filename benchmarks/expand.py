"""Big manifests in the background: the API's answer, the time to queue every image, and the
expander's memory as the manifest grows, in one run.

    .venv/bin/python benchmarks/expand.py --lines 100000 --memory 10000 200000

Starts the embedded stack without workers (redis-server, the local S3 server, the API and the
expander) for one tenant whose caps allow the largest manifest, and uploads manifests of the
given sizes to S3 (a manifest that size comes as an S3 object: the API's request bodies stay small).

- ``POST /v1/batches`` of the --lines manifest: seconds to the 202 answer (target 1 s) and until
  the batch stops expanding, every image recorded and its message queued (target 15 s);
- for each --memory size, a fresh child process expands a manifest of that size with the
  expander's code (``producer.expander.Expansion``) and reports its peak resident memory
  (ru_maxrss) above what it held before the expansion: flat means the size does not matter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.settings import Settings
from infra.storage import S3Storage
from infra.tenants import key_hash, new_key
from producer.local.stack import LocalStack

BUCKET = "catalogue"
KEY = new_key()
TENANT = {
    "name": "shop",
    "keys": [{"sha256": key_hash(KEY), "role": "submit"}],
    "inputs": [f"s3://{BUCKET}/"],
    "outputs": [f"s3://{BUCKET}/out/"],
    "limits": {"images_per_batch": 1_000_000, "outstanding_images": 5_000_000},
}


@dataclass
class BenchStack(LocalStack):
    """The local stack with one tenant whose caps allow the benchmark's manifests."""

    tenants_file: str = ""

    def _overrides(self) -> dict[str, str]:
        return {**super()._overrides(), "api_keys": "", "tenants_file": self.tenants_file}


def upload(stack: LocalStack, lines: int) -> str:
    """A manifest of that many keys in S3; its URI."""
    body = "".join(f"photos/{n:07d}.jpg\n" for n in range(lines)).encode()
    S3Storage(stack.settings(Settings())).put(
        BUCKET, f"m-{lines}.txt", body, content_type="text/plain"
    )
    return f"s3://{BUCKET}/m-{lines}.txt"


def through_the_api(stack: LocalStack, manifest: str) -> tuple[float, float, int]:
    """Seconds to the answer, seconds until listed, and the images the batch holds."""
    body = {"manifest": manifest, "output": f"s3://{BUCKET}/out/"}
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": KEY}, timeout=60) as api:
        begin = time.perf_counter()
        reply = api.post("/v1/batches", json=body)
        answered = time.perf_counter() - begin
        assert reply.status_code == 202, reply.text
        while (batch := api.get(reply.headers["location"]).json())["state"] == "expanding":
            time.sleep(0.05)
        listed = time.perf_counter() - begin
    assert batch["state"] == "queued", batch
    return answered, listed, int(batch["total"])


def expand_here(manifest: str) -> dict[str, float]:
    """(child) Expand the manifest in this process; its peak memory above the start, in MiB."""
    from producer.client import Client

    client = Client(Settings())
    tenant = client.tenant("shop")
    client.status_store.redis.ping()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    begin = time.perf_counter()
    found = client.submit_batch(manifest=manifest, output=f"s3://{BUCKET}/out/", tenant=tenant)
    spent = time.perf_counter() - begin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = client.status(found.batch_id, tenant="shop")
    assert not status.expanding and not status.error, status
    return {"before": before / 1024, "peak": peak / 1024, "seconds": spent, "total": status.total}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--memory", type=int, nargs="*", default=[10_000, 200_000])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(expand_here(args.child)))
        return
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tenants.json"
        path.write_text(json.dumps({"tenants": [TENANT]}))
        with BenchStack(workers=0, flower=False, tenants_file=str(path)) as stack:
            run(stack, args)


def run(stack: BenchStack, args: argparse.Namespace) -> None:
    S3Storage(stack.settings(Settings())).ensure_bucket(BUCKET)
    manifests = {lines: upload(stack, lines) for lines in {args.lines, *args.memory}}
    answered, listed, total = through_the_api(stack, manifests[args.lines])
    print(f"API, a {args.lines}-line manifest ({total} images):")
    print(f"  answered 202 in {answered:.3f} s (target 1 s)")
    print(f"  every image recorded and queued after {listed:.1f} s (target 15 s)")
    print("expander memory, a fresh process per manifest (peak RSS, MiB):")
    env = {**stack.environment(), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    for lines in args.memory:
        argv = [sys.executable, __file__, "--child", manifests[lines]]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"the child expanding {lines} lines failed:\n{done.stderr[-3000:]}")
        found = json.loads(done.stdout.strip().splitlines()[-1])
        grew = found["peak"] - found["before"]
        print(
            f"  {lines:>7} lines: {found['before']:.0f} before, peak {found['peak']:.0f} "
            f"(+{grew:.1f}), {found['seconds']:.1f} s, {int(found['total'])} images"
        )


if __name__ == "__main__":
    main()
