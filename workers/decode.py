"""Decode untrusted image bytes into upright 8-bit sRGB pixels.

Only JPEG (with MPO, its multi-picture variant), PNG, WebP and TIFF are accepted. Pillow is told
to try only those plugins, so its other parsers never see untrusted input. The pixel limit is
checked against the header before any pixel memory is allocated, which is the defence against
decompression bombs; Pillow's own bomb check is a second, coarser net behind ours.

Every colour layout ends up as HxWx3 uint8 RGB: 16-bit and float samples are rescaled, alpha is
composited over white, and CMYK or grayscale pixels are converted through their embedded ICC
profile when it describes them. An RGB profile is returned untouched so that the encoder can
embed it again.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from infra.errors import InputTooLarge, UnsupportedImage

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
_EXPECTED = "expected JPEG, PNG, WebP or TIFF"

# Leading bytes of formats worth naming in an error message; detection proper is Pillow's job.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_ISO_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF"}
_TEXT_STARTS = (
    (b"<!doctype html", "HTML"),
    (b"<html", "HTML"),
    (b"<?xml", "XML"),
    (b"<svg", "SVG"),
)

_HIGH_DEPTH_GRAY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "I;16S")
_KEEPS_RGB_PROFILE = ("RGB", "P", "YCbCr")


@dataclass(frozen=True)
class DecodedImage:
    """Upright pixels of one input image plus what the encoder needs to write it back."""

    rgb: NDArray[np.uint8]  # HxWx3 sRGB-encoded pixels, EXIF orientation applied
    icc_profile: bytes | None  # the input's embedded ICC profile, kept for the output
    source_format: str  # "JPEG", "PNG", "WEBP" or "TIFF"; MPO is reported as "JPEG"


def decode(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode JPEG/PNG/WebP/TIFF bytes to upright 8-bit RGB, checking the pixel limit first."""
    with _opened(data, max_pixels) as image:
        source_format = "JPEG" if image.format == "MPO" else str(image.format)
        _load(image, source_format, max_pixels)
        icc_profile = image.info.get("icc_profile") or None
        _apply_orientation(image)
        rgb, icc_profile = _to_rgb(image, icc_profile)
    return DecodedImage(rgb=rgb, icc_profile=icc_profile, source_format=source_format)


def image_size(data: bytes, *, max_pixels: int) -> tuple[int, int]:
    """(width, height) of JPEG/PNG/WebP/TIFF bytes from the header alone, within the pixel limit.

    Raises what ``decode`` raises for the header: ``InputTooLarge`` over ``max_pixels``,
    ``UnsupportedImage`` for anything unreadable or of another format. No pixel is decoded.
    """
    with _opened(data, max_pixels) as image:
        return image.size


@contextmanager
def _opened(data: bytes, max_pixels: int) -> Iterator[Image.Image]:
    """The image opened lazily (header only), refused before any pixel memory if too large."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if not data:
        raise UnsupportedImage("empty input (0 bytes)")
    webp_size = _webp_size(data)
    if webp_size is not None:
        # Pillow's WebP plugin allocates the whole canvas while opening, before our check below.
        _check_pixels(webp_size, max_pixels)
    # Pillow warns about any image above its own limit while opening, before we can look at the
    # size; our check below is the one that counts, so the warning is noise. catch_warnings is
    # process-wide: a concurrent decode can at worst leave this one filter installed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(data, max_pixels) as image:
            yield image


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise InputTooLarge(_bomb_reason(exc, max_pixels)) from None
    except UnidentifiedImageError:
        raise UnsupportedImage(_unidentified_reason(data)) from None
    except MemoryError:
        raise
    except Exception as exc:  # plugins raise anything from OSError to struct.error on bad headers
        kind = _sniff(data) or "image"
        raise UnsupportedImage(f"corrupt or truncated {kind} header: {_one_line(exc)}") from exc
    try:
        _check_pixels(image.size, max_pixels)
    except BaseException:
        image.close()
        raise
    return image


def _load(image: Image.Image, source_format: str, max_pixels: int) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise InputTooLarge(_bomb_reason(exc, max_pixels)) from None
    except MemoryError:
        raise
    except Exception as exc:  # decoders report damage with many exception types
        raise UnsupportedImage(f"corrupt or truncated {source_format}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    # Decoder messages can be empty or span lines; the reason is stored as one status line.
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise UnsupportedImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputTooLarge(
            f"image is {width}x{height} = {width * height:,} pixels, "
            f"over the limit of {max_pixels:,} pixels"
        )


def _bomb_reason(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    # Pillow refuses on its own above twice its MAX_IMAGE_PIXELS, whatever our limit says.
    limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
    match = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(match[1]):,} pixels" if match else "too many pixels"
    return f"image has {size}, over the limit of {limit:,} pixels"


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (RIFF container), or None for anything else."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _sniff(data: bytes) -> str | None:
    """Name the format of some bytes from their first few, for error messages only."""
    head = data[:32]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], "ISO media (MP4/MOV/HEIF)")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for start, name in _TEXT_STARTS:
        if text.startswith(start):
            return name
    return None


def _unidentified_reason(data: bytes) -> str:
    kind = _sniff(data)
    if kind is None:
        return f"cannot identify image format ({len(data):,} bytes)"
    if kind in SUPPORTED_FORMATS:
        return f"corrupt or truncated {kind}: header cannot be read ({len(data):,} bytes)"
    return f"not a supported image (detected: {kind}); {_EXPECTED}"


def _apply_orientation(image: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except MemoryError:
        raise
    except Exception:  # a malformed EXIF block should not cost us the pixels
        pass


def _to_rgb(
    image: Image.Image, icc_profile: bytes | None
) -> tuple[NDArray[np.uint8], bytes | None]:
    """Bring any Pillow mode to HxWx3 uint8 sRGB, returning the profile that still applies."""
    image = _flatten_alpha(_to_8bit(image))
    image, icc_profile = _to_srgb(image, icc_profile)
    rgb = np.array(image, dtype=np.uint8)  # a writable, C-contiguous copy Pillow no longer owns
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UnsupportedImage(f"unexpected pixel layout {rgb.shape} after conversion")
    return rgb, icc_profile


def _to_8bit(image: Image.Image) -> Image.Image:
    """Reduce 1-bit, 16/32-bit integer and float samples to 8-bit grayscale."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in _HIGH_DEPTH_GRAY:
        # Pillow's own conversion clips to 255; we rescale so that 65535 becomes 255.
        samples = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        return Image.fromarray(((samples + 128) // 257).astype(np.uint8))
    if image.mode == "F":
        samples = np.nan_to_num(np.asarray(image, dtype=np.float32), posinf=0.0, neginf=0.0)
        # Float images are either normalised to 0..1 or already on the 0..255 scale.
        scale = 255.0 if samples.size and samples.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(samples * scale + 0.5, 0, 255).astype(np.uint8))
    return image


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent pixels over white, keeping gray images gray for their ICC profile."""
    keyed = "transparency" in image.info
    if image.mode in ("LA", "La") or (image.mode == "L" and keyed):
        base, image = "L", image.convert("LA")
    elif image.mode in ("RGBA", "RGBa", "PA") or (image.mode in ("RGB", "P") and keyed):
        base, image = "RGB", image.convert("RGBA")
    else:
        return image
    white = Image.new(base, image.size, "white")
    return Image.composite(image.convert(base), white, image.getchannel("A"))


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    profile = _parse_profile(icc_profile)
    space = profile.profile.xcolor_space.strip() if profile is not None else None
    if profile is not None and (image.mode, space) in (("CMYK", "CMYK"), ("L", "GRAY")):
        try:
            converted = ImageCms.profileToProfile(image, profile, _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: fall back to Pillow's plain conversion below
        else:
            if converted is not None:
                return converted, None
    # An RGB profile still describes the pixels after these modes become RGB; any other does not.
    kept = icc_profile if image.mode in _KEEPS_RGB_PROFILE and space == "RGB" else None
    if image.mode == "RGB":
        return image, kept
    try:
        return image.convert("RGB"), kept
    except ValueError as exc:
        raise UnsupportedImage(f"unsupported pixel mode {image.mode}: {exc}") from exc


def _parse_profile(icc_profile: bytes | None) -> ImageCms.ImageCmsProfile | None:
    if not icc_profile:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    except MemoryError:
        raise
    except Exception:  # a broken profile is dropped rather than failing the image
        return None


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    # Built once per process: the profile is never modified, so every transform can share it.
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
