# Producer: CLI, Python API and Flower; no onnxruntime, no weights.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY infra ./infra
COPY producer ./producer
COPY workers ./workers
RUN pip install .
RUN useradd --system --uid 10001 blurq
USER blurq
CMD ["blurq", "--help"]
