"""The GPU path's foundation on the NumPy backend: the backend's choice, and primitives that give
what OpenCV and ``workers.colour`` give (the OpenCV path is the reference)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from infra.settings import Settings
from workers import colour
from workers.gpu import backend as backends
from workers.gpu import colour as gpu_colour
from workers.gpu.filters import box_mean, convolve
from workers.gpu.resample import area_taps, resize

RNG = np.random.default_rng(17)
NP = backends.numpy_backend()


def test_opencv_and_numpy_are_chosen_by_name() -> None:
    assert backends.choose("opencv") is None
    chosen = backends.choose("numpy")
    assert chosen is not None and chosen.xp is np and not chosen.on_gpu
    assert chosen.memory_bytes() == 0


def test_auto_is_the_opencv_path_without_a_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    backends.choose.cache_clear()
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    try:
        assert backends.choose("auto") is None
        with pytest.raises(RuntimeError, match="needs CuPy"):
            backends.choose("cupy")
    finally:
        backends.choose.cache_clear()


def test_unknown_renderers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="renderer must be one of"):
        backends.choose("cuda")
    monkeypatch.setenv("BLURQ_RENDERER", "cuda")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("shape", "size"),
    [((101, 77), (30, 20)), ((480, 640), (137, 103)), ((64, 64), (16, 16)), ((9, 700), (200, 3))],
)
@pytest.mark.parametrize("channels", [0, 3, 4])
def test_area_resize_equals_opencv(
    shape: tuple[int, int], size: tuple[int, int], channels: int
) -> None:
    image = RNG.random(shape + ((channels,) if channels else ()), dtype=np.float32)
    expected = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(resize(NP, image, size, "area"), expected, atol=1e-6)


@pytest.mark.parametrize(("shape", "size"), [((50, 40), (113, 97)), ((480, 640), (137, 103))])
def test_linear_resize_equals_opencv(shape: tuple[int, int], size: tuple[int, int]) -> None:
    image = RNG.random((*shape, 3), dtype=np.float32)
    expected = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize(NP, image, size, "linear"), expected, atol=1e-6)


def test_byte_images_are_resized_and_rounded_as_opencv_does() -> None:
    image = (RNG.random((100, 80, 3)) * 255).astype(np.uint8)
    got = resize(NP, image, (33, 27))
    assert got.dtype == np.uint8
    expected = cv2.resize(image, (33, 27), interpolation=cv2.INTER_AREA)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert resize(NP, image, (80, 100)) is image


def test_area_taps_refuse_to_enlarge_and_weigh_to_one() -> None:
    with pytest.raises(ValueError, match="shrinks only"):
        area_taps(10, 20)
    _, weight = area_taps(1000, 291)
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("size", [(5, 5), (4, 6), (91, 91)])
@pytest.mark.parametrize(
    ("border", "flag"), [("reflect101", cv2.BORDER_REFLECT_101), ("reflect", cv2.BORDER_REFLECT)]
)
def test_box_means_equal_opencv_blur(size: tuple[int, int], border: str, flag: int) -> None:
    image = RNG.random((90, 70, 3), dtype=np.float32)
    expected = cv2.blur(image, size, borderType=flag)
    np.testing.assert_allclose(box_mean(NP, image, size, border), expected, atol=1e-6)


@pytest.mark.parametrize("side", [5, 17, 40])
def test_convolution_equals_filter2d_with_a_zero_border(side: int) -> None:
    image = RNG.random((90, 70, 4), dtype=np.float32)
    kernel = RNG.random((side, side + 2), dtype=np.float32)
    kernel /= kernel.sum()
    expected = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    got = convolve(NP, image, kernel)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_srgb_encoding_gives_workers_colour_bytes() -> None:
    lin = RNG.random((300, 400, 3), dtype=np.float32) * 1.2 - 0.1
    np.testing.assert_array_equal(gpu_colour.to_srgb(NP, lin), colour.to_srgb(lin))
    every = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(gpu_colour.to_srgb(NP, gpu_colour.to_linear(NP, every)), every)
