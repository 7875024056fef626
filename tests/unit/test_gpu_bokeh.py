"""Tests for workers.gpu.bokeh on the NumPy backend: it renders what the OpenCV renderer renders
(PSNR on real photos, mattes and night lights), and the lens's properties, tested on the OpenCV
renderer in test_bokeh.py, test_light_discs.py and test_lights.py, hold through it too."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from matplotlib import cbook, image
from numpy.typing import NDArray
from skimage import data

import tests.unit.test_bokeh as bokeh_tests
import tests.unit.test_light_discs as disc_tests
from infra.models import ModelStore
from infra.settings import get_settings
from workers import bokeh
from workers.bokeh.highlights import _CLIP_START, GAIN
from workers.bokeh.lights import cell_sizes, light_radii
from workers.colour import DECODE
from workers.gpu import discs, lights
from workers.gpu.backend import Backend, numpy_backend
from workers.gpu.background import blurred_background
from workers.gpu.bokeh import render_bokeh
from workers.matting import Matting, estimate_foreground

BACKEND = numpy_backend()
MIN_PSNR = 45.0
LONG_SIDE = 512
U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


def _render(rgb: U8, alpha: F32, **kwargs: Any) -> U8:
    """The renderer under test, with the OpenCV renderer's signature."""
    out: U8 = render_bokeh(BACKEND, rgb, alpha, **kwargs)
    return out


def _psnr(a: U8, b: U8) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


# --- the same picture as the OpenCV renderer ----------------------------------------------------


@functools.cache
def _photo(name: str) -> U8:
    """A real photo, its long side resized to LONG_SIDE."""
    if name == "grace_hopper":
        rgb = image.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        rgb = getattr(data, name)()
    scale = LONG_SIDE / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(rgb, size, interpolation=interpolation), np.uint8)


@functools.cache
def _matte(name: str, kind: str) -> F32:
    """U²-Net-p's matte of the photo, or a soft ellipse (6 px edge) around its centre."""
    rgb = _photo(name)
    if kind == "u2netp":
        return Matting("u2netp", ModelStore.from_settings(get_settings())).predict(rgb)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - 0.45 * w) / (0.25 * w), (yy - 0.6 * h) / (0.4 * h))
    return np.asarray(np.clip((1.0 - r) / (6.0 / (0.25 * w)) + 0.5, 0.0, 1.0), np.float32)


def _depth(shape: tuple[int, int]) -> F32:
    """A depth map: far at the top, near at the bottom, with a step across the middle."""
    h, w = shape
    depth = np.tile(np.linspace(1.0, 0.2, h, dtype=np.float32)[:, None], (1, w))
    depth[:, w // 2 :] *= np.float32(0.7)
    return depth


def _agrees(rgb: U8, alpha: F32, *, with_foreground: bool = True, **kwargs: Any) -> None:
    """Both renderers, the same inputs: PSNR at least MIN_PSNR."""
    if with_foreground:
        kwargs["foreground"] = estimate_foreground(rgb, alpha)
    expected = bokeh.render_bokeh(rgb, alpha, **kwargs)
    psnr = _psnr(_render(rgb, alpha, **kwargs), expected)
    assert psnr >= MIN_PSNR, f"PSNR {psnr:.1f} dB against the OpenCV renderer"


PHOTOS = ("astronaut", "chelsea", "coffee", "grace_hopper")
MATTES = ("ellipse", pytest.param("u2netp", marks=pytest.mark.services))  # the model weights


@pytest.mark.parametrize("strength", [5, 25, 50, 100])
@pytest.mark.parametrize("kind", MATTES)
@pytest.mark.parametrize("name", PHOTOS)
def test_real_photos_render_as_on_the_cpu(name: str, kind: str, strength: float) -> None:
    _agrees(_photo(name), _matte(name, kind), strength=strength)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strength": 25, "aperture": 6, "rotation_deg": 15.0},
        {"strength": 100, "aperture": 5},
        {"strength": 50, "depth": True},
        {"strength": 100, "depth": True, "aperture": 7, "rotation_deg": 40.0},
        {"strength": 30, "strength_reference": "subject"},
        {"strength": 60, "with_foreground": False},
    ],
)
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_apertures_depth_maps_and_references_render_as_on_the_cpu(
    name: str, kwargs: dict[str, Any]
) -> None:
    rgb = _photo(name)
    if kwargs.get("depth"):
        kwargs = {**kwargs, "depth": _depth(rgb.shape[:2])}
    _agrees(rgb, _matte(name, "ellipse"), **kwargs)


def _night(seed: int) -> U8:
    """The astronaut at a sixth of its light, with 60 clipped lights of 1 to 9 px scattered."""
    rgb = np.ascontiguousarray(_photo("astronaut") // 6)
    rng = np.random.default_rng(seed)
    for _ in range(60):
        x, y = (int(v) for v in rng.integers(0, LONG_SIDE, 2))
        colour = (255, int(rng.integers(150, 256)), int(rng.integers(60, 256)))
        cv2.circle(rgb, (x, y), int(rng.integers(0, 5)), colour, -1)
    return rgb


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strength": 25},
        {"strength": 60, "aperture": 6, "rotation_deg": 10.0},
        {"strength": 100},
        {"strength": 80, "depth": True},
    ],
)
def test_night_lights_render_as_on_the_cpu(kwargs: dict[str, Any]) -> None:
    rgb, alpha = _night(seed=5), _matte("astronaut", "ellipse")
    if kwargs.get("depth"):
        kwargs = {**kwargs, "depth": _depth(rgb.shape[:2])}
    lin = DECODE[rgb]
    peak = rgb.max(axis=2)
    gain = lights.highlight_gain(BACKEND, peak, bool((peak > _CLIP_START).any()))
    found = lights.find_lights(BACKEND, lin, peak, gain, alpha == 0, 20.0)
    assert found is not None and found.sizes.size >= 20  # the lights are drawn apart
    _agrees(rgb, alpha, **kwargs)


@pytest.mark.parametrize("widest", [6.0, 20.0])
def test_the_lights_are_the_cpus_pixels_widths_and_radii(widest: float) -> None:
    rgb, alpha = _night(seed=5), _matte("astronaut", "ellipse")
    rgb[:24] = 255  # a bright band, wider than any disc: an area, not a light
    lin, peak, clear = DECODE[rgb], rgb.max(axis=2), alpha == 0
    gain = bokeh.highlights.highlight_gain(peak)
    expected = bokeh.lights.find_lights(lin, peak, gain, clear, widest)
    found = lights.find_lights(BACKEND, lin, peak, gain, clear, widest)
    assert expected is not None and found is not None
    assert expected.ys.size < np.count_nonzero((peak >= 230) & clear)  # some blobs were dropped
    np.testing.assert_array_equal(found.ys, expected.ys)
    np.testing.assert_array_equal(found.xs, expected.xs)
    np.testing.assert_allclose(found.colour, expected.colour, rtol=1e-6)
    # the same pixels make each light, whichever number each light has
    pairs = np.unique(np.stack([found.light, expected.light]), axis=1)
    assert pairs.shape[1] == found.sizes.size == expected.sizes.size
    theirs = pairs[1][np.argsort(pairs[0])]  # the CPU's number of each light found here
    np.testing.assert_array_equal(found.sizes, expected.sizes[theirs])
    radius = _depth(rgb.shape[:2])[expected.ys, expected.xs] * np.float32(widest)
    plan = discs.light_plan(BACKEND, found, radius)
    radii = np.round(light_radii(expected, radius) * 8) / 8
    np.testing.assert_allclose(plan.radius, radii[theirs], atol=1e-9)
    np.testing.assert_array_equal(plan.cells, cell_sizes(expected.sizes, radii)[theirs])
    np.testing.assert_array_equal(plan.pixels, np.bincount(expected.light)[theirs])


@dataclasses.dataclass(frozen=True)
class _Recording(Backend):
    """The NumPy backend, noting the size of every array copied to the host."""

    reads: list[int] = dataclasses.field(default_factory=list, hash=False, compare=False)

    def asnumpy(self, array: Any) -> NDArray[Any]:
        self.reads.append(int(np.size(array)))
        return super().asnumpy(array)


@pytest.mark.parametrize("lit", [False, True])
def test_only_a_few_numbers_per_light_cross_to_the_host(lit: bool) -> None:
    if lit:
        rgb, alpha = _night(seed=5), _matte("astronaut", "ellipse")
    else:
        rgb, alpha = _photo("chelsea") // 3, _matte("chelsea", "ellipse")
    backend = _Recording(BACKEND.name, BACKEND.xp, BACKEND.ndimage, BACKEND.fft)
    render_bokeh(backend, rgb, alpha, strength=60, foreground=estimate_foreground(rgb, alpha))
    if not lit:  # the render's facts, lit pixels among them, in one copy of a few numbers
        assert len(backend.reads) == 1 and backend.reads[0] <= 8
        return
    lit_here = ((rgb.max(axis=2) >= 230) & (alpha == 0)).astype(np.uint8)
    blobs = cv2.connectedComponents(lit_here, connectivity=8)[0] - 1  # at least the halved ones
    # tables of a few numbers per blob or light, never an image or the lights' pixels
    assert 6 * blobs < np.count_nonzero(lit_here)
    assert len(backend.reads) == 3 and max(backend.reads) <= 6 * blobs


def test_the_output_is_an_array_of_the_backend_and_host_inputs_are_taken() -> None:
    rgb, alpha = _photo("chelsea"), _matte("chelsea", "ellipse")
    view = rgb[::2, ::2]
    out = _render(view, alpha[::2, ::2], strength=40)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == view.shape


def test_the_highlight_boost_is_the_cpus() -> None:
    peak = np.full((400, 600), 20, np.uint8)
    peak[100:103, 100:103] = 255  # a clipped light in the dark
    peak[:, 400:] = 255  # a clipped area: a sky
    peak[200:230, 40:70] = 252
    gain = lights.highlight_gain(BACKEND, peak, bool((peak > _CLIP_START).any()))
    assert gain[101, 101] == pytest.approx(GAIN[255], rel=0.01)
    np.testing.assert_allclose(gain, bokeh.highlights.highlight_gain(peak), rtol=1e-5)


# --- the lens's properties, through this renderer ------------------------------------------------


def _cpu_background(lin: F32, rgb: U8, front: U8, alpha: F32, depth: F32 | None, *args: Any) -> F32:
    """``blurred_background`` with the CPU stage's signature."""
    out: F32 = blurred_background(BACKEND, lin, rgb, front, alpha, depth, *args)
    return out


@pytest.fixture
def through_this_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU tests' modules render with this renderer while the test runs."""
    monkeypatch.setattr(bokeh_tests, "render_bokeh", _render)
    monkeypatch.setattr(disc_tests, "render_bokeh", _render)
    monkeypatch.setattr(disc_tests, "blurred_background", _cpu_background)


def _tests(module: Any) -> list[Callable[..., None]]:
    """The test functions of a module (none of them takes a fixture)."""
    return [getattr(module, name) for name in dir(module) if name.startswith("test_")]


def _cases(test: Callable[..., None]) -> Iterator[Any]:
    """The test's own parametrized cases (one without arguments when it has none)."""
    grids = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            names = mark.args[0]
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
            rows = [v if len(names) > 1 else (v,) for v in mark.args[1]]
            grids.append([dict(zip(names, row, strict=True)) for row in rows])
    for combo in itertools.product(*grids):
        kwargs = {name: value for part in combo for name, value in part.items()}
        yield pytest.param(test, kwargs, id=test.__name__.removeprefix("test_"))


PROPERTIES = [
    *(case for test in _tests(bokeh_tests) for case in _cases(test)),
    *(case for test in _tests(disc_tests) for case in _cases(test)),
]


@pytest.mark.usefixtures("through_this_renderer")
@pytest.mark.parametrize(("check", "kwargs"), PROPERTIES)
def test_the_lens_properties_hold_through_this_renderer(
    check: Callable[..., None], kwargs: dict[str, Any]
) -> None:
    check(**kwargs)
