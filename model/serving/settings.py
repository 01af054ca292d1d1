"""Serving settings from the environment (prefix ``CT_SERVING_``; the API token is ``CT_API_TOKEN``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    """How the app serves: network, batching, thresholds of the health checks, auth."""

    model_config = SettingsConfigDict(env_prefix="CT_SERVING_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_token: SecretStr | None = Field(None, validation_alias=AliasChoices("CT_API_TOKEN"))
    batching: bool = True  # False = one forward per request (the naive baseline of the benchmark)
    max_batch_size: int = Field(32, ge=1, le=4096)  # runbook "Batching Strategies" default
    batch_timeout_ms: float = Field(10.0, ge=0.0, le=1000.0)  # wait at most this long to fill a batch
    slow_inference_ms: float = Field(250.0, gt=0.0)  # a request slower than this logs "slow inference"
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    tensorrt: bool = False  # compile the served model with Torch-TensorRT (optional; CUDA + torch-tensorrt)
    # intra-op threads: the batcher runs one forward at a time, and a model this small gains nothing from
    # more threads that fight the event loop and the clients for cores (measured: 1 thread is 8x faster
    # than 2 on a loaded 2-core host). 0 keeps torch's default.
    torch_threads: int = Field(1, ge=0)
    registry_timeout_s: float = Field(3.0, gt=0.0)
    retention_threshold: float = Field(0.8, ge=0.0, le=1.0)  # runbook: retention < 0.8 -> review
    model_max_age_hours: float = Field(24.0 * 7, gt=0.0)  # older champion -> degraded
    degraded_pct: float = Field(90.0, gt=0.0, le=100.0)  # CPU/memory/disk/GPU use above this -> degraded
    unhealthy_pct: float = Field(98.0, gt=0.0, le=100.0)  # memory/disk use above this -> unhealthy
    log_component: str = "app"  # JSON log file name under settings.log_dir
