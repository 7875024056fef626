"""Encode 8-bit sRGB pixel arrays as JPEG, PNG or WebP bytes (RGBA too for PNG and WebP).

The settings are fixed per format so that the same pixels always give the same bytes: reruns of a
job overwrite outputs with identical objects, and tests can compare them. The input's ICC profile
is embedded when given so that colour-managed viewers show the output as they showed the input.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from infra.params import ALPHA_FORMATS, EXTENSIONS, OUTPUT_FORMATS

_ALIASES = {"jpg": "jpeg"}
_PILLOW_NAMES = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# The longest side each encoder can write; beyond it Pillow fails with an opaque encoder error.
_MAX_SIDE = {"jpeg": 65_500, "png": 2**31 - 1, "webp": 16_383}
# From this JPEG quality on, halving chroma resolution costs more visibly than it saves in bytes.
_FULL_CHROMA_QUALITY = 90


def encode(
    rgb: NDArray[np.uint8],
    *,
    fmt: str = "jpeg",
    quality: int = 92,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode HxWx3 sRGB (HxWx4 RGBA for PNG/WebP) as bytes, embedding the ICC profile if given."""
    name = _normalise(fmt)
    _check_pixels(rgb, name)
    _check_quality(quality)
    options = _options(name, quality)
    if icc_profile is not None:
        if not isinstance(icc_profile, bytes | bytearray):
            raise ValueError(f"icc_profile must be bytes, got {type(icc_profile).__name__}")
        if icc_profile:
            options["icc_profile"] = bytes(icc_profile)
    image = Image.fromarray(np.ascontiguousarray(rgb))
    buffer = io.BytesIO()
    image.save(buffer, format=_PILLOW_NAMES[name], **options)
    return buffer.getvalue()


def content_type(fmt: str) -> str:
    """Return the MIME type of an output format, e.g. "image/jpeg"."""
    return _CONTENT_TYPES[_normalise(fmt)]


def extension(fmt: str) -> str:
    """Return the file extension of an output format without the dot: "jpg", "png" or "webp"."""
    return EXTENSIONS[_normalise(fmt)]


def _normalise(fmt: str) -> str:
    if not isinstance(fmt, str):
        raise ValueError(f"output format must be a string, got {type(fmt).__name__}")
    name = fmt.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; expected one of {OUTPUT_FORMATS}")
    return name


def encode_matte(matte: NDArray[np.uint8]) -> bytes:
    """Encode an HxW uint8 matte as a single-channel 8-bit PNG."""
    if not isinstance(matte, np.ndarray) or matte.dtype != np.uint8 or matte.ndim != 2:
        raise ValueError("matte must be an H x W uint8 array")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(matte), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _check_pixels(rgb: NDArray[np.uint8], name: str) -> None:
    channels = 4 if name in ALPHA_FORMATS else 3
    ok = isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
    if not ok or rgb.shape[2] not in (3, channels) or min(rgb.shape[:2]) < 1:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        kinds = "H x W x 3 or H x W x 4" if channels == 4 else "H x W x 3"
        raise ValueError(f"pixels must be a non-empty {kinds} uint8 array for {name}, got {got}")
    height, width = rgb.shape[:2]
    if max(height, width) > _MAX_SIDE[name]:
        raise ValueError(
            f"{width}x{height} is too large for {name.upper()} "
            f"(at most {_MAX_SIDE[name]:,} pixels per side)"
        )


def _check_quality(quality: int) -> None:
    # bool is an int subclass, and quality=True is certainly a mistake.
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer):
        raise ValueError(f"quality must be an integer, got {quality!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")


def _options(name: str, quality: int) -> dict[str, Any]:
    if name == "jpeg":
        return {
            "quality": int(quality),
            "subsampling": "4:4:4" if quality >= _FULL_CHROMA_QUALITY else "4:2:0",
            "optimize": True,
            "progressive": False,
        }
    if name == "png":
        return {"compress_level": 6}
    return {"quality": int(quality), "method": 4, "lossless": False}
