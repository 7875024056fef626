"""On a machine with CUDA and CuPy: the bokeh renderer on CuPy arrays renders what its NumPy run
renders, on a 12 MP photo, and leaves the result on the device."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from workers.gpu.backend import cupy_backend, numpy_backend
from workers.gpu.bokeh import render_bokeh
from workers.matting import estimate_foreground

pytestmark = pytest.mark.gpu


def _photo() -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """The astronaut upscaled to 4000 x 3000 with 60 clipped lights, and a soft elliptical matte."""
    w, h = 4000, 3000
    crop = data.astronaut()[64:448]  # type: ignore[no-untyped-call]
    rgb = np.asarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC), np.uint8)
    rng = np.random.default_rng(7)
    for _ in range(60):  # point lights, drawn apart: labelled and drawn on the device too
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h // 2))
        cv2.circle(rgb, (x, y), int(rng.integers(2, 8)), (255, 255, 255), -1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - 0.42 * w) / (0.22 * w), (yy - 0.6 * h) / (0.45 * h))
    return rgb, np.asarray(np.clip((1.0 - r) / (6.0 / (0.22 * w)) + 0.5, 0.0, 1.0), np.float32)


def _psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize(
    "kwargs", [{"strength": 50}, {"strength": 100, "aperture": 6, "depth": True}]
)
def test_cupy_renders_what_numpy_renders_on_12_mp(kwargs: dict[str, Any]) -> None:
    rgb, alpha = _photo()
    if kwargs.get("depth"):
        ramp = np.linspace(1.0, 0.3, alpha.shape[0], dtype=np.float32)[:, None]
        kwargs = {**kwargs, "depth": np.ascontiguousarray(np.broadcast_to(ramp, alpha.shape))}
    foreground = estimate_foreground(rgb, alpha)
    gpu = cupy_backend()
    on_device = {k: gpu.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = render_bokeh(
        gpu, gpu.asarray(rgb), gpu.asarray(alpha), foreground=gpu.asarray(foreground), **on_device
    )
    assert isinstance(out, gpu.xp.ndarray) and out.dtype == np.uint8 and out.shape == rgb.shape
    expected = render_bokeh(numpy_backend(), rgb, alpha, foreground=foreground, **kwargs)
    psnr = _psnr(gpu.asnumpy(out), expected)
    assert psnr >= 45.0, f"PSNR {psnr:.1f} dB between CuPy and NumPy"
