"""Golden renders: a fixed synthetic scene through ``workers.render.render``, hashed byte for byte.

``GOLDEN`` holds, for each ``RENDER_REVISION``, the SHA-256 of every case's output (the raw
H×W×3 bytes, and a few encodings of one of them). The hashes of revision 5 were made with the
code before the stage-by-stage regrouping, so this test also proves that regrouping changed no
byte. Exact hashes hold because NumPy, OpenCV and Pillow are pinned (the venv and CI install the
same versions); the renderer itself is deterministic.

Exact bytes are only promised where the libraries and the CPU's instruction sets are the ones the
hashes were made on (``ENVIRONMENT``): OpenCV picks SIMD code by CPU, and another release may round
differently. Elsewhere each case is compared with its stored thumbnail (``golden/render-<rev>.npz``:
means of small tiles) within ``TILE_TOLERANCE`` levels, which a platform's rounding stays far
inside and a change to the picture does not.

When this test fails:

- The picture changed and you meant it to: bump ``RENDER_REVISION`` in ``workers/render.py``
  (output keys change with it, so no resubmission reuses an old render), then store this
  revision's hashes: run ``python tests/unit/test_golden_render.py`` and add what it prints to
  ``GOLDEN`` (keep the older revisions' entries as history).
- The picture changed and you did not mean it to: your change is not a refactor; find why.
- You bumped ``RENDER_REVISION`` and the picture did not change: undo the bump.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
import PIL
import pytest
from numpy.typing import NDArray

from infra.jobs import BlurParams
from workers.decode import decode
from workers.encode import encode
from workers.render import RENDER_REVISION, render

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]

# name: (height, width, strength, aperture, rotation, with the depth map); 1200 x 900 is over
# the 1 MP layer cap, so at strength 5 the layers' grids are coarse while the point lights are
# drawn at full resolution (workers.bokeh.discs); at 60 their discs are wide, on many canvases
CASES: dict[str, tuple[int, int, int, int | None, float, bool]] = {
    "disc-5": (120, 160, 5, None, 0.0, False),
    "disc-30": (120, 160, 30, None, 0.0, False),
    "disc-100": (120, 160, 100, None, 0.0, False),
    "hexagon-30": (120, 160, 30, 6, 15.0, False),
    "depth-30": (120, 160, 30, None, 0.0, True),
    "depth-pentagon-100": (120, 160, 100, 5, -40.0, True),
    "lights-apart-5": (900, 1200, 5, None, 0.0, False),
    "lights-apart-depth-5": (900, 1200, 5, 7, 10.0, True),
    "lights-hexagon-60": (900, 1200, 60, 6, 30.0, True),
}
ENCODINGS = {"disc-30.jpeg92": ("jpeg", 92), "disc-30.jpeg75": ("jpeg", 75)}
ENCODINGS |= {"disc-30.png92": ("png", 92), "disc-30.webp85": ("webp", 85)}

ENVIRONMENT = {
    5: "numpy 2.4.6, opencv 5.0.0, pillow 13.0.0, cpu SSE SSE2 SSE3 *SSE4.1 *SSE4.2 *AVX *FP16 "
    "*AVX2 *AVX512-SKX",
    6: "numpy 2.4.6, opencv 5.0.0, pillow 13.0.0, cpu SSE SSE2 SSE3 *SSE4.1 *SSE4.2 *AVX *FP16 "
    "*AVX2 *AVX512-SKX",
    7: "numpy 2.4.6, opencv 5.0.0, pillow 13.0.0, cpu SSE SSE2 SSE3 *SSE4.1 *SSE4.2 *AVX *FP16 "
    "*AVX2 *AVX512-SKX",
}
"""Where each revision's hashes were made: exact bytes are checked only in the same one."""
THUMBNAILS = Path(__file__).with_name("golden")
TILE = 8
"""Thumbnails are the means of TILE×TILE tiles (of 5·TILE for the cases over 1 MP)."""
TILE_TOLERANCE = 1.0
"""Levels (of 255) a tile's mean may move on another platform; JPEG encodings get twice that."""

GOLDEN: dict[int, dict[str, str]] = {
    5: {
        "disc-5": "6e90aab2b88d13eb24de5b8da8b5be4ece134273bf4940dc806dc62677c68748",
        "disc-30": "4dcbc9bf63c7118a8cd1854e44a3735ddaead24f77846b098b5bd56b31578e7d",
        "disc-100": "257023828c6ca7d2a10c4e6b1cb183ddfbe681a712dfacf94038291642af924d",
        "hexagon-30": "88596b37f4d50d1aecd0378ad8892324a1ca9397b9813b5135bc31f6b6caec5d",
        "depth-30": "88167f016323b3419f08a5f1e8ae63cc8eb20f80c0445d37925e889c3f7954c4",
        "depth-pentagon-100": "4499a783ba52a51ef3dd468d798a3da0a1e2655609de3897eda1e947a5f32025",
        "lights-apart-5": "7ceee34c1afd6faa72d3e7952882dc1605f1f2d5e6e45ff80aee992717cc28d6",
        "lights-apart-depth-5": "e29089f7df018882c665cb75f33b4dad2baf4e556e5e548bcc325710712afdce",
        "disc-30.jpeg92": "5297448fa2515b3cf3c1d4d7e638cdc6f807f5546a90b0e0b668d056040647ed",
        "disc-30.jpeg75": "10943a28839df699af2ca6ee9eaf849d3aef55b65af5c5e3544e9c1cb96ec0d6",
        "disc-30.png92": "4f749f7c5a0e416050a3779232541ebaa575a0ba304494bbd74a6963fd3dc9a8",
        "disc-30.webp85": "4544a2180f086b73e4e09f418da2b074166e92d68fc8ae485d9e16663dd2ab09",
    },
    6: {
        "disc-5": "d48163352645b99e9e5cd54897cd2e0354500c63b9f7756896c4145fa7e52424",
        "disc-30": "72c7fa4dab3f0db653f8e086a34b325e0f2daa8820e8a1eb5bc0b696c8ce2656",
        "disc-100": "fc758cc4009588b9f7c2336ea227fe783f381613eafcbbabfc1a050f10aa6fc9",
        "hexagon-30": "248ebd4e25fd7412c12b59cfe95bef4ddf6e037c55a6dbeadd3b8987d98da14e",
        "depth-30": "558f0df708fa15b49f1efa14fbbf71a7a0d11870bd4bc8eebd469a31f5f8cec8",
        "depth-pentagon-100": "f1067a31934494228147b5c198435a45a9b570e785c5c204f6ceddd80df1ad65",
        "lights-apart-5": "1c0e37040b27f3cf1ad08f166a141e98b43b0d3e7f2d9f2bdbfe9d79d7b46153",
        "lights-apart-depth-5": "4b78c93c7dd2aef3d77c4cda10c5e30b122f760b8f56f823ee80b08a280dd5b0",
        "disc-30.jpeg92": "7e3341995be5e359bf8d59fd44f17de6dfa25f7be3536c9740063722896393ad",
        "disc-30.jpeg75": "f9aac4592e4bce66a8721db91e31b81100d941a74342a265adc1d270725e8e12",
        "disc-30.png92": "cf4e2db8b25847ab9d212b8f33fc11beaaecce7c2b99ef9eff59471281b9abd8",
        "disc-30.webp85": "92e9559a6fa30ae84446224414b4ba4b0693bfaf58aeaa9f8bd92effbae5950f",
    },
    7: {
        "disc-5": "d48163352645b99e9e5cd54897cd2e0354500c63b9f7756896c4145fa7e52424",
        "disc-30": "72c7fa4dab3f0db653f8e086a34b325e0f2daa8820e8a1eb5bc0b696c8ce2656",
        "disc-100": "959624ee300651d7313b27c7e42fe0937258f2811be6c5ec582b9ad20c00262d",
        "hexagon-30": "248ebd4e25fd7412c12b59cfe95bef4ddf6e037c55a6dbeadd3b8987d98da14e",
        "depth-30": "558f0df708fa15b49f1efa14fbbf71a7a0d11870bd4bc8eebd469a31f5f8cec8",
        "depth-pentagon-100": "09bb444c45c680aa96bde95e6631585dad3cf5d95ee496ea70ec67be6699551a",
        "lights-apart-5": "61a1bf022a348caabde32424485b598ae2713b77269c061da3aa24130d77c8ba",
        "lights-apart-depth-5": "8d148903817aa4d58dcbc77b0d6e53fcc9a189f02e57be566b96aca7a7283c1c",
        "lights-hexagon-60": "2ae9fc80ea36669277a46b3f601b65e3b937f50fa54a9e7650c659ebc25481f8",
        "disc-30.jpeg92": "7e3341995be5e359bf8d59fd44f17de6dfa25f7be3536c9740063722896393ad",
        "disc-30.jpeg75": "f9aac4592e4bce66a8721db91e31b81100d941a74342a265adc1d270725e8e12",
        "disc-30.png92": "cf4e2db8b25847ab9d212b8f33fc11beaaecce7c2b99ef9eff59471281b9abd8",
        "disc-30.webp85": "92e9559a6fa30ae84446224414b4ba4b0693bfaf58aeaa9f8bd92effbae5950f",
    },
}


def scene(height: int, width: int) -> tuple[U8, F32, F32]:
    """A gradient with stripes and point lights, a soft elliptical subject, and a depth ramp."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = np.clip(40 + 150 * xx / width, 0, 255)
    rgb[..., 1] = np.clip(60 + 120 * yy / height, 0, 255)
    rgb[..., 2] = 90
    rgb[::8] //= 2  # stripes: texture the blur must smooth away
    for k in range(12):  # clipped point lights of a few colours, in the upper half
        x, y = (37 * k + 11) % width, (23 * k + 7) % max(1, height // 2)
        cv2.circle(rgb, (x, y), 1 + k % 3, (255, 255 - 20 * (k % 4), 200 + 5 * (k % 5)), -1)
    rgb[height // 2 :, : width // 6] = 250  # a large bright area: stays in the layers
    subject = np.hypot((xx - 0.55 * width) / (0.2 * width), (yy - 0.6 * height) / (0.35 * height))
    alpha = np.clip((1.0 - subject) * 12.0 + 0.5, 0.0, 1.0).astype(np.float32)
    rgb[alpha > 0.5] = (200, 120, 70)  # the subject: one colour, so bleeding either way shows
    depth = np.clip(0.3 + 0.7 * xx / width - 0.2 * yy / height, 0.0, 1.0).astype(np.float32)
    return rgb, alpha, depth


def rendered(name: str) -> U8:
    """The render of one case."""
    height, width, strength, aperture, rotation, with_depth = CASES[name]
    rgb, alpha, depth = scene(height, width)
    params = BlurParams(strength=strength, aperture=aperture, rotation=rotation)
    return render(rgb, alpha, params, depth if with_depth else None)


def digest(name: str) -> str:
    """SHA-256 of a case's output: the raw pixels, or an encoding named ``case.format``."""
    if name in ENCODINGS:
        fmt, quality = ENCODINGS[name]
        data = encode(rendered(name.split(".")[0]), fmt=fmt, quality=quality)
    else:
        data = rendered(name).tobytes()
    return hashlib.sha256(data).hexdigest()


def _what_to_do(name: str, got: str) -> str:
    return (
        f"render output of {name!r} is not the golden one of RENDER_REVISION {RENDER_REVISION} "
        f"(got {got}). If the picture was meant to change, bump RENDER_REVISION in "
        "workers/render.py and add the new hashes (python tests/unit/test_golden_render.py "
        "prints them) to GOLDEN; if not, this change altered the render."
    )


def test_the_current_revision_has_golden_hashes() -> None:
    assert RENDER_REVISION in GOLDEN, (
        f"RENDER_REVISION is {RENDER_REVISION} but GOLDEN has hashes only for {sorted(GOLDEN)}: "
        "run `python tests/unit/test_golden_render.py` and add what it prints to GOLDEN"
    )
    hashes = GOLDEN[RENDER_REVISION]
    assert set(hashes) == set(CASES) | set(ENCODINGS)
    assert len(set(hashes.values())) == len(hashes), "two cases render alike: the scene is weak"


def test_a_new_revision_changes_the_picture() -> None:
    """A bump without a change would only throw away every stored output."""
    revisions = sorted(GOLDEN)
    for older, newer in itertools.pairwise(revisions):
        assert GOLDEN[older] != GOLDEN[newer], f"revision {newer} renders exactly like {older}"


def environment() -> str:
    """The libraries and CPU instruction sets that decide the exact bytes of a render."""
    return (
        f"numpy {np.__version__}, opencv {cv2.__version__}, pillow {PIL.__version__}, "
        f"cpu {cv2.getCPUFeaturesLine()}"
    )


def output(name: str) -> U8:
    """A case's picture: the render, or its encoding decoded again."""
    if name not in ENCODINGS:
        return rendered(name)
    fmt, quality = ENCODINGS[name]
    data = encode(rendered(name.split(".")[0]), fmt=fmt, quality=quality)
    return decode(data, max_pixels=1_000_000).rgb


def thumbnail(rgb: U8) -> F32:
    """Means of tiles, the picture's fingerprint that survives a platform's rounding."""
    tile = TILE if rgb.shape[0] * rgb.shape[1] < 1_000_000 else 5 * TILE
    size = (rgb.shape[1] // tile, rgb.shape[0] // tile)
    cropped = rgb[: size[1] * tile, : size[0] * tile].astype(np.float32)
    return np.asarray(cv2.resize(cropped, size, interpolation=cv2.INTER_AREA), np.float32)


def thumbnails_path(revision: int) -> Path:
    """The file of one revision's thumbnails."""
    return THUMBNAILS / f"render-{revision}.npz"


@pytest.mark.parametrize("name", [*CASES, *ENCODINGS])
def test_render_matches_the_golden_one(name: str) -> None:
    if environment() == ENVIRONMENT.get(RENDER_REVISION):
        got = digest(name)
        assert GOLDEN.get(RENDER_REVISION, {}).get(name) == got, _what_to_do(name, got)
        return
    with np.load(thumbnails_path(RENDER_REVISION)) as stored:
        expected = stored[name]
    moved = float(np.abs(thumbnail(output(name)) - expected).max())
    allowed = TILE_TOLERANCE * (2 if ".jpeg" in name else 1)
    assert moved <= allowed, _what_to_do(name, f"a tile moved by {moved:.2f} levels")


def test_stored_thumbnails_are_those_of_the_golden_renders() -> None:
    """The fallback's reference is the picture the hashes name (checked where they hold)."""
    with np.load(thumbnails_path(RENDER_REVISION)) as stored:
        assert set(stored.files) == set(CASES) | set(ENCODINGS)
        if environment() == ENVIRONMENT.get(RENDER_REVISION):
            for name in stored.files:
                np.testing.assert_allclose(stored[name], thumbnail(output(name)), atol=0.01)


def test_render_is_the_bokeh_of_the_estimated_foreground() -> None:
    """render is foreground estimation then bokeh, nothing more, with the params mapped."""
    from workers.bokeh import render_bokeh
    from workers.matting import estimate_foreground

    rgb, alpha, depth = scene(60, 80)
    params = BlurParams(strength=70, aperture=9, rotation=-5.0, format="png", quality=10)
    front = estimate_foreground(rgb, alpha)
    direct = render_bokeh(
        rgb, alpha, strength=70, aperture=9, rotation_deg=-5.0, foreground=front, depth=depth
    )
    np.testing.assert_array_equal(render(rgb, alpha, params, depth), direct)


def test_render_names_its_stages_to_the_timer() -> None:
    """The pipeline times foreground and bokeh through render's stage hook, in that order."""
    names: list[str] = []

    def stage(name: str) -> contextlib.AbstractContextManager[object]:
        names.append(name)
        return contextlib.nullcontext()

    rgb, alpha, _ = scene(30, 40)
    render(rgb, alpha, BlurParams(), stage=stage)
    assert names == ["foreground", "bokeh"]


if __name__ == "__main__":  # write this revision's thumbnails, print what to paste into the file
    THUMBNAILS.mkdir(exist_ok=True)
    names = [*CASES, *ENCODINGS]
    tiles = {name: thumbnail(output(name)) for name in names}
    np.savez_compressed(thumbnails_path(RENDER_REVISION), **tiles)
    print(f"wrote {thumbnails_path(RENDER_REVISION)}; ENVIRONMENT[{RENDER_REVISION}]:")
    print(f'    {RENDER_REVISION}: "{environment()}",')
    print(f"GOLDEN[{RENDER_REVISION}]:\n    {RENDER_REVISION}: {{")
    for case in names:
        print(f'        "{case}": "{digest(case)}",')
    print("    },")
