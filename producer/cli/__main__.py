"""``python -m producer.cli``: the ``blurq`` command (the local stack starts its processes so)."""

from __future__ import annotations

from producer.cli import main

main()
