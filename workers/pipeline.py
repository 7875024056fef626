"""The pipeline of one image, reading like the diagram:

    S3 get → decode → matting → foreground → bokeh → encode → S3 put

I/O happens only at the two ends; each stage in between is arrays in, arrays out. The stage the
image is in and the time each stage took are written to its status record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from infra.jobs import Job, output_key
from infra.settings import Settings
from infra.status import StatusStore
from infra.storage import Storage, StoredObject
from workers.bokeh import render_bokeh
from workers.decode import decode
from workers.depth import decode_depth, depth_key
from workers.encode import content_type, encode
from workers.matting import Matting, estimate_foreground

RENDER_REVISION = 5
"""Bumped whenever foreground, bokeh or encode change their output for the same input, so that
output keys change with it and a resubmission never reuses a result rendered the old way."""


@dataclass(frozen=True)
class Result:
    """Where the output went and how long each stage took (only "get" when it already existed)."""

    output_key: str
    timings: dict[str, float]


@dataclass
class Stages:
    """Times each stage and tells the status store which one is running."""

    job: Job
    status: StatusStore
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.status.set_stage(self.job.batch_id, self.job.image_id, name)
        begin = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - begin


def process(
    job: Job,
    *,
    storage: Storage,
    status: StatusStore,
    matting: Callable[[str], Matting],
    settings: Settings,
) -> Result:
    """Blur one image from S3 into S3; an output that already exists is not rendered again."""
    stage = Stages(job, status)
    with stage("get"):
        source = storage.get(job.input_bucket, job.input_key, max_bytes=settings.max_input_bytes)
        depth_map = _get_depth(job, storage, settings)
        model = matting(job.params.model)
        version = f"{model.version}-render{RENDER_REVISION}"
        etag = source.etag if depth_map is None else f"{source.etag}+{depth_map.etag}"
        key = output_key(job, etag=etag, model_version=version)
        if storage.head(job.output_bucket, key) is not None:
            return Result(key, stage.timings)
    with stage("decode"):
        image = decode(source.data, max_pixels=settings.max_input_pixels)
        shape = image.rgb.shape[:2]
        depth = None if depth_map is None else decode_depth(depth_map.data, (shape[0], shape[1]))
    with stage("matting"):
        alpha = model.predict(image.rgb)
    with stage("foreground"):
        foreground = estimate_foreground(image.rgb, alpha)
    with stage("bokeh"):
        blurred = render_bokeh(
            image.rgb,
            alpha,
            strength=job.params.strength,
            aperture=job.params.aperture,
            rotation_deg=job.params.rotation,
            foreground=foreground,
            depth=depth,
        )
    with stage("encode"):
        params = job.params
        data = encode(
            blurred, fmt=params.format, quality=params.quality, icc_profile=image.icc_profile
        )
    with stage("put"):
        storage.put(job.output_bucket, key, data, content_type=content_type(params.format))
    return Result(key, stage.timings)


def _get_depth(job: Job, storage: Storage, settings: Settings) -> StoredObject | None:
    """The job's depth map object, when its parameters name one."""
    if job.params.depth_suffix is None:
        return None
    key = depth_key(job.input_key, job.params.depth_suffix)
    return storage.get(job.input_bucket, key, max_bytes=settings.max_input_bytes)
