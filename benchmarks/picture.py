"""Picture figures of the renderer: uncertain mattes, light walls and point lights' discs.

    .venv/bin/python benchmarks/picture.py                  # all three: squares walls lights
    .venv/bin/python benchmarks/picture.py lights           # one or two of them
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/picture.py   # another revision

A dark 600 × 600 square (≈ 35) in a light scene (≈ 205, 1200 × 800) under a constant matte of
0.3, 0.4 and 0.6: the square's mean (whole / interior less 100 px a side) should stay near its
input, not take the scene's colour. Plain walls at 205 ± 18, 235, 245, 250 and 255 behind an
elliptical subject: the background's mean should stay the wall's (only clipped light is boosted).
Clipped point lights, one at a time on black behind a subject, at depths between the layers'
radii (a depth map ramping from 0.3 at the bottom to 1 at the top) or without a depth map: the
disc's rim from 90 % to 10 % (mean and worst of 16 rays), its diameter at 50 % against 2R + 1,
and its energy against the light's boosted energy (6 × its linear value), measured on the linear
background before the composite, where no 8-bit rounding hides a dim disc.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numpy.typing import NDArray

from workers.bokeh import render_bokeh
from workers.bokeh.background import blurred_background
from workers.colour import DECODE
from workers.matting import estimate_foreground

STRENGTHS = (5, 10, 30, 40, 60, 100)
HEIGHT, WIDTH = 800, 1200


def square(alpha_level: float) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """The light scene with the dark square under a constant matte."""
    rng = np.random.default_rng(0)
    rgb = np.clip(205 + rng.normal(0, 6, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    dark = np.clip(35 + rng.normal(0, 3, (600, 600, 3)), 0, 255).astype(np.uint8)
    rgb[100:700, 300:900] = dark
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    alpha[100:700, 300:900] = alpha_level
    return rgb, alpha


def wall(level: int, noise: float) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """A plain wall with an elliptical dark subject in front of it."""
    rng = np.random.default_rng(1)
    noisy = level + rng.normal(0, noise, (HEIGHT, WIDTH, 3))
    rgb = np.clip(noisy, 0, 255).round().astype(np.uint8)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    alpha = (np.hypot((xx - 600) / 200, (yy - 500) / 300) <= 1).astype(np.float32)
    rgb[alpha == 1] = 60
    return rgb, alpha


# (height, width, strength, light's side in px, its depth or None for no depth map)
LIGHTS = [
    (1200, 1600, 60, 5, None),  # the issue's: far behind the subject
    (1200, 1600, 60, 1, 0.65),
    (1200, 1600, 60, 5, 0.42),
    (600, 800, 100, 1, 0.88),
    (600, 800, 30, 3, 0.65),
    (3000, 4000, 5, 1, 0.65),
    (3000, 4000, 100, 3, 0.42),
]


def light_disc(height: int, width: int, strength: float, side: int, depth: float | None) -> str:
    """Render one clipped light on black and describe its disc."""
    rgb = np.zeros((height, width, 3), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    ellipse = np.hypot((xx - 0.7 * width) / (0.12 * width), (yy - height) / (0.35 * height))
    alpha = (ellipse <= 1).astype(np.float32)
    rgb[alpha == 1] = (150, 90, 60)
    ramp = np.tile(np.linspace(1.0, 0.3, height, dtype=np.float32)[:, None], (1, width))
    y = height // 4 if depth is None else round((1.0 - depth) / 0.7 * (height - 1))
    centre = (y, width // 4)
    rgb[y - side // 2 : y + side // 2 + 1, width // 4 - side // 2 : width // 4 + side // 2 + 1] = (
        255
    )
    r_inf = strength / 100 * 0.045 * max(height, width)
    lin = DECODE[rgb]
    background = blurred_background(
        lin, rgb, rgb, alpha, None if depth is None else ramp, r_inf, None, 0.0
    )
    disc = background[..., 1].astype(np.float64)
    radius = r_inf * (1.0 if depth is None else float(ramp[centre]))
    rims, diameters = [], []
    for angle in np.linspace(0.0, 2 * math.pi, 16, endpoint=False):
        distance, value = _ray(disc, centre, float(angle), int(1.5 * radius) + side + 8)
        plateau = float(np.median(value[distance < radius / 3]))
        rims.append(
            _crossing(distance, value, 0.1 * plateau) - _crossing(distance, value, 0.9 * plateau)
        )
        diameters.append(2 * _crossing(distance, value, 0.5 * plateau))
    energy = disc.sum() / (6.0 * side * side)
    return (
        f"{width}x{height} strength {strength:3.0f}, {side}x{side} px at depth "
        f"{'(proxy) 1.00' if depth is None else f'{radius / r_inf:.2f}'}: R {radius:6.2f}, "
        f"rim {np.mean(rims):5.2f} (worst {max(rims):5.2f}) px, diameter "
        f"{np.mean(diameters):7.2f} (2R+1 {2 * radius + 1:7.2f}), energy {energy:.4f}"
    )


def _ray(
    image: NDArray[np.float64], centre: tuple[int, int], angle: float, length: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pixels within 1.5 px of a ray from centre, by distance from it: distances and values."""
    cy, cx = centre
    yy, xx = np.mgrid[cy - length : cy + length + 1, cx - length : cx + length + 1]
    dy, dx = (yy - cy).astype(np.float64), (xx - cx).astype(np.float64)
    near = np.abs(dy * math.cos(angle) - dx * math.sin(angle)) <= 1.5
    ray = near & (dx * math.cos(angle) + dy * math.sin(angle) >= 0)
    distance = np.hypot(dy, dx)[ray]
    order = np.argsort(distance, kind="stable")
    return distance[order], image[yy[ray], xx[ray]][order]


def _crossing(distance: NDArray[np.float64], value: NDArray[np.float64], level: float) -> float:
    """Where the values, falling outwards, first drop below level (interpolated)."""
    i = int(np.nonzero(value < level)[0][0])
    step = (value[i - 1] - level) / (value[i - 1] - value[i])
    return float(distance[i - 1] + step * (distance[i] - distance[i - 1]))


def squares() -> None:
    """The dark square's means under a constant matte."""
    print("strength " + " ".join(f"{s:>13}" for s in STRENGTHS))
    for level in (0.3, 0.4, 0.6):
        rgb, alpha = square(level)
        front = estimate_foreground(rgb, alpha)
        row = []
        for strength in STRENGTHS:
            out = render_bokeh(rgb, alpha, strength=strength, foreground=front)
            whole, inner = out[100:700, 300:900].mean(), out[200:600, 400:800].mean()
            row.append(f"{whole:6.1f}/{inner:6.1f}")
        print(f"square α={level} (input {rgb[100:700, 300:900].mean():.1f}): " + " ".join(row))


def walls() -> None:
    """The walls' background means."""
    print("strength " + " ".join(f"{s:>13}" for s in STRENGTHS))
    for wall_level, noise in ((205, 18.0), (235, 0.0), (245, 0.0), (250, 0.0), (255, 0.0)):
        rgb, alpha = wall(wall_level, noise)
        front = estimate_foreground(rgb, alpha)
        behind = alpha == 0
        row = []
        for strength in STRENGTHS:
            out = render_bokeh(rgb, alpha, strength=strength, foreground=front)
            row.append(f"{out[behind].mean():13.1f}")
        print(f"wall {wall_level}±{noise:g} (input {rgb[behind].mean():.1f}): " + " ".join(row))


def lights() -> None:
    """The point lights' discs."""
    for case in LIGHTS:
        print(light_disc(*case))


if __name__ == "__main__":
    sections = {"squares": squares, "walls": walls, "lights": lights}
    for name in sys.argv[1:] or sections:
        sections[name]()
