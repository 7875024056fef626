"""Render the README's gallery into docs/gallery/: subjects at several strengths, disc vs hexagon.

    .venv/bin/python docs/make_gallery.py

Each row is the original followed by strengths 10, 30, 60 and 100 (the whole pipeline's stages:
matting, then ``workers.render.render``, the worker's own foreground estimation and bokeh),
labelled in the picture; the aperture row blurs a synthetic scene of point lights with a disc
and with six blades; the headshots row renders a loose and a tight crop of one portrait at
strength 60 with the blur sized to the frame and to the subject (``strength_reference``); the
cutouts row puts one product on each ``background``; the uncertain row shows a matte the model
is unsure of, flagged for review, blurred without repainting, and the doubt step deciding it.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import cv2
import numpy as np
from numpy.typing import NDArray

from infra.jobs import BlurParams
from infra.models import ModelStore
from infra.settings import Settings
from producer.local.samples import SAMPLES
from workers.bokeh.render import radius_at_infinity
from workers.matting import Matting
from workers.render import render

OUT = Path(__file__).resolve().parent / "gallery"
STRENGTHS = (10, 30, 60, 100)
SUBJECTS = {"portrait": "grace-hopper", "product": "coffee", "pet": "chelsea"}
TILE_HEIGHT = 300
HEADSHOT_CROPS = {"loose": np.s_[:, :], "tight": np.s_[30:330, 120:380]}
"""Two crops of grace-hopper: the whole 512×600 portrait, and her face at half that size."""
HELMET_CROP = np.s_[192:448, 64:320]
"""The astronaut's helmet opening and chest (skimage's astronaut, 512×512), 256 px square."""


def labelled(rgb: NDArray[np.uint8], text: str) -> NDArray[np.uint8]:
    """The image scaled to the tile height with a caption in its top-left corner."""
    scale = TILE_HEIGHT / rgb.shape[0]
    tile = cv2.resize(rgb, (round(rgb.shape[1] * scale), TILE_HEIGHT), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (12 + 10 * len(text), 26), (0, 0, 0), -1)
    cv2.putText(
        tile, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA
    )
    return tile


def point_lights() -> NDArray[np.uint8]:
    """A synthetic night scene: small bright lights of a few colours on a dark gradient."""
    rng = np.random.default_rng(7)
    scene = np.zeros((400, 600, 3), np.uint8)
    scene[:] = np.linspace(10, 40, 600, dtype=np.uint8)[None, :, None]
    colours = [(255, 240, 200), (255, 180, 90), (180, 220, 255), (255, 255, 255)]
    for _ in range(28):
        x, y = int(rng.integers(20, 580)), int(rng.integers(20, 380))
        colour = colours[int(rng.integers(len(colours)))]
        cv2.circle(scene, (x, y), int(rng.integers(1, 3)), colour, -1, cv2.LINE_AA)
    return scene


def save(path: Path, tiles: list[NDArray[np.uint8]]) -> None:
    """Write the tiles side by side as one JPEG."""
    row = np.concatenate(tiles, axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(path)


def headshots(matting: Matting, portrait: NDArray[np.uint8]) -> None:
    """Loose and tight crops of one portrait, blurred relative to the frame and to the subject."""
    crops = {
        name: np.ascontiguousarray(portrait[window]) for name, window in HEADSHOT_CROPS.items()
    }
    alphas = {name: matting.predict(rgb) for name, rgb in crops.items()}  # once per crop
    tiles = []
    for reference in ("frame", "subject"):
        for crop, rgb in crops.items():
            alpha = alphas[crop]
            out = render(rgb, alpha, BlurParams(60, strength_reference=reference))
            radius = radius_at_infinity(alpha, 60, reference)
            tiles.append(labelled(out, f"{crop}, {reference}, R {radius:.1f}"))
    save(OUT / "headshots.jpg", tiles)


def checkerboard(shape: tuple[int, int], cell: int = 12) -> NDArray[np.uint8]:
    """Light and mid grey squares, the usual backdrop that shows transparency."""
    ys, xs = np.indices(shape)
    grey = np.where((ys // cell + xs // cell) % 2 == 0, 235, 190).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def cutouts(matting: Matting, product: NDArray[np.uint8]) -> None:
    """One product on each background: blurred, white, transparent (over a checkerboard), a
    colour; the cutouts use the estimated foreground colour, so no old background rims them."""
    alpha = matting.predict(product)
    tiles = [labelled(product, "original")]
    for background in ("blur", "white", "transparent", "#1e3a5f"):
        out = render(product, alpha, BlurParams(40, format="png", background=background))
        if out.shape[2] == 4:  # straight alpha, composited here only to be seen
            weight = out[..., 3:].astype(np.float32) / 255.0
            under = checkerboard(out.shape[:2]).astype(np.float32)
            out = np.round(out[..., :3] * weight + under * (1.0 - weight)).astype(np.uint8)
        tiles.append(labelled(out, background))
    save(OUT / "cutouts.jpg", tiles)


def uncertain(store: ModelStore, astronaut: NDArray[np.uint8]) -> None:
    """The helmet crop where U²-Net-p is unsure (α ≈ 0.4-0.5 over the dark helmet).

    At the crop's own size the doubt keeps its alpha (the helmet's colours are in neither
    palette) and the matte is flagged for review; the blur still keeps the helmet's colour, as
    the compositing takes the background behind a partial pixel from the photo itself. Shrunk to
    128 px, the doubt step decides the helmet for the subject: its matte without and with it.
    """
    matting = Matting("u2netp", store)
    crop = np.ascontiguousarray(astronaut[HELMET_CROP])
    alpha, confidence = matting.predict_with_confidence(crop)
    label = f"u2netp, confidence {confidence.value:.2f}"
    tiles = [labelled(crop, "original"), labelled(matte_tile(alpha), label)]
    tiles.append(labelled(render(crop, alpha, BlurParams(60)), "strength 60 (flagged: review)"))
    scale = 128 / max(crop.shape[:2])
    size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    with mock.patch("workers.matting.refine.resolve_doubt", lambda alpha, *_: alpha):
        kept = matting.predict(small)
    decided, score = matting.predict_with_confidence(small)
    tiles.append(labelled(matte_tile(kept), "128 px, doubt kept"))
    tiles.append(labelled(matte_tile(decided), f"doubt decided, conf. {score.value:.2f}"))
    save(OUT / "uncertain.jpg", tiles)


def matte_tile(alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """A matte as a grey RGB picture (white = subject)."""
    grey = np.round(alpha * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def main() -> None:
    """Render every row of the gallery."""
    OUT.mkdir(exist_ok=True)
    store = ModelStore(Settings().model_dir)
    matting = Matting("fusion", store)
    by_name = {sample.name: sample for sample in SAMPLES}
    for subject, name in SUBJECTS.items():
        rgb = np.ascontiguousarray(by_name[name].load())
        alpha = matting.predict(rgb)
        tiles = [labelled(rgb, "original")]
        for strength in STRENGTHS:
            out = render(rgb, alpha, BlurParams(strength=strength))
            tiles.append(labelled(out, f"strength {strength}"))
        save(OUT / f"{subject}.jpg", tiles)
    lights = point_lights()
    no_subject = np.zeros(lights.shape[:2], np.float32)
    tiles = []
    for aperture, label in ((None, "disc"), (6, "6 blades")):
        out = render(lights, no_subject, BlurParams(strength=60, aperture=aperture))
        tiles.append(labelled(out, f"{label}, strength 60"))
    save(OUT / "aperture.jpg", tiles)
    headshots(matting, np.ascontiguousarray(by_name["grace-hopper"].load()))
    cutouts(matting, np.ascontiguousarray(by_name["coffee"].load()))
    uncertain(store, np.ascontiguousarray(by_name["astronaut"].load()))


if __name__ == "__main__":
    main()
