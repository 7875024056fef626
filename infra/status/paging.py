"""Pages of a Redis list or sorted set read in chunks and filtered, with where the next page starts.

Shared by the image listing (``StatusReader.image_page``) and the dashboard's batch list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")


def filtered_page(
    read: Callable[[int, int], Sequence[Item | None]],
    keeps: Callable[[Item], bool],
    *,
    start: int,
    limit: int,
    scan: int,
    chunk: int,
) -> tuple[list[Item], int | None]:
    """Up to limit kept items from position start, reading at most scan positions.

    ``read(position, count)`` gives the items at those positions (None for one that is gone;
    fewer than count at the end). Returns the kept items and the position after the last one
    taken, None at the end, or where the scan stopped.
    """
    kept: list[Item] = []
    position, end = start, start + scan
    while position < end:
        count = min(chunk, end - position)
        items = read(position, count)
        for offset, item in enumerate(items):
            if item is not None and keeps(item):
                kept.append(item)
                if len(kept) == limit:
                    return kept, position + offset + 1
        if len(items) < count:
            return kept, None
        position += count
    return kept, position
