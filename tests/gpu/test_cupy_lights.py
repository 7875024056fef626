"""On a machine with CUDA and CuPy: the point lights found and planned on CuPy arrays are those
found on NumPy arrays (the same pixels, colours, widths, radii and cells), their discs are
drawn alike, and only small tables cross to the host."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.unit.test_gpu_bokeh import _depth, _matte, _night
from workers.bokeh.highlights import _CLIP_START
from workers.bokeh.lights import Lights
from workers.colour import DECODE
from workers.gpu import discs, lights
from workers.gpu.backend import Backend, cupy_backend, numpy_backend

pytestmark = pytest.mark.gpu


def _found(backend: Backend, widest: float) -> tuple[Lights, discs.LightPlan, NDArray[Any]]:
    """The night scene's lights, their plan and their discs drawn on black, on the backend."""
    rgb, alpha = _night(seed=5), _matte("astronaut", "ellipse")
    peak = backend.asarray(rgb.max(axis=2))
    gain = lights.highlight_gain(backend, peak, bool((rgb.max(axis=2) > _CLIP_START).any()))
    lin, clear = backend.asarray(DECODE[rgb]), backend.asarray(alpha == 0)
    found = lights.find_lights(backend, lin, peak, gain, clear, widest)
    assert found is not None
    depth = backend.asarray(_depth(rgb.shape[:2]))
    plan = discs.light_plan(backend, found, depth[found.ys, found.xs] * np.float32(widest))
    into = backend.xp.zeros(lin.shape, np.float32)
    discs.draw_lights(backend, into, found, depth, widest, 6, 10.0)
    return found, plan, backend.asnumpy(into)


@pytest.mark.parametrize("widest", [6.0, 20.0])
def test_cupy_finds_and_draws_the_lights_numpy_does(widest: float) -> None:
    gpu = cupy_backend()
    found, plan, drawn = _found(gpu, widest)
    expected, expected_plan, expected_drawn = _found(numpy_backend(), widest)
    np.testing.assert_array_equal(gpu.asnumpy(found.ys), expected.ys)
    np.testing.assert_array_equal(gpu.asnumpy(found.xs), expected.xs)
    np.testing.assert_allclose(gpu.asnumpy(found.colour), expected.colour, rtol=1e-5)
    # labels may be numbered otherwise on the device: compare through the pixels' pairing
    pairs = np.unique(np.stack([gpu.asnumpy(found.light), expected.light]), axis=1)
    assert pairs.shape[1] == found.sizes.size == expected.sizes.size
    theirs = pairs[1][np.argsort(pairs[0])]
    np.testing.assert_array_equal(found.sizes, expected.sizes[theirs])
    np.testing.assert_allclose(plan.radius, expected_plan.radius[theirs], atol=1e-9)
    np.testing.assert_array_equal(plan.cells, expected_plan.cells[theirs])
    np.testing.assert_allclose(drawn, expected_drawn, rtol=1e-4, atol=1e-5)
