"""Per-stage timings of 12 MP photos through the real stack, read from the status records.

Starts the embedded local stack with one worker, uploads N distinct 12 MP photos (real photos
upscaled to 4000x3000, each flipped/shifted so no output is reused), submits them as one batch
and prints the median, min and max of each stage (get, decode, matting, foreground, bokeh,
encode, put) and of the whole image, plus the end-to-end wall time.

    .venv/bin/python benchmarks/stages.py --images 5 --strength 50
"""

from __future__ import annotations

import argparse
import statistics
import time

from gpu_paths import photo  # beside this script

from infra.jobs import BlurParams
from infra.status import STAGES
from infra.storage import S3Storage
from producer.client import Client
from producer.local.stack import LocalStack

SIZE = (4000, 3000)


def main() -> None:
    """Run one batch of 12 MP photos through a local worker and print each stage's times."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=5, help="12 MP photos in the batch")
    parser.add_argument("--strength", type=int, default=50)
    parser.add_argument("--model", default="fusion")
    args = parser.parse_args()
    with LocalStack(workers=1, flower=False) as stack:
        settings = stack.settings()
        storage = S3Storage(settings)
        storage.ensure_bucket("bench")
        for number in range(args.images):
            storage.put(
                "bench", f"in/{number:03d}.jpg", photo(number, SIZE), content_type="image/jpeg"
            )
        stack.wait_for_workers(timeout=180)
        client = Client(settings, storage=storage)
        begin = time.perf_counter()
        batch = client.submit(
            prefix="s3://bench/in/",
            output="s3://bench/out/",
            queue="bulk",
            params=BlurParams(strength=args.strength, model=args.model),
        )
        final = client.wait(batch, timeout=3600)
        wall = time.perf_counter() - begin
        images = client.images(batch)
    print(f"{final.done} done, {final.failed} failed, {len(images)} images of {SIZE[0]}x{SIZE[1]}")
    print(f"{'stage':10} {'median s':>9} {'min s':>7} {'max s':>7}")
    for stage in [*STAGES, "total"]:
        if stage == "total":
            values = [sum(image.timings.values()) for image in images]
        else:
            values = [image.timings[stage] for image in images if stage in image.timings]
        print(f"{stage:10} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f}")
    print(f"batch wall time {wall:.1f} s ({wall / len(images):.2f} s per image, one worker)")


if __name__ == "__main__":
    main()
