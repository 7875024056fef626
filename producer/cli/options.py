"""Options several ``blurq`` commands share: connection, error handling and rendering."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from infra.errors import BlurqError
from infra.jobs import MATTING_MODELS, OUTPUT_FORMATS, BlurParams, parse_aperture
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


def params(
    strength: int,
    aperture: int | None,
    rotation: float,
    model: str,
    fmt: str,
    quality: int,
    depth_suffix: str | None,
) -> BlurParams:
    return BlurParams(
        rotation=rotation,
        strength=strength,
        aperture=aperture,
        model=model,
        format=fmt,
        quality=quality,
        depth_suffix=depth_suffix,
    )


def _aperture(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    try:
        return parse_aperture(value)
    except BlurqError as error:
        raise click.BadParameter(str(error)) from error


def render_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The rendering options of submit."""
    options = [
        click.option(
            "--strength",
            type=click.IntRange(1, 100),
            default=30,
            show_default=True,
            help="Blur strength 1-100 (radius at infinity = strength% of 4.5% of the long side).",
        ),
        click.option(
            "--aperture",
            default="disc",
            show_default=True,
            callback=_aperture,
            help="Aperture shape: 'disc' or a number of blades (3-12).",
        ),
        click.option(
            "--rotation",
            type=click.FloatRange(-360, 360),
            default=0.0,
            help="Degrees a bladed aperture is turned.",
        ),
        click.option(
            "--model",
            type=click.Choice(MATTING_MODELS),
            default="fusion",
            show_default=True,
            help="Matting model.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(OUTPUT_FORMATS),
            default="jpeg",
            show_default=True,
            help="Output format.",
        ),
        click.option(
            "--quality",
            type=click.IntRange(1, 100),
            default=92,
            show_default=True,
            help="JPEG/WebP quality.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
