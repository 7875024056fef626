"""A batch's failures grouped by reason, so that 300 failures read as a handful of causes.

Two failures have the same reason when their texts match once what differs from image to image
is taken out: S3 locations become ``s3://…`` and numbers ``N`` ("s3://shop/a.jpg not found
(NoSuchKey)" and "s3://shop/b.jpg not found (NoSuchKey)" are one reason). Each group keeps its
count, one full text as an example and the first few images. The failed images are found by
reading image records, at most ``SCAN`` per request; ``complete`` says whether that covered the
whole batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from infra.status import ImageState, ImageStatus, StatusStore

SCAN = 50_000
"""Image records read per request (a 50,000-image batch in one go, about half a second)."""
EXAMPLES = 20
"""Images listed per reason."""
_OBJECT = re.compile(r"s3://\S+")
_NUMBER = re.compile(r"(?<![A-Za-z])\d[\d,.]*")  # not the digit of a name: S3, u2netp


def reason_of(error: str) -> str:
    """The error text without what differs from image to image (locations, numbers)."""
    text = _OBJECT.sub("s3://…", error or "no reason recorded")
    return _NUMBER.sub("N", text).strip()


@dataclass
class Group:
    """Failures with one reason: how many, one full text, the first few images."""

    reason: str
    count: int = 0
    example: str = ""
    images: list[ImageStatus] = field(default_factory=list)

    def add(self, image: ImageStatus) -> None:
        """Count one more failure of this reason."""
        self.count += 1
        self.example = self.example or image.error
        if len(self.images) < EXAMPLES:
            self.images.append(image)


def grouped(store: StatusStore, batch_id: str) -> tuple[list[Group], bool]:
    """The failures of a qualified batch id by reason, most frequent first; and whether every
    image record was read."""
    groups: dict[str, Group] = {}
    failed, position = store.image_page(batch_id, state=ImageState.FAILED, limit=SCAN, scan=SCAN)
    for image in failed:
        reason = reason_of(image.error)
        groups.setdefault(reason, Group(reason)).add(image)
    ranked = sorted(groups.values(), key=lambda group: (-group.count, group.reason))
    return ranked, position is None
