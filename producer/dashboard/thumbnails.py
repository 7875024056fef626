"""JPEG previews of batch inputs and outputs for the dashboard, cached in memory.

Only the dashboard asks for them (small ones for lists, large ones for the before/after viewer:
one ``Thumbnails`` per size), and only for objects that a known image record names (its input,
or its output once done and the matte saved beside it): this is never a general S3 proxy.
Decoding is what costs memory (a 10,000×10,000 PNG is 300 MB of pixels), so: the pixel count is
read from the header and checked before anything is decoded (``thumbnail_max_pixels``), JPEGs
decode straight at a fraction of their size, and at most ``thumbnail_concurrency`` previews
render at once; a request that waits longer than ``wait_s`` for its turn gets ``Busy`` (the
route answers 503 with Retry-After).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import OrderedDict

from PIL import Image, ImageOps

from infra.errors import InputTooLarge, TransientError, UnsupportedImage
from infra.storage import S3Uri, Storage

SIZE = 160
"""Long side of a thumbnail, in pixels."""
CACHE_ENTRIES = 512
"""Thumbnails kept in memory (a few kB each), least recently used dropped first."""
FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "MPO")
WAIT_S = 2.0
"""Longest wait for a rendering slot before a request is answered 503."""


class Busy(TransientError):
    """Raised when every rendering slot stayed taken for the whole wait."""


class Thumbnails:
    """Renders and caches thumbnails of S3 objects, safe to share between threads."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_bytes: int,
        max_pixels: int,
        concurrency: int = 2,
        wait_s: float = WAIT_S,
        size: int = SIZE,
        entries: int = CACHE_ENTRIES,
    ) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.size = size
        self.entries = entries
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self.wait_s = wait_s

    def get(self, uri: str) -> bytes:
        """The JPEG thumbnail of the object at uri, rendered once and then served from memory."""
        with self._lock:
            if uri in self._cache:
                self._cache.move_to_end(uri)
                return self._cache[uri]
        if not self._slots.acquire(timeout=self.wait_s):
            raise Busy(f"more than {self.wait_s:g} s waiting for a preview slot")
        try:
            where = S3Uri.parse(uri)
            data = self.storage.get(where.bucket, where.key, max_bytes=self.max_bytes).data
            thumbnail = shrink(data, size=self.size, max_pixels=self.max_pixels)
        finally:
            self._slots.release()
        with self._lock:
            self._cache[uri] = thumbnail
            while len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return thumbnail

    def __len__(self) -> int:
        return len(self._cache)


def shrink(data: bytes, *, size: int, max_pixels: int) -> bytes:
    """Encoded image bytes to an upright RGB JPEG at most size pixels on its long side."""
    try:
        # Our pixel limit below is the one that counts; Pillow's own warning is noise here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                # Only the header has been read so far: refuse before a pixel is decoded.
                if image.width * image.height > max_pixels:
                    raise InputTooLarge(
                        f"{image.width}×{image.height} is above the preview limit of "
                        f"{max_pixels} pixels"
                    )
                # JPEG decodes straight at a fraction of its size: far less work for a preview.
                image.draft("RGB", (2 * size, 2 * size))
                # Shrunk in place first, turned upright after: exif_transpose copies the image,
                # and a copy of the full-size pixels is what a preview must not cost.
                image.thumbnail((size, size))
                rgb = ImageOps.exif_transpose(image).convert("RGB")
    except InputTooLarge:
        raise
    except Exception as error:  # Pillow reports damaged or foreign data with many types
        raise UnsupportedImage(f"not a previewable image: {error}") from error
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=80)
    return out.getvalue()
