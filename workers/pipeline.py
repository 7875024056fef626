"""The pipeline of one image, reading like the diagram:

    confine → S3 get → decode → matting → render (foreground → bokeh) → encode → S3 put

Before any S3 call the job is checked again against its tenant's allowances (the producer
checked it once; a message that reached the queue another way gets no further). I/O happens
only at the two ends; each stage in between is arrays in, arrays out, and the middle
is ``workers.render.render``, the same function ``blurq blur`` calls. The stage the image is in
and the time each stage took (get, decode, matting, foreground, bokeh, encode, put) are written
to its status record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from infra.errors import Forbidden
from infra.jobs import Job, depth_key, output_key
from infra.settings import Settings
from infra.status import StatusStore
from infra.storage import S3Uri, Storage, StoredObject
from infra.tenants import Tenants, split
from workers.bokeh import decode_depth
from workers.decode import DecodedImage, decode
from workers.encode import content_type, encode
from workers.matting import Matting
from workers.render import RENDER_REVISION, render


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
    tenants: Tenants,
) -> Result:
    """Blur one image from S3 into S3; an output that already exists is not rendered again."""
    confine(job, tenants)
    stage = Stages(job, status)
    params = job.params
    with stage("get"):
        source = storage.get(job.input_bucket, job.input_key, max_bytes=settings.max_input_bytes)
        depth_map = _get_depth(job, storage, settings)
        model = matting(params.model)
        key = _output_key(job, model, source, depth_map)
        if storage.head(job.output_bucket, key) is not None:
            return Result(key, stage.timings)
    with stage("decode"):
        image, depth = _decode(source, depth_map, settings)
    with stage("matting"):
        alpha = model.predict(image.rgb)
    blurred = render(image.rgb, alpha, params, depth, stage=stage)  # stages foreground, bokeh
    with stage("encode"):
        data = encode(
            blurred, fmt=params.format, quality=params.quality, icc_profile=image.icc_profile
        )
    with stage("put"):
        storage.put(job.output_bucket, key, data, content_type=content_type(params.format))
    return Result(key, stage.timings)


def confine(job: Job, tenants: Tenants) -> None:
    """Forbidden unless the job's tenant exists, owns its batch and may use every place it names."""
    tenant = tenants.get(job.tenant)
    if tenant is None or split(job.batch_id)[0] != job.tenant:
        raise Forbidden(f"forbidden: no tenant {job.tenant!r} with batch {job.batch_id!r}")
    places = [(S3Uri(job.input_bucket, job.input_key), tenant.may_read)]
    if job.params.depth_suffix is not None:
        depth = depth_key(job.input_key, job.params.depth_suffix)
        places.append((S3Uri(job.input_bucket, depth), tenant.may_read))
    places.append((S3Uri(job.output_bucket, job.output_prefix), tenant.may_write))
    for uri, allowed in places:
        if not allowed(uri):
            raise Forbidden(f"forbidden: {uri} is outside tenant {tenant.name}'s allowed prefixes")


def _get_depth(job: Job, storage: Storage, settings: Settings) -> StoredObject | None:
    """The job's depth map object, when its parameters name one."""
    if job.params.depth_suffix is None:
        return None
    key = depth_key(job.input_key, job.params.depth_suffix)
    return storage.get(job.input_bucket, key, max_bytes=settings.max_input_bytes)


def _output_key(
    job: Job, model: Matting, source: StoredObject, depth_map: StoredObject | None
) -> str:
    """The output's key: from the inputs' ETags, the parameters, the model and the renderer."""
    version = f"{model.version}-render{RENDER_REVISION}"
    etag = source.etag if depth_map is None else f"{source.etag}+{depth_map.etag}"
    return output_key(job, etag=etag, model_version=version)


def _decode(
    source: StoredObject, depth_map: StoredObject | None, settings: Settings
) -> tuple[DecodedImage, NDArray[np.float32] | None]:
    """The photo's pixels, and the depth map's at the photo's size (both under the pixel limit)."""
    limit = settings.max_input_pixels
    image = decode(source.data, max_pixels=limit)
    if depth_map is None:
        return image, None
    height, width = image.rgb.shape[:2]
    return image, decode_depth(depth_map.data, (height, width), max_pixels=limit)
