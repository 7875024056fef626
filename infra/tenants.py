"""Tenants: who may call the service, with which role, on which S3 prefixes, within which limits.

A tenant is a named set of API keys, each stored as the hex SHA-256 of the key (never the key),
with a role: ``submit`` (everything) or ``view`` (reads only: API GETs, the dashboard). Its batches
may read only under its ``inputs`` prefixes and write only under its ``outputs`` prefixes. The
tenants file (``BLURQ_TENANTS_FILE``) is the one source::

    {"tenants": [
      {"name": "shop-a",
       "keys": [{"sha256": "<hex SHA-256 of the API key>", "role": "submit"},
                {"sha256": "<hex>", "role": "view"}],
       "inputs": ["s3://shop-a-photos/"],
       "outputs": ["s3://shop-a-results/"],
       "limits": {"images_per_batch": 100000, "outstanding_images": 500000,
                  "submits_per_minute": 60}}]}

A batch id lives in its tenant's namespace: ``qualify`` names it in Redis and in job messages
as ``<tenant>/<batch id>`` (neither part can hold a ``/``), and as the bare id for the
``default`` tenant, so that single-tenant deployments keep the ids they had.

Without a tenants file, ``BLURQ_API_KEYS`` is single-tenant mode: one tenant, ``default``, whose
keys all have the ``submit`` role and whose batches may read and write every bucket the service's
own credentials reach. Both set is a configuration error (one source of truth).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from infra.errors import Forbidden, InvalidJob
from infra.settings import Settings
from infra.storage import S3Uri

DEFAULT_TENANT = "default"
"""The one tenant of single-tenant mode (``BLURQ_API_KEYS``)."""
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
"""Tenant names: they prefix the tenant's batch ids in Redis, so no ``/`` or ``:``."""
MIN_KEY_LENGTH = 24
"""Shortest API key accepted in single-tenant mode (``blurq tenants add`` makes 43 characters)."""
FORBIDDEN = "is outside this tenant's allowed S3 prefixes"
"""The one answer about a place a tenant may not use: the same whether anything is there."""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Role(StrEnum):
    """What a key may do."""

    SUBMIT = "submit"  # everything: submit, cancel, retry, and every read
    VIEW = "view"  # reads only: API GETs and the dashboard


@dataclass(frozen=True)
class Limits:
    """A tenant's quotas, checked before any work is queued."""

    images_per_batch: int = 100_000
    outstanding_images: int = 500_000  # images queued or running over all its batches
    submits_per_minute: int = 60


@dataclass(frozen=True)
class Tenant:
    """One customer: its keys' hashes, the S3 prefixes it reads and writes, its limits."""

    name: str
    keys: Mapping[str, Role]  # hex SHA-256 of the key -> role
    inputs: tuple[str, ...]  # "s3://bucket/prefix/" or "s3://bucket/"; "s3://" is everywhere
    outputs: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)

    def may_read(self, uri: S3Uri) -> bool:
        """True when uri lies under one of the tenant's input prefixes."""
        return _under(uri, self.inputs)

    def may_write(self, uri: S3Uri) -> bool:
        """True when uri (an output prefix or object) lies under one of its output prefixes."""
        return _under(uri, self.outputs)

    def check_read(self, uri: S3Uri, what: str = "input") -> None:
        """Forbidden unless the tenant may read uri (checked before any S3 call)."""
        if not self.may_read(uri):
            raise Forbidden(f"{what} {uri} {FORBIDDEN}")

    def check_write(self, uri: S3Uri, what: str = "output") -> None:
        """Forbidden unless the tenant may write under uri (checked before any S3 call)."""
        if not self.may_write(uri):
            raise Forbidden(f"{what} {uri} {FORBIDDEN}")


@dataclass(frozen=True)
class Principal:
    """The tenant a request acts for, and the role its key gives it."""

    tenant: Tenant
    role: Role

    @property
    def may_submit(self) -> bool:
        """True for keys that may change things (submit, cancel, retry)."""
        return self.role is Role.SUBMIT


class Tenants:
    """Every tenant, found by name or by the key a caller presents."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self.by_name = {tenant.name: tenant for tenant in tenants}
        self._by_hash = {
            digest: (tenant, role)
            for tenant in self.by_name.values()
            for digest, role in tenant.keys.items()
        }

    def authenticate(self, key: str) -> Principal | None:
        """The principal of an API key, or None for a missing or unknown key."""
        if not key:
            return None
        digest = key_hash(key)
        for known, (tenant, role) in self._by_hash.items():
            # Every stored hash is compared, in constant time: the answer's timing says nothing.
            if hmac.compare_digest(digest, known):
                return Principal(tenant, role)
        return None

    def get(self, name: str) -> Tenant | None:
        """The tenant of that name, or None."""
        return self.by_name.get(name)


def qualify(tenant: str, batch_id: str) -> str:
    """The id a tenant's batch has in Redis and in job messages (bare for ``default``)."""
    return batch_id if tenant == DEFAULT_TENANT else f"{tenant}/{batch_id}"


def split(qualified: str) -> tuple[str, str]:
    """(tenant, the tenant's own batch id) of a qualified batch id; the inverse of qualify."""
    tenant, slash, batch_id = qualified.rpartition("/")
    return (tenant, batch_id) if slash else (DEFAULT_TENANT, batch_id)


def key_hash(key: str) -> str:
    """The hex SHA-256 of an API key, as the tenants file stores it."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A strong random API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def load(settings: Settings) -> Tenants:
    """The deployment's tenants: the tenants file, or single-tenant mode; InvalidJob for both."""
    if settings.tenants_file and settings.api_keys.strip():
        raise InvalidJob("set BLURQ_TENANTS_FILE or BLURQ_API_KEYS, not both (one source of keys)")
    if settings.tenants_file:
        return parse(read_file(Path(settings.tenants_file)))
    return single_tenant(settings.api_key_set)


def allowances(settings: Settings) -> Tenants:
    """The tenants as a worker needs them (prefixes, no keys): the file, or single-tenant mode."""
    if settings.tenants_file:
        return parse(read_file(Path(settings.tenants_file)))
    return single_tenant(())


def read_file(path: Path) -> Any:
    """The tenants file's JSON; InvalidJob when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidJob(f"cannot read the tenants file {path}: {error}") from error


def single_tenant(keys: Iterable[str]) -> Tenants:
    """Single-tenant mode: the given keys, all ``submit``, allowed on every bucket."""
    weak = [key for key in keys if len(key) < MIN_KEY_LENGTH]
    if weak:
        raise InvalidJob(f"API keys must be at least {MIN_KEY_LENGTH} characters long")
    hashes = {key_hash(key): Role.SUBMIT for key in keys}
    return Tenants([Tenant(DEFAULT_TENANT, hashes, inputs=("s3://",), outputs=("s3://",))])


def parse(data: Any) -> Tenants:
    """Tenants from the file's JSON; InvalidJob naming the first thing that is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list):
        raise InvalidJob('the tenants file must be {"tenants": [...]}')
    tenants = [_tenant(entry) for entry in data["tenants"]]
    names = [tenant.name for tenant in tenants]
    if len(set(names)) != len(names):
        raise InvalidJob("tenant names must be unique")
    hashes = [digest for tenant in tenants for digest in tenant.keys]
    if len(set(hashes)) != len(hashes):
        raise InvalidJob("a key belongs to one tenant only")
    return Tenants(tenants)


def dump(tenants: Tenants) -> dict[str, Any]:
    """The file's JSON for these tenants (hashes only, never keys)."""
    return {
        "tenants": [
            {
                "name": tenant.name,
                "keys": [{"sha256": h, "role": role.value} for h, role in tenant.keys.items()],
                "inputs": list(tenant.inputs),
                "outputs": list(tenant.outputs),
                "limits": vars(tenant.limits),
            }
            for tenant in tenants.by_name.values()
        ]
    }


def _tenant(entry: Any) -> Tenant:
    if not isinstance(entry, dict) or not TENANT_NAME.match(str(entry.get("name", ""))):
        raise InvalidJob(f"tenant names must match {TENANT_NAME.pattern}")
    name = entry["name"]
    keys: dict[str, Role] = {}
    for key in entry.get("keys", []):
        digest, role = str(key.get("sha256", "")).lower(), key.get("role", Role.SUBMIT.value)
        if not _HEX64.match(digest) or role not in Role.__members__.values():
            raise InvalidJob(f"tenant {name}: keys need a hex sha256 and a role (submit or view)")
        keys[digest] = Role(role)
    limits = entry.get("limits", {})
    unknown = set(limits) - set(Limits.__dataclass_fields__)
    if unknown or not all(isinstance(v, int) and v > 0 for v in limits.values()):
        raise InvalidJob(f"tenant {name}: limits are positive integers of {list(vars(Limits()))}")
    return Tenant(
        name,
        keys,
        inputs=_prefixes(name, "inputs", entry.get("inputs")),
        outputs=_prefixes(name, "outputs", entry.get("outputs")),
        limits=Limits(**limits),
    )


def _prefixes(tenant: str, what: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidJob(f"tenant {tenant}: {what} must be a non-empty list of s3:// prefixes")
    for prefix in value:
        # A trailing "/" keeps "s3://shop/a/" from also allowing "s3://shop/a-other/...".
        if not isinstance(prefix, str) or not prefix.startswith("s3://") or prefix == "s3://":
            raise InvalidJob(
                f"tenant {tenant}: {what} must be s3://bucket/ prefixes, got {prefix!r}"
            )
        if not prefix.endswith("/") or not S3Uri.parse(prefix).bucket:
            raise InvalidJob(f"tenant {tenant}: {what} prefixes must end with '/', got {prefix!r}")
    return tuple(value)


def _under(uri: S3Uri, prefixes: Iterable[str]) -> bool:
    for prefix in prefixes:
        if prefix == "s3://":
            return True
        allowed = S3Uri.parse(prefix)
        if uri.bucket == allowed.bucket and uri.key.startswith(allowed.key):
            return True
    return False
