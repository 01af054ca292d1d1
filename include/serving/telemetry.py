"""The app's Prometheus metrics (runbook names), in a registry of its own so several apps can coexist."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from include.ops.metrics import (
    INFERENCE_DURATION,
    MEMORY_USAGE,
    REQUESTS_SHED,
    RETENTION,
    memory_usage_samples,
)
from include.serving.registry import ModelStore

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _StateCollector(Collector):
    """Values read at scrape time: memory by device, the served model's retention per task, model info."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        memory = GaugeMetricFamily(
            MEMORY_USAGE, "Memory in use and available, by device", labels=["device", "type"]
        )
        for device, kind, value in memory_usage_samples():
            memory.add_metric([device, kind], value)
        yield memory
        loaded = self.store.current
        retention = GaugeMetricFamily(
            RETENTION,
            "Knowledge retention R[T,j]/R[j,j] per earlier task of the served model",
            labels=["task"],
        )
        info = GaugeMetricFamily(
            "continual_transformer_model_loaded",
            "1 when a model is served; labels say which",
            labels=["source", "version", "task_id"],
        )
        if loaded is not None:
            for task, value in loaded.retention.items():
                retention.add_metric([task], value)
            info.add_metric([loaded.source, loaded.version or "", loaded.task_id or ""], 1.0)
        yield retention
        yield info


class Telemetry:
    """Owns the app's metric objects and renders the exposition text for ``/metrics``."""

    def __init__(self, store: ModelStore) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes: the leak trend
        self.inference_seconds = Histogram(
            INFERENCE_DURATION,
            "Time from request validation to probabilities (queueing + forward), per /predict request",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "continual_transformer_inference_batch_size",
            "Rows per forward pass of the dynamic batcher",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "continual_transformer_predictions_total",
            "Images classified by /predict, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.shed = Counter(
            REQUESTS_SHED,
            "/predict requests answered 503 + Retry-After because the batcher queue was full",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store))

    def render(self) -> bytes:
        """Prometheus text exposition of every metric of the app."""
        return generate_latest(self.registry)
