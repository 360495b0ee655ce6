"""Prometheus metrics of this project (FastStream's own come from its middleware)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ConsumerMetrics:
    transient_failures: Counter
    dead_lettered: Counter
    downloads_active: Gauge
    download_bytes: Counter
    downloads_finished: Counter
    download_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        return cls(
            transient_failures=Counter(
                "studio_consumer_transient_failures",
                "Handler attempts that failed for a transient reason.",
                ["topic"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "studio_consumer_dead_lettered",
                "Messages sent to a dead-letter topic.",
                ["topic"],
                registry=registry,
            ),
            downloads_active=Gauge(
                "studio_model_downloads_active", "Model downloads in progress.", registry=registry
            ),
            download_bytes=Counter(
                "studio_model_download_bytes", "Bytes of model files downloaded.", registry=registry
            ),
            downloads_finished=Counter(
                "studio_model_downloads_finished",
                "Model downloads that ended, by outcome.",
                ["outcome", "transport"],
                registry=registry,
            ),
            download_seconds=Histogram(
                "studio_model_download_seconds",
                "Time from download start to its end.",
                ["transport"],
                buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
                registry=registry,
            ),
        )


@dataclass
class GatewayMetrics:
    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GatewayMetrics:
        return cls(
            requests=Counter(
                "studio_http_requests",
                "HTTP requests by route and status.",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "studio_http_request_seconds",
                "HTTP request latency by route.",
                ["method", "route"],
                registry=registry,
            ),
        )


@dataclass
class InferenceWorkerMetrics:
    jobs: Counter
    queue_seconds: Histogram
    ttft_seconds: Histogram
    total_seconds: Histogram
    tokens: Counter
    cost_usd: Counter
    in_flight: Gauge
    engine_retries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> InferenceWorkerMetrics:
        labels = ["model", "pool"]
        latency_buckets = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
        return cls(
            jobs=Counter(
                "studio_inference_jobs",
                "Finished inference jobs by outcome (completed, failed, cancelled).",
                [*labels, "outcome"],
                registry=registry,
            ),
            queue_seconds=Histogram(
                "studio_inference_queue_seconds",
                "Time from admission to the start on a worker.",
                labels,
                buckets=latency_buckets,
                registry=registry,
            ),
            ttft_seconds=Histogram(
                "studio_inference_ttft_seconds",
                "Time from the start on a worker to the first token.",
                labels,
                buckets=latency_buckets,
                registry=registry,
            ),
            total_seconds=Histogram(
                "studio_inference_total_seconds",
                "Time from admission to the end of the job.",
                labels,
                buckets=latency_buckets,
                registry=registry,
            ),
            tokens=Counter(
                "studio_inference_tokens",
                "Tokens processed, by kind (prompt, completion).",
                [*labels, "kind"],
                registry=registry,
            ),
            cost_usd=Counter(
                "studio_inference_cost_usd", "Cost of finished jobs.", labels, registry=registry
            ),
            in_flight=Gauge(
                "studio_inference_in_flight",
                "Jobs in flight on this worker.",
                ["pool"],
                registry=registry,
            ),
            engine_retries=Counter(
                "studio_inference_engine_retries",
                "Engine calls retried after a retryable failure.",
                labels,
                registry=registry,
            ),
        )
