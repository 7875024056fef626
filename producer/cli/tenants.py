"""Tenant commands: ``tenants add`` (a new key, shown once, its hash written) and ``tenants list``.

They edit the tenants file (``BLURQ_TENANTS_FILE``, or ``--file``) as JSON, keeping any field
they do not know, and check the whole file (``infra.tenants.parse``) before writing it. The file
holds key hashes only: a key is printed once, when it is made, and never again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from infra.errors import InvalidJob
from infra.settings import get_settings
from infra.tenants import Role, Tenants, key_hash, new_key, parse, read_file

EPILOG = """\b
Examples:
  blurq tenants add shop-a --input s3://shop-a-photos/ --output s3://shop-a-results/ \\
      --file tenants.json
  blurq tenants add shop-a --role view --file tenants.json
  blurq tenants list --file tenants.json
  blurq tenants webhook-secret shop-a       # needs BLURQ_WEBHOOK_SECRET
"""
HASH_SHOWN = 12
"""Hex digits of a key's hash that ``list`` shows: enough to tell keys apart, never the key."""

file_option = click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The tenants file (default: BLURQ_TENANTS_FILE).",
)


@click.group(epilog=EPILOG)
def tenants() -> None:
    """The tenants file: tenants, their keys (hashes only), S3 prefixes and limits."""


@tenants.command("add")
@click.argument("name")
@click.option("--input", "inputs", multiple=True, help="s3://bucket/prefix/ it may read.")
@click.option("--output", "outputs", multiple=True, help="s3://bucket/prefix/ it may write.")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.SUBMIT.value,
    show_default=True,
    help="submit: everything; view: reads only.",
)
@file_option
def add(
    name: str, inputs: tuple[str, ...], outputs: tuple[str, ...], role: str, path: Path | None
) -> None:
    """Add a tenant, or a key (and prefixes) to one; prints the new key once."""
    path = _path(path)
    data = _read(path) if path.exists() else {"tenants": []}
    key = new_key()
    entry = _entry(data, name, bool(inputs and outputs))
    entry.setdefault("keys", []).append({"sha256": key_hash(key), "role": role})
    for field, added in (("inputs", inputs), ("outputs", outputs)):
        entry.setdefault(field, [])
        entry[field] += [prefix for prefix in added if prefix not in entry[field]]
    _check(data)
    _write(path, data)
    click.echo(key)
    click.echo(f"key for {name} ({role}) shown once: {path} keeps only its hash", err=True)


@tenants.command("list")
@file_option
def list_(path: Path | None) -> None:
    """Show every tenant: prefixes, limits and its keys' roles and hash prefixes (never keys)."""
    path = _path(path)
    found = _check(_read(path))
    for tenant in found.by_name.values():
        click.echo(tenant.name)
        click.echo(f"  inputs   {' '.join(tenant.inputs)}")
        click.echo(f"  outputs  {' '.join(tenant.outputs)}")
        click.echo("  limits   " + " ".join(f"{k}={v}" for k, v in vars(tenant.limits).items()))
        for digest, key_role in tenant.keys.items():
            click.echo(f"  key      {key_role.value:<6}  sha256 {digest[:HASH_SHOWN]}...")


@tenants.command("webhook-secret")
@click.argument("name")
def webhook_secret(name: str) -> None:
    """Print the secret that signs NAME's webhooks (derived from BLURQ_WEBHOOK_SECRET)."""
    from infra.tenants import TENANT_NAME
    from infra.webhooks import secret_for

    master = get_settings().webhook_secret
    if not master:
        raise click.ClickException("BLURQ_WEBHOOK_SECRET is not set: there are no webhook secrets")
    if not TENANT_NAME.match(name):
        raise click.BadParameter(f"tenant names match {TENANT_NAME.pattern}", param_hint="NAME")
    click.echo(secret_for(master, name))


def _path(path: Path | None) -> Path:
    found = path or get_settings().tenants_file
    if not found:
        raise click.UsageError("name the tenants file: --file PATH or BLURQ_TENANTS_FILE")
    return Path(found)


def _entry(data: Any, name: str, has_prefixes: bool) -> dict[str, Any]:
    """The file's entry for name; a new one (it needs --input and --output) when there is none."""
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list):
        raise click.ClickException('the tenants file must be {"tenants": [...]}')
    for entry in data["tenants"]:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    if not has_prefixes:
        raise click.UsageError(f"a new tenant needs --input and --output ({name!r} is new)")
    entry = {"name": name, "keys": []}
    data["tenants"].append(entry)
    return entry


def _read(path: Path) -> Any:
    try:
        return read_file(path)
    except InvalidJob as error:
        raise click.ClickException(str(error)) from error


def _check(data: Any) -> Tenants:
    try:
        return parse(data)
    except InvalidJob as error:
        raise click.ClickException(str(error)) from error


def _write(path: Path, data: Any) -> None:
    """Write the file whole or not at all (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
