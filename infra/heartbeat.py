"""A file the worker touches at each of its Celery heartbeats: the liveness probes' evidence.

Celery's consumer sends a ``worker-heartbeat`` event every 2 s from the event loop that takes
messages from the broker. The loop stops sending when the broker connection is lost and starts
again only once it is back, so a recent modification time says that the worker is consuming,
not only that its process exists. A probe compares the file's age with a limit well above the
interval (``infra/k8s``: 60 s); a long image does not stop the heartbeats, because the image runs
in a pool child while the main process keeps its loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

option = click.option(
    "--heartbeat-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Touch this file at every heartbeat (every 2 s while consuming), for liveness probes.",
)
"""``--heartbeat-file``, shared by ``blurq worker`` and ``blurq expander``."""


def install(path: Path) -> None:
    """Touch path at every heartbeat of this process's worker (connect before it starts)."""
    from celery.signals import heartbeat_sent  # here: the CLIs that offer the option load fast

    path.parent.mkdir(parents=True, exist_ok=True)

    def touch(**_: Any) -> None:
        path.touch()

    # weak=False: the closure has no other reference and would be collected at once.
    heartbeat_sent.connect(touch, weak=False)
