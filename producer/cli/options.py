"""Options several ``blurq`` commands share: connection settings and error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from infra.errors import BlurqError
from infra.settings import get_settings


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Shared --redis-url / --s3-endpoint options, turned into a Settings object."""

    @click.option("--redis-url", help="Redis for status and broker (default: BLURQ_REDIS_URL).")
    @click.option("--s3-endpoint", help="S3 endpoint URL (default: BLURQ_S3_ENDPOINT_URL).")
    @functools.wraps(command)
    def wrapper(redis_url: str | None, s3_endpoint: str | None, **options: Any) -> Any:
        updates: dict[str, Any] = {}
        if redis_url:
            updates["redis_url"] = redis_url
        if s3_endpoint:
            updates["s3_endpoint_url"] = s3_endpoint
        return command(get_settings().model_copy(update=updates), **options)

    return wrapper


def fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our own errors into a one-line message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **options: Any) -> Any:
        try:
            return command(*args, **options)
        except BlurqError as error:
            raise click.ClickException(str(error)) from error

    return wrapper
