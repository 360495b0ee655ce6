"""The topic registry: every Kafka topic, its key and who produces and consumes it.

The `.v1` suffix is the schema generation: fields are only ever added; a breaking change is
a new topic published beside the old one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    produced_by: str
    consumed_by: str
    description: str

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.name)


def dead_letter_topic(topic: str) -> str:
    """Where a consumer of `topic` parks a message it can never process."""
    return f"{topic}.dlq"


MODEL_DOWNLOAD_REQUESTED = TopicSpec(
    "models.download-requested.v1",
    "model_id",
    "gateway",
    "downloader, model-projector",
    "An admin asked for a model to be downloaded and installed.",
)
MODEL_DOWNLOAD_PROGRESSED = TopicSpec(
    "models.download-progressed.v1",
    "model_id",
    "downloader",
    "model-projector (the SSE stream and the CLI read the projection)",
    "Bytes and files done so far, published at a bounded rate.",
)
MODEL_INSTALLED = TopicSpec(
    "models.installed.v1",
    "model_id",
    "downloader",
    "model-projector",
    "A model's files are on disk and verified.",
)
MODEL_DOWNLOAD_FAILED = TopicSpec(
    "models.download-failed.v1",
    "model_id",
    "downloader",
    "model-projector",
    "A download ended without installing the model; the reason says why and what to do.",
)
MODEL_DOWNLOAD_CANCELLED = TopicSpec(
    "models.download-cancelled.v1",
    "model_id",
    "gateway, downloader (one event id per download)",
    "model-projector",
    "A download was stopped at an admin's request.",
)

MODEL_TOPICS: tuple[TopicSpec, ...] = (
    MODEL_DOWNLOAD_REQUESTED,
    MODEL_DOWNLOAD_PROGRESSED,
    MODEL_INSTALLED,
    MODEL_DOWNLOAD_FAILED,
    MODEL_DOWNLOAD_CANCELLED,
)

INFERENCE_REQUESTED_PATTERN = "ai.inference-requested.{pool}.v1"


def inference_requested(pool: str) -> TopicSpec:
    """The dedicated queue of one worker pool: its workers read only this topic."""
    return TopicSpec(
        INFERENCE_REQUESTED_PATTERN.format(pool=pool),
        "job_id",
        "gateway (after fallback)",
        f"inference workers of pool {pool}",
        "A job admitted for the pool's model: prompt, resolved context, image refs, target.",
    )


INFERENCE_PROGRESSED = TopicSpec(
    "ai.inference-progressed.v1",
    "job_id",
    "inference worker, insights worker",
    "job-projector",
    "A running job's tokens so far, published at a bounded rate.",
)
INFERENCE_COMPLETED = TopicSpec(
    "ai.inference-completed.v1",
    "job_id",
    "inference worker, insights worker",
    "job-projector, usage-meter",
    "A job's output, usage, timings, and the model and engine that produced it.",
)
INFERENCE_FAILED = TopicSpec(
    "ai.inference-failed.v1",
    "job_id",
    "inference worker, insights worker",
    "job-projector, usage-meter",
    "A job that ended without output; the error says why and whether to retry.",
)
INFERENCE_CANCELLED = TopicSpec(
    "ai.inference-cancelled.v1",
    "job_id",
    "gateway; inference and insights workers republish it (same event id)",
    "job-projector, usage-meter (workers see cancellations in the store)",
    "A caller cancelled a queued or running job.",
)
INFERENCE_METRICS = TopicSpec(
    "analytics.inference-metrics.v1",
    "model_id",
    "inference worker, insights worker",
    "metrics-recorder, analytics (external readers too)",
    "One record per finished job: queue/ttft/total latency, tokens, tokens/s and cost.",
)

INFERENCE_TOPICS: tuple[TopicSpec, ...] = (
    INFERENCE_PROGRESSED,
    INFERENCE_COMPLETED,
    INFERENCE_FAILED,
    INFERENCE_CANCELLED,
    INFERENCE_METRICS,
)

AUDIT_RECORDED = TopicSpec(
    "audit.recorded.v1",
    "workspace_id",
    "gateway, CLI, job-projector, image sweeper (every step that touches user data)",
    "audit-recorder",
    "Who did what to which model and inputs (refs and sha256 hashes only), and the outcome.",
)

GOVERNANCE_TOPICS: tuple[TopicSpec, ...] = (AUDIT_RECORDED,)

RESEARCH_INSIGHTS_REQUESTED = TopicSpec(
    "research.insights-requested.v1",
    "session_id",
    "gateway",
    "insights-worker",
    "Generate insights for a research session from a snapshot of its attached sources.",
)
RESEARCH_INSIGHT_GENERATED = TopicSpec(
    "research.insight-generated.v1",
    "session_id",
    "insights-worker",
    "session-projector",
    "One job's insights with their citations, and which generator wrote them.",
)

RESEARCH_TOPICS: tuple[TopicSpec, ...] = (RESEARCH_INSIGHTS_REQUESTED, RESEARCH_INSIGHT_GENERATED)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    MODEL_TOPICS + INFERENCE_TOPICS + GOVERNANCE_TOPICS + RESEARCH_TOPICS
)


def topic_names(specs: tuple[TopicSpec, ...] = ALL_TOPICS, *, with_dlq: bool = True) -> list[str]:
    names = [spec.name for spec in specs]
    if with_dlq:
        names += [spec.dlq for spec in specs]
    return names
