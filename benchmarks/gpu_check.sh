#!/usr/bin/env bash
# The prepared GPU check: the command of the last device call that benchmarks/gpu_pack.py prints,
#   bash benchmarks/gpu_check.sh .gpu/callN
# on the GPU machine, from the repository's root, after calls 1..N-1 left their parts in
# /tmp/blurq-parts. It receives this call's parts, reassembles and checks every file (a missing
# part or a SHA-256 that differs stops it here, non-zero, with the reason), installs the wheels
# into /tmp/site, then runs nvidia-smi, the GPU-marked tests and benchmarks/gpu.py on CuPy.
# Logs and gpu.json (every figure) go to $OUT: six files at most, of the eight a call returns.
# The steps' timeouts bound the call to about 8.5 minutes. Exits non-zero when any step fails.
# BLURQ_CHECK_WORK moves its /tmp folders elsewhere (the unit test's).
set -uo pipefail
call=${1:?usage: bash benchmarks/gpu_check.sh .gpu/callN}
out=${OUT:-/tmp/blurq-check}
work=${BLURQ_CHECK_WORK:-/tmp}
parts=$work/blurq-parts files=$work/blurq-files site=$work/site
mkdir -p "$out"

fail() { echo "gpu_check: $*" | tee -a "$out/check.log" >&2; exit 1; }

python3 benchmarks/gpu_pack.py receive "$call" --parts "$parts" || fail "receiving $call failed"
python3 benchmarks/gpu_pack.py unpack "$files" --parts "$parts" || fail "the files are not whole"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" "$files"/*.whl || fail "installing the carried wheels failed"

# The weights are named as the model store caches them, so it finds and checks them there.
export PYTHONPATH="$PWD:$site" BLURQ_MODEL_DIR="$files" PYTHONUNBUFFERED=1
# onnxruntime-gpu finds CUDA 13 and cuDNN 9 on the library path; this machine has them as the
# nvidia wheels PyTorch uses, not in a system folder as the worker image does.
libraries=$(python3 -c '
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
roots = [pathlib.Path(root) for root in (spec.submodule_search_locations if spec else [])]
print(":".join(sorted({str(lib.parent) for root in roots for lib in root.glob("**/lib/lib*.so*")})))
')
[ -n "$libraries" ] || fail "no CUDA libraries (the nvidia wheels) found beside python3"
export LD_LIBRARY_PATH="$libraries${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" || fail "nvidia-smi failed: no GPU to check on"
python3 -c 'import onnxruntime as o, cupy as c; print("onnxruntime", o.__version__,
  o.get_available_providers(), "cupy", c.__version__, c.cuda.runtime.getDeviceCount(), "GPUs")' \
  2>&1 | tee "$out/versions.txt" || fail "onnxruntime-gpu or CuPy does not load"

status=0
# The suite's conftest imports the local stack (redis, FastAPI...), which this machine lacks and
# the GPU tests do not use.
timeout 180 python3 -m pytest tests/gpu -m gpu -q -p no:cacheprovider --noconftest 2>&1 |
  tee "$out/pytest.log" || { echo "gpu_check: GPU tests failed"; status=1; }
timeout 300 python3 benchmarks/gpu.py --backend cupy --images 4 --processes 1,2,4,8 \
  --window 10 --json "$out/gpu.json" 2>&1 | tee "$out/gpu.log" ||
  { echo "gpu_check: the benchmark failed"; status=1; }
exit "$status"
