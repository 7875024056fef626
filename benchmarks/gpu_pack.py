"""What the prepared GPU check needs and the GPU machine lacks, cut into parts that fit its calls.

The GPU machine has no network, and one call to it carries at most 64 MiB, the working tree
included. ``pack`` (here) downloads the wheels below, copies the pinned matting weights from the
model cache, cuts everything into parts that fill one call folder each (``.gpu/call1`` …
``callN``, each with the manifest of SHA-256s) and prints the calls to make, in order, back to
back (the machine keeps /tmp only while warm). On the GPU machine each call but the last runs
``receive`` (its parts into /tmp/blurq-parts, each checked); the last runs
``benchmarks/gpu_check.sh``, which receives its own parts, then ``unpack`` (the files whole again,
checked) before the check itself.

    .venv/bin/python benchmarks/gpu_pack.py pack               # here
    python3 benchmarks/gpu_pack.py receive .gpu/call1          # there
    python3 benchmarks/gpu_pack.py unpack /tmp/blurq-files     # there

Only the standard library is imported at the top: the GPU machine runs this before anything is
installed. A missing part or a SHA-256 that differs exits non-zero with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1 << 20
CALL_LIMIT = 64 * MiB
"""What one call to the GPU machine carries at most: the working tree and the carried folder."""
PART_LIMIT = 60 * MiB
"""The largest call folder, its manifest included, this packer makes."""
RESERVE = 1 * MiB
"""Kept free in each call folder for the manifest, and beside the working tree for files added
to it after packing."""

WHEELS = (
    "onnxruntime-gpu==1.31.1",  # the CUDA provider: the machine's own onnxruntime is CPU-only
    # The benchmark's imports reach infra.settings (pydantic-settings) and infra.storage (boto3)
    # through infra.models; the machine lacks these. urllib3 and python-dateutil are there.
    "boto3==1.44.8",
    "botocore==1.44.8",
    "s3transfer==0.19.3",
    "jmespath==1.1.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "pydantic-settings==2.16.3",
    "python-dotenv==1.2.4",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "typing-extensions==4.16.0",  # pydantic 2.14 needs >= 4.16, newer than the machine may have
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64")
MODELS = ("isnet", "u2netp")
PARTS_ON_DEVICE = "/tmp/blurq-parts"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Piece:
    """A byte range of one file that becomes one part in one call folder."""

    source: Path
    offset: int
    size: int


def download(folder: Path) -> list[Path]:
    """The pinned wheels for CPython 3.12 on x86-64 Linux, fetched with pip (no dependencies)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run([*command, *WHEELS], check=True)
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != len(WHEELS):
        raise SystemExit(
            f"gpu_pack: expected {len(WHEELS)} wheels in {folder}, found {len(wheels)}"
        )
    return wheels


def weights(folder: Path) -> list[Path]:
    """The matting weights, checked against their pins by the model store, copied to folder."""
    from infra.models import ModelStore  # here only: the GPU machine unpacks before installing
    from infra.settings import Settings

    store = ModelStore(Settings().model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in MODELS:
        source = store.path(name)
        copies.append(Path(shutil.copyfile(source, folder / source.name)))
    return copies


def tree_bytes(root: Path) -> int:
    """Bytes of the working tree a call sends: tracked files and untracked ones not ignored."""
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    names = subprocess.run(listing, cwd=root, capture_output=True, check=True).stdout
    paths = (root / os.fsdecode(name) for name in names.split(b"\0") if name)
    return sum(path.stat().st_size for path in paths if path.is_file())


def call_budget(tree: int) -> int:
    """The bytes of parts one call folder may hold beside a working tree of this size."""
    budget = min(PART_LIMIT, CALL_LIMIT - tree) - RESERVE
    if budget <= 0:
        raise SystemExit(f"gpu_pack: the working tree alone ({tree / MiB:.1f} MiB) fills a call")
    return budget


def cut(files: list[Path], budget: int) -> list[list[Piece]]:
    """The files as consecutive pieces filling call folders of ``budget`` bytes: fewest calls."""
    calls: list[list[Piece]] = [[]]
    room = budget
    for source in files:
        offset, size = 0, source.stat().st_size
        while offset < size:
            if room == 0:
                calls.append([])
                room = budget
            take = min(room, size - offset)
            calls[-1].append(Piece(source, offset, take))
            offset += take
            room -= take
    return calls


def write_calls(files: list[Path], calls: list[list[Piece]], folder: Path) -> dict[str, Any]:
    """Writes each call's parts and the manifest (in every call folder); returns the manifest."""
    parts: dict[str, dict[str, Any]] = {}
    names: dict[Path, list[str]] = {source: [] for source in files}
    for number, pieces in enumerate(calls, start=1):
        target = folder / f"call{number}"
        target.mkdir(parents=True)
        for piece in pieces:
            name = f"{piece.source.name}.{len(names[piece.source]) + 1:03d}"
            with piece.source.open("rb") as stream:
                stream.seek(piece.offset)
                data = stream.read(piece.size)
            (target / name).write_bytes(data)
            names[piece.source].append(name)
            parts[name] = {"sha256": _sha256(data), "size": piece.size, "call": number}
    entries = [
        {"name": f.name, "size": f.stat().st_size, "sha256": _file_sha256(f), "parts": names[f]}
        for f in files
    ]
    manifest = {"calls": len(calls), "files": entries, "parts": parts}
    for number in range(1, len(calls) + 1):
        (folder / f"call{number}" / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def plan(folder: str, calls: int) -> list[dict[str, Any]]:
    """The device calls in order: each carries its call folder; the last runs the check."""
    steps = []
    for number in range(1, calls + 1):
        carried = f"{folder}/call{number}"
        if number < calls:
            command = f"python3 benchmarks/gpu_pack.py receive {carried}"
            steps.append({"command": command, "carry": [carried], "timeout_s": 120})
        else:
            command = f"bash benchmarks/gpu_check.sh {carried}"
            steps.append({"command": command, "carry": [carried], "timeout_s": 600})
    return steps


def receive(folder: Path, parts_dir: Path) -> str:
    """Moves a call folder's parts into parts_dir after checking each; says what is there now.

    Exits naming the earlier calls whose parts are not there (the machine went back between
    calls and /tmp with it), so that a broken sequence stops at once, not at its last call.
    """
    manifest = json.loads((folder / MANIFEST).read_text())
    number = int(folder.name.removeprefix("call"))
    parts_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / MANIFEST, parts_dir / MANIFEST)
    mine = [name for name, info in manifest["parts"].items() if info["call"] == number]
    for name in mine:
        _check_part(folder / name, name, manifest)
        shutil.move(folder / name, parts_dir / name)
    _check_present(manifest, parts_dir, before=number)
    have = sum((parts_dir / name).is_file() for name in manifest["parts"])
    return f"call {number}: {len(mine)} parts; {have} of {len(manifest['parts'])} in {parts_dir}"


def unpack(parts_dir: Path, dest: Path) -> list[Path]:
    """The packed files whole again in dest, every part and file checked against the manifest."""
    manifest = json.loads((parts_dir / MANIFEST).read_text())
    _check_present(manifest, parts_dir, before=manifest["calls"] + 1)
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for entry in manifest["files"]:
        target = dest / entry["name"]
        digest = hashlib.sha256()
        with target.open("wb") as out:
            for name in entry["parts"]:
                data = _check_part(parts_dir / name, name, manifest)
                out.write(data)
                digest.update(data)
        if digest.hexdigest() != entry["sha256"]:
            raise SystemExit(f"gpu_pack: {entry['name']} reassembled has the wrong SHA-256")
        files.append(target)
    return files


def _check_present(manifest: dict[str, Any], parts_dir: Path, *, before: int) -> None:
    """Exits naming the parts of the calls numbered below ``before`` that are not in parts_dir,
    and those calls."""
    parts = manifest["parts"]
    missing = [n for n in parts if parts[n]["call"] < before and not (parts_dir / n).is_file()]
    if missing:
        calls = sorted({parts[name]["call"] for name in missing})
        raise SystemExit(
            f"gpu_pack: parts missing: {', '.join(missing)} (from calls {calls}); "
            f"the machine keeps them only while warm: make every call again from {calls[0]}"
        )


def _check_part(path: Path, name: str, manifest: dict[str, Any]) -> bytes:
    """The part's bytes; exits with the reason when it is missing or its SHA-256 differs."""
    if not path.is_file():
        raise SystemExit(f"gpu_pack: part {name} is missing from {path.parent}")
    data = path.read_bytes()
    if _sha256(data) != manifest["parts"][name]["sha256"]:
        raise SystemExit(f"gpu_pack: part {name} has the wrong SHA-256")
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def pack(root: Path, folder: Path) -> list[dict[str, Any]]:
    """Downloads and copies everything into root/folder, cuts it into call folders, prints and
    returns the plan (folder relative to root, as the device calls name it)."""
    where = root / folder
    files = [*download(where / "wheels"), *weights(where / "models")]
    tree = tree_bytes(root)
    calls = cut(files, call_budget(tree))
    for old in where.glob("call*"):  # an earlier pack's, perhaps of more calls
        shutil.rmtree(old)
    write_calls(files, calls, where)
    steps = plan(folder.as_posix(), len(calls))
    total = sum(f.stat().st_size for f in files)
    print(f"{len(files)} files, {total / MiB:.1f} MiB, in {len(calls)} calls")
    print(f"working tree {tree / MiB:.1f} MiB; each call carries at most {CALL_LIMIT // MiB} MiB")
    print("make these device calls in order, each as soon as the one before returns:")
    for number, step in enumerate(steps, start=1):
        print(f"{number}. {json.dumps(step)}")
    (where / "plan.json").write_text(json.dumps(steps, indent=1))
    return steps


def main() -> None:
    """pack here; receive and unpack on the GPU machine."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack")
    packing.add_argument("--folder", type=Path, default=Path(".gpu"), help="under the repository")
    received = verbs.add_parser("receive")
    received.add_argument("call_folder", type=Path)
    received.add_argument("--parts", type=Path, default=Path(PARTS_ON_DEVICE))
    unpacked = verbs.add_parser("unpack")
    unpacked.add_argument("dest", type=Path)
    unpacked.add_argument("--parts", type=Path, default=Path(PARTS_ON_DEVICE))
    args = parser.parse_args()
    if args.verb == "pack":
        pack(Path(__file__).resolve().parents[1], args.folder)
    elif args.verb == "receive":
        print(receive(args.call_folder, args.parts))
    else:
        files = unpack(args.parts, args.dest)
        print(f"unpacked {len(files)} files into {args.dest}, every SHA-256 as in the manifest")


if __name__ == "__main__":
    main()
