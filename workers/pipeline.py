"""The pipeline of one image, reading like the diagram:

    confine → S3 get → decode → matting → render (foreground → bokeh) → encode → S3 put

A matte brought with the photo (``matte_suffix``) stands in for the matting model; with
``save_matte`` the matte is also written beside the output (``infra.jobs.matte_key``).

Before any S3 call the job is checked again against its tenant's allowances (the producer
checked it once; a message that reached the queue another way gets no further). I/O happens
only at the two ends; each stage in between is arrays in, arrays out, and the middle
is ``workers.render.render``, the same function ``blurq blur`` calls. The stage the image is in
and the time each stage took (get, decode, matting, foreground, bokeh, encode, put) are written
to its status record.

On the GPU path (``BLURQ_RENDERER``, chosen by ``workers.gpu.backend.choose``) the decoded photo
is copied to the device once; matting, foreground and bokeh run there (``workers.gpu``), the
matte never leaves it unless it is saved, and the picture comes back to the host for encoding
(timed under "encode"). Stage times wait for the device's queued work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from infra.errors import Forbidden, InputMissing
from infra.jobs import Job, depth_key, matte_key, output_key
from infra.settings import Settings
from infra.status import StatusStore
from infra.storage import S3Uri, Storage, StoredObject
from infra.tenants import Tenants, split
from workers.backgrounds import matte_bytes
from workers.bokeh import decode_depth
from workers.decode import DecodedImage, decode
from workers.encode import content_type, encode, encode_matte
from workers.gpu import render as gpu_render
from workers.gpu.backend import Array, Backend, choose
from workers.gpu.matting import DeviceMatting
from workers.matting import Matting
from workers.matting.confidence import Confidence, score_matte
from workers.own_matte import decode_matte
from workers.render import RENDER_REVISION, render

# The output's S3 metadata keys (x-amz-meta-...) holding its matte's confidence and review flag.
_CONFIDENCE, _REVIEW = "blurq-confidence", "blurq-review"


@dataclass(frozen=True)
class Result:
    """Where the output went, how long each stage took (only "get" when it already existed),
    and the matte's confidence (None for an output rendered before confidences were kept)."""

    output_key: str
    timings: dict[str, float]
    confidence: Confidence | None


@dataclass
class Stages:
    """Times each stage and tells the status store which one is running."""

    job: Job
    status: StatusStore
    backend: Backend | None = None  # whose queued work a stage's time waits for
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.status.set_stage(self.job.batch_id, self.job.image_id, name)
        begin = time.perf_counter()
        yield
        if self.backend is not None:
            self.backend.synchronize()
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
    backend = choose(settings.renderer)
    stage = Stages(job, status, backend)
    params = job.params
    with stage("get"):
        found = _get(job, storage, settings)
        model = None if found.matte is not None else matting(params.model)
        key = _output_key(job, model, found)
        existing = storage.head(job.output_bucket, key)
        if existing is not None:
            return Result(key, stage.timings, read_confidence(existing.metadata))
    with stage("decode"):
        image, depth = _decode(found, settings)
    with stage("matting"):
        alpha, confidence = _alpha(image, found, model, settings, backend)
    # stages foreground and bokeh
    if backend is None:
        blurred = render(image.rgb, alpha, params, depth, stage=stage)
    else:
        blurred = gpu_render.render(backend, image.rgb, alpha, params, depth, stage=stage)
    with stage("encode"):
        data = encode(
            _host(backend, blurred),
            fmt=params.format,
            quality=params.quality,
            icc_profile=image.icc_profile,
        )
    with stage("put"):
        if params.save_matte:  # first: an output that exists means its matte does too
            matte = encode_matte(matte_bytes(_host(backend, alpha)))
            storage.put(job.output_bucket, matte_key(key), matte, content_type="image/png")
        storage.put(
            job.output_bucket,
            key,
            data,
            content_type=content_type(params.format),
            metadata=confidence_metadata(confidence),
        )
    return Result(key, stage.timings, confidence)


def confidence_metadata(confidence: Confidence) -> dict[str, str]:
    """The matte's confidence as an output's S3 metadata, so a re-run that finds the output
    reports it again."""
    return {_CONFIDENCE: f"{confidence.value:.3f}", _REVIEW: "1" if confidence.review else "0"}


def read_confidence(metadata: dict[str, str]) -> Confidence | None:
    """The confidence ``confidence_metadata`` wrote, or None (an output of an older worker)."""
    try:
        value = float(metadata[_CONFIDENCE])
    except (KeyError, ValueError):
        return None
    return Confidence(value, metadata.get(_REVIEW) == "1", {})


def confine(job: Job, tenants: Tenants) -> None:
    """Forbidden unless the job's tenant exists, owns its batch and may use every place it names."""
    tenant = tenants.get(job.tenant)
    if tenant is None or split(job.batch_id)[0] != job.tenant:
        raise Forbidden(f"forbidden: no tenant {job.tenant!r} with batch {job.batch_id!r}")
    places = [(S3Uri(job.input_bucket, job.input_key), tenant.may_read)]
    for suffix in (job.params.depth_suffix, job.params.matte_suffix):
        if suffix is not None:
            beside = depth_key(job.input_key, suffix)
            places.append((S3Uri(job.input_bucket, beside), tenant.may_read))
    places.append((S3Uri(job.output_bucket, job.output_prefix), tenant.may_write))
    for uri, allowed in places:
        if not allowed(uri):
            raise Forbidden(f"forbidden: {uri} is outside tenant {tenant.name}'s allowed prefixes")


@dataclass(frozen=True)
class Found:
    """The objects one job reads: the photo, and the depth map and matte its parameters name."""

    source: StoredObject
    depth: StoredObject | None
    matte: StoredObject | None


def _get(job: Job, storage: Storage, settings: Settings) -> Found:
    """The photo, and the depth map and matte beside it when the parameters name them."""

    def beside(suffix: str | None, what: str) -> StoredObject | None:
        if suffix is None:
            return None
        key = depth_key(job.input_key, suffix)
        try:
            return storage.get(job.input_bucket, key, max_bytes=settings.max_input_bytes)
        except InputMissing as error:
            raise InputMissing(f"{what}: {error}") from None

    source = storage.get(job.input_bucket, job.input_key, max_bytes=settings.max_input_bytes)
    params = job.params
    return Found(
        source, beside(params.depth_suffix, "depth map"), beside(params.matte_suffix, "matte")
    )


def _output_key(job: Job, model: Matting | None, found: Found) -> str:
    """The output's key: from the inputs' ETags, the parameters, the model and the renderer."""
    version = f"{model.version if model else 'own-matte'}-render{RENDER_REVISION}"
    etag = found.source.etag
    if found.depth is not None:
        etag += f"+{found.depth.etag}"
    if found.matte is not None:  # a marker, so that no depth map's ETag can stand for a matte's
        etag += f"+matte:{found.matte.etag}"
    return output_key(job, etag=etag, model_version=version)


def _decode(found: Found, settings: Settings) -> tuple[DecodedImage, NDArray[np.float32] | None]:
    """The photo's pixels, and the depth map's at the photo's size (both under the pixel limit)."""
    limit = settings.max_input_pixels
    image = decode(found.source.data, max_pixels=limit)
    if found.depth is None:
        return image, None
    height, width = image.rgb.shape[:2]
    return image, decode_depth(found.depth.data, (height, width), max_pixels=limit)


def _alpha(
    image: DecodedImage,
    found: Found,
    model: Matting | None,
    settings: Settings,
    backend: Backend | None,
) -> tuple[Array, Confidence]:
    """The subject's matte (on the backend's device, if any), the one brought with the photo or
    the model's, and its confidence."""
    if model is not None:
        if backend is not None:
            return DeviceMatting(model, backend).predict_with_confidence(image.rgb)
        return model.predict_with_confidence(image.rgb)
    assert found.matte is not None  # no model is loaded only when a matte was brought
    height, width = image.rgb.shape[:2]
    limit = settings.max_input_pixels
    alpha = decode_matte(found.matte.data, (height, width), max_pixels=limit)
    confidence = score_matte(alpha)
    return (alpha if backend is None else backend.asarray(alpha)), confidence


def _host(backend: Backend | None, array: Array) -> NDArray[Any]:
    """An array of the backend as a host NumPy array (itself on the OpenCV path)."""
    return array if backend is None else backend.asnumpy(array)
