"""The prepared GPU check's CPU side: packing into call folders, unpacking, the device calls, the
check script's refusal of a missing part, the benchmark's dry run on NumPy, and its imports."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
KiB = 1024


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


pack = _load("gpu_pack")


def _fake_files(folder: Path, sizes: list[int]) -> list[Path]:
    """Files of random bytes standing in for the wheels and weights."""
    folder.mkdir(parents=True)
    files = []
    for number, size in enumerate(sizes):
        path = folder / f"thing{number}-1.0-py3-none-any.whl"
        path.write_bytes(os.urandom(size))
        files.append(path)
    return files


def _packed(tmp_path: Path, sizes: list[int], budget: int) -> tuple[list[Path], Path, int]:
    files = _fake_files(tmp_path / "source", sizes)
    calls = pack.cut(files, budget)
    pack.write_calls(files, calls, tmp_path / "pack")
    return files, tmp_path / "pack", len(calls)


def test_parts_fill_calls_and_unpack_to_the_same_files(tmp_path: Path) -> None:
    sizes, budget = [10 * KiB, 3 * KiB, 7 * KiB + 5, 1], 8 * KiB
    files, folder, calls = _packed(tmp_path, sizes, budget)
    assert calls == math.ceil(sum(sizes) / budget)
    for number in range(1, calls + 1):
        parts = [p for p in (folder / f"call{number}").iterdir() if p.name != pack.MANIFEST]
        assert sum(p.stat().st_size for p in parts) <= budget
        said = pack.receive(folder / f"call{number}", tmp_path / "parts")
        assert said.startswith(f"call {number}:")
    unpacked = pack.unpack(tmp_path / "parts", tmp_path / "files")
    assert [p.read_bytes() for p in unpacked] == [p.read_bytes() for p in files]


def test_a_missing_part_is_named_with_its_call_on_receipt_and_on_unpacking(
    tmp_path: Path,
) -> None:
    _, folder, calls = _packed(tmp_path, [5 * KiB, 5 * KiB], 4 * KiB)
    assert calls == 3
    parts = tmp_path / "parts"
    with pytest.raises(SystemExit, match=r"parts missing: thing0.*\.001 .*calls \[1\]"):
        pack.receive(folder / "call2", parts)  # call 1 never arrived
    pack.receive(folder / "call1", parts)  # made again
    pack.receive(folder / "call3", parts)
    (parts / "thing1-1.0-py3-none-any.whl.002").unlink()
    with pytest.raises(SystemExit, match=r"parts missing: thing1.*\.002 .*calls \[3\]"):
        pack.unpack(parts, tmp_path / "files")


def test_a_changed_byte_is_refused_on_receipt_and_on_unpacking(tmp_path: Path) -> None:
    _, folder, calls = _packed(tmp_path, [5 * KiB], 4 * KiB)
    assert calls == 2
    part = next((folder / "call1").glob("*.001"))
    part.write_bytes(b"\0" + part.read_bytes()[1:])
    with pytest.raises(SystemExit, match="wrong SHA-256"):
        pack.receive(folder / "call1", tmp_path / "parts")
    (tmp_path / "parts" / part.name).write_bytes(part.read_bytes())
    pack.receive(folder / "call2", tmp_path / "parts")
    with pytest.raises(SystemExit, match="wrong SHA-256"):
        pack.unpack(tmp_path / "parts", tmp_path / "files")


def test_each_call_fits_beside_the_working_tree(tmp_path: Path) -> None:
    # Sparse files of the real sizes: onnxruntime-gpu, botocore, the two weights.
    sizes = [255_569_273, 16_884_815, 88_188_479, 4_574_861]
    files = []
    for number, size in enumerate(sizes):
        path = tmp_path / f"file{number}"
        with path.open("wb") as stream:
            stream.truncate(size)
        files.append(path)
    tree = pack.tree_bytes(ROOT)
    budget = pack.call_budget(tree)
    calls = pack.cut(files, budget)
    assert len(calls) == math.ceil(sum(sizes) / budget)
    for pieces in calls:
        carried = sum(piece.size for piece in pieces) + 64 * KiB  # the manifest, generously
        assert carried <= pack.PART_LIMIT
        assert tree + carried <= pack.CALL_LIMIT
    assert pack.call_budget(pack.CALL_LIMIT - 10 * pack.MiB) == 9 * pack.MiB  # a big tree


def test_device_calls_are_short_and_the_last_runs_the_check() -> None:
    steps = pack.plan(".gpu", 6)
    assert [step["carry"] for step in steps] == [[f".gpu/call{n}"] for n in range(1, 7)]
    assert all(len(step["command"]) < 2000 and step["timeout_s"] <= 600 for step in steps)
    assert all("gpu_pack.py receive" in step["command"] for step in steps[:-1])
    assert steps[-1]["command"] == "bash benchmarks/gpu_check.sh .gpu/call6"


def test_check_script_stops_loudly_on_a_missing_part(tmp_path: Path) -> None:
    _, folder, calls = _packed(tmp_path, [5 * KiB, 5 * KiB], 4 * KiB)
    assert calls == 3
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "BLURQ_CHECK_WORK": str(tmp_path)}
    pack.receive(folder / "call1", tmp_path / "blurq-parts")  # call 2 never arrived
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(folder / "call3")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "parts missing" in done.stderr and "calls [2]" in done.stderr
    assert not (tmp_path / "site").exists()  # stopped before installing anything


GPU_STAGES = {"decode", "upload", "matting", "foreground", "bokeh", "download", "encode"}
CPU_STAGES = {"decode", "matting", "foreground", "bokeh", "encode"}


def test_benchmark_dry_run_on_numpy_makes_every_figure(tmp_path: Path) -> None:
    figures_path = tmp_path / "gpu.json"
    command = [sys.executable, "benchmarks/gpu.py", "--backend", "numpy", "--size", "320x240"]
    command += ["--images", "2", "--processes", "1", "--window", "2", "--model", "u2netp"]
    done = subprocess.run(
        [*command, "--json", str(figures_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(figures_path.read_text())
    assert figures["config"]["size"] == [320, 240] and figures["config"]["backend"] == "numpy"
    assert set(figures["gpu"]["stages_ms"]) == GPU_STAGES
    assert set(figures["cpu"]["stages_ms"]) == CPU_STAGES
    assert all(ms > 0 for ms in figures["gpu"]["stages_ms"].values())
    (run,) = figures["gpu"]["rates"]
    for rate in (run, figures["cpu"]["rate"]):
        assert rate["images_per_s"] > 0 and rate["per_process"]
        for one in rate["per_process"]:
            assert one["images"] >= 1 and one["seconds"] > 0
            assert one["pool_bytes"] == one["pool_peak_bytes"] == 0  # NumPy holds no pool
            assert one["nvidia_smi_mib"] is None
    assert figures["cpu"]["rate"]["processes"] == max(1, (os.cpu_count() or 1) // 2)
    assert figures["ratios"]["images_per_s_gpu_over_cpu"] > 0
    assert set(figures["ratios"]["stage_cpu_ms_over_gpu_ms"]) == CPU_STAGES
    agreement = figures["agreement"]
    assert all(db >= 45.0 for db in agreement["psnr_vs_cpu_db"])  # the bound
    assert agreement["psnr_vs_numpy_db"] == [None, None]  # the GPU path ran on NumPy itself
    assert set(figures["targets"]) == {"images_per_s", "matting_ms", "bokeh_ms", "psnr_db"}
    assert "target psnr_db >= 45" in done.stdout


DEVICE_MODULES = {
    *("PIL", "certifi", "charset_normalizer", "click", "cv2", "cycler", "dateutil", "imageio"),
    *("kiwisolver", "lazy_loader", "matplotlib", "numpy", "onnxruntime", "packaging"),
    *("pyparsing", "scipy", "six", "skimage", "tifffile", "urllib3", "contourpy", "fontTools"),
}
"""Top-level modules of packages the GPU machine has (the device README's package list)."""
OWN_MODULES = {"infra", "producer", "workers", "gpu", "gpu_paths"}
WHEEL_MODULES = {"onnxruntime-gpu": "onnxruntime", "python-dotenv": "dotenv"}


def test_benchmark_imports_only_what_the_machine_has_or_the_pack_carries() -> None:
    carried = set()
    for wheel in pack.WHEELS:
        name = wheel.split("==")[0]
        carried.add(WHEEL_MODULES.get(name, name.replace("-", "_")))
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import gpu, gpu_paths\n"
        "gpu_paths.photo(0, (8, 6)); gpu_paths.photo(1, (8, 6))  # scikit-image, matplotlib\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split()) - set(sys.stdlib_module_names) - {"__main__"}
    public = {name for name in loaded if not name.startswith("_") and name != "cython_runtime"}
    assert public - DEVICE_MODULES - OWN_MODULES - carried == set()
    assert carried - {"typing_extensions"} <= public  # every wheel carried is needed


def test_a_failing_rate_process_stops_the_run_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # where the spawned process finds gpu_paths
    paths = _load("gpu_paths")
    job = paths.RateJob("no-such-renderer", "u2netp", 1, (b"",), 1.0)
    with pytest.raises(SystemExit, match="renderer must be one of"):
        paths.images_per_second(job, 2)
