"""The ``blurq`` command: one group, one small function per subcommand.

The commands live by topic: ``batches`` (submit, status, watch, cancel, retry, images; directly
on Redis or through the HTTP API, ``modes``), ``services`` (flower, api, expander, models) and
``local`` (dev up, demo); ``options`` holds the options they share. Worker-side subcommands
(``worker``, ``blur``, ``matte``, ``eval``) are found through the ``blurq.commands`` entry points
and imported only when run, so submitting never loads the worker code or onnxruntime.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import click

from producer.cli import batches, local, services, tenants

EPILOG = """\b
Examples:
  blurq submit --prefix s3://shop/products/ --out s3://shop/blurred/ --strength 40 --watch
  blurq submit s3://shop/a.jpg s3://shop/b.jpg --out s3://shop/blurred/ --batch-id spring-01
  blurq submit --manifest list.txt --out s3://shop/blurred/ --queue bulk
  blurq status spring-01 --failed
  blurq watch spring-01
  blurq cancel spring-01
  blurq images spring-01 --state failed
  BLURQ_API_KEY=<key> blurq status spring-01 --api https://blurq.example.com
  blurq worker --concurrency 1
  blurq expander
  BLURQ_FLOWER_BASIC_AUTH=ops:<password, 16+ characters> blurq flower --port 5555
  blurq tenants add shop-a --input s3://shop-a-in/ --output s3://shop-a-out/ --file tenants.json
  BLURQ_TENANTS_FILE=tenants.json blurq api --port 8000
  blurq models fetch
  blurq blur portrait.jpg --out blurred/ --strength 60
  blurq matte portrait.jpg --out mattes/
  blurq eval matting eval-set/ --model u2netp
  blurq dev up
  blurq demo
"""


class LazyGroup(click.Group):
    """A group that adds the commands registered under the ``blurq.commands`` entry points."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="blurq.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is None and name in self._plugins():
            loaded = self._plugins()[name].load()
            return loaded if isinstance(loaded, click.Command) else None
        return found


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """blurq: bulk optical background blur on a Celery queue over S3 and Redis."""


for command in (
    batches.submit,
    batches.status,
    batches.watch,
    batches.cancel,
    batches.retry,
    batches.images,
    services.flower,
    services.api,
    services.expander,
    services.models,
    tenants.tenants,
    local.dev,
    local.demo,
):
    main.add_command(command)
