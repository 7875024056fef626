"""Picture figures of the renderer: uncertain mattes and light walls, at several strengths.

    .venv/bin/python benchmarks/picture.py
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/picture.py   # another revision

A dark 600 × 600 square (≈ 35) in a light scene (≈ 205, 1200 × 800) under a constant matte of
0.3, 0.4 and 0.6: the square's mean (whole / interior less 100 px a side) should stay near its
input, not take the scene's colour. Plain walls at 205 ± 18, 235, 245, 250 and 255 behind an
elliptical subject: the background's mean should stay the wall's (only clipped light is boosted).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from workers.bokeh import render_bokeh
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


def main() -> None:
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
    for wall_level, noise in ((205, 18.0), (235, 0.0), (245, 0.0), (250, 0.0), (255, 0.0)):
        rgb, alpha = wall(wall_level, noise)
        front = estimate_foreground(rgb, alpha)
        behind = alpha == 0
        row = []
        for strength in STRENGTHS:
            out = render_bokeh(rgb, alpha, strength=strength, foreground=front)
            row.append(f"{out[behind].mean():13.1f}")
        print(f"wall {wall_level}±{noise:g} (input {rgb[behind].mean():.1f}): " + " ".join(row))


if __name__ == "__main__":
    main()
