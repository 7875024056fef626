"""The one settings object; every ``BLURQ_*`` environment variable is read here and nowhere else."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of producer and workers, from ``BLURQ_<FIELD>`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="BLURQ_", frozen=True, extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for status records.")
    broker_url: str = Field("", description="Celery broker; defaults to redis_url.")

    s3_endpoint_url: str | None = Field(None, description="S3 endpoint; unset means AWS S3.")
    s3_region: str = Field("us-east-1", description="S3 region name.")
    s3_access_key_id: str | None = Field(None, description="S3 key id; unset uses boto3's chain.")
    s3_secret_access_key: str | None = Field(None, description="S3 secret; unset uses boto3's.")
    s3_max_attempts: int = Field(6, ge=1, description="Attempts per S3 call (backoff + jitter).")

    model_dir: Path = Field(
        Path.home() / ".cache" / "blurq" / "models", description="Local cache of model weights."
    )
    isnet_uri: str | None = Field(None, description="isnet weights from s3:// or a file path.")
    u2netp_uri: str | None = Field(None, description="u2netp weights from s3:// or a file path.")
    model: str = Field("fusion", description="Default matting model: fusion, isnet or u2netp.")
    onnx_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = all cores.")
    renderer: Literal["auto", "opencv", "numpy", "cupy"] = Field(
        "auto",
        description="Where images are computed: auto (cupy with a CUDA GPU, else opencv), opencv "
        "(the CPU path), cupy (the GPU path), numpy (the GPU path's code on the CPU, for checks).",
    )

    task_soft_time_limit: int = Field(
        240, ge=1, description="Seconds before a task is asked to stop."
    )
    task_time_limit: int = Field(
        300, ge=1, description="Seconds before a task's process is killed."
    )
    visibility_timeout: int = Field(
        3600, ge=1, description="Seconds before an unacked message is redelivered."
    )
    max_deliveries: int = Field(5, ge=1, description="Deliveries after which an image is poison.")
    max_retries: int = Field(3, ge=0, description="Retries of a transient failure per image.")
    sweep_interval: int = Field(
        30, ge=1, description="Seconds between maintenance sweeps (one worker sweeps at a time)."
    )
    status_ttl: int = Field(
        7 * 24 * 3600,
        ge=60,
        description="Seconds a status record lives after its last change (each transition "
        "renews the image's record and its batch's).",
    )

    max_input_bytes: int = Field(
        64 * 2**20, ge=1, description="Largest input object accepted, in bytes."
    )
    max_input_pixels: int = Field(
        120_000_000, ge=1, description="Largest input accepted, in pixels."
    )

    api_keys: str = Field(
        "", description="Single-tenant mode: comma-separated keys of the HTTP API and dashboard."
    )
    tenants_file: str = Field(
        "",
        description="JSON file of tenants, their key hashes, prefixes and limits (infra.tenants).",
    )
    flower_url: str = Field("", description="Flower's address, linked from the dashboard if set.")
    flower_basic_auth: str = Field("", description="user:password that blurq flower requires.")
    webhook_secret: str = Field(
        "", description="Key of the HMAC-SHA256 signature on completion webhooks."
    )
    webhook_max_attempts: int = Field(
        6, ge=1, description="Attempts per completion webhook (backoff with jitter between)."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds per webhook attempt.")
    webhook_allow_private: bool = Field(
        False, description="Development and tests only: let webhooks reach loopback/private hosts."
    )
    max_request_bytes: int = Field(2**20, ge=1, description="Largest HTTP request body (413).")
    auth_failures_per_minute: int = Field(20, ge=1, description="Failed keys per address (429).")
    session_ttl: int = Field(12 * 3600, ge=60, description="Seconds a dashboard sign-in lasts.")
    thumbnail_max_pixels: int = Field(50_000_000, ge=1, description="Largest image previewed.")
    thumbnail_concurrency: int = Field(2, ge=1, description="Previews rendered at once (503).")
    metrics_token: str = Field("", description="Bearer token /metrics requires when set.")
    api_url: str = Field(
        "", description="The CLI's remote mode: the HTTP API it talks to (as --api URL)."
    )
    api_key: str = Field("", description="The CLI's remote mode: the key it sends to the API.")

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.visibility_timeout <= self.task_time_limit:
            raise ValueError("visibility_timeout must be above task_time_limit")
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("task_soft_time_limit must be below task_time_limit")
        return self

    @property
    def api_key_set(self) -> frozenset[str]:
        """The HTTP API's accepted keys; empty means every request is refused."""
        return frozenset(key.strip() for key in self.api_keys.split(",") if key.strip())

    @property
    def broker(self) -> str:
        """The broker URL, which is the status Redis unless set on its own."""
        return self.broker_url or self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
