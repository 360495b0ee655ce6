"""The event contract in one place: which payload model travels on which topic.

Every topic of the registry (topics.ALL_TOPICS) and the per-pool inference topic
(`ai.inference-requested.{pool}.v1`) maps to the payload model inside its Envelope. The
AsyncAPI document (docs/asyncapi.json), the contract tests and analysts' readers all start from
here; a topic added to the registry without an entry here fails the contract tests and the
document generator.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from studio_ai.schemas import topics
from studio_ai.schemas.audit import AuditRecorded
from studio_ai.schemas.inference import (
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceMetrics,
    InferenceProgressed,
    InferenceRequested,
)
from studio_ai.schemas.models import (
    ModelDownloadCancelled,
    ModelDownloadFailed,
    ModelDownloadProgressed,
    ModelDownloadRequested,
    ModelInstalled,
)
from studio_ai.schemas.research import InsightsGenerated, InsightsRequested

SCHEMA_GENERATION_SUFFIX = ".v1"

# Topic name -> the payload model of its Envelope. Keep in step with topics.ALL_TOPICS.
TOPIC_PAYLOADS: dict[str, type[BaseModel]] = {
    topics.MODEL_DOWNLOAD_REQUESTED.name: ModelDownloadRequested,
    topics.MODEL_DOWNLOAD_PROGRESSED.name: ModelDownloadProgressed,
    topics.MODEL_INSTALLED.name: ModelInstalled,
    topics.MODEL_DOWNLOAD_FAILED.name: ModelDownloadFailed,
    topics.MODEL_DOWNLOAD_CANCELLED.name: ModelDownloadCancelled,
    topics.INFERENCE_PROGRESSED.name: InferenceProgressed,
    topics.INFERENCE_COMPLETED.name: InferenceCompleted,
    topics.INFERENCE_FAILED.name: InferenceFailed,
    topics.INFERENCE_CANCELLED.name: InferenceCancelled,
    topics.INFERENCE_METRICS.name: InferenceMetrics,
    topics.AUDIT_RECORDED.name: AuditRecorded,
    topics.RESEARCH_INSIGHTS_REQUESTED.name: InsightsRequested,
    topics.RESEARCH_INSIGHT_GENERATED.name: InsightsGenerated,
}

# Topic patterns (one topic per value of the parameter) -> payload model.
PATTERN_PAYLOADS: dict[str, type[BaseModel]] = {
    topics.INFERENCE_REQUESTED_PATTERN: InferenceRequested,
}

# What the parameters of the patterns stand for (AsyncAPI channel parameters).
PATTERN_PARAMETERS: dict[str, str] = {
    "pool": "Inference worker pool: lower-case letters, digits and '-', at most 40 characters, "
    "starting and ending with a letter or digit. Its workers (consumer group "
    "`inference-<pool>`) read only this topic.",
}


@dataclass(frozen=True)
class TopicContract:
    """One topic (or topic pattern) of the contract: its registry entry and payload model."""

    spec: topics.TopicSpec
    payload: type[BaseModel]
    pattern: bool = False

    @property
    def event_type(self) -> str:
        """The Envelope's event_type on this topic: the topic name without its generation
        suffix (and without the pool, for the per-pool topic)."""
        name = self.spec.name
        if self.pattern:
            name = name.replace(".{pool}", "")
        return name.removesuffix(SCHEMA_GENERATION_SUFFIX)


class MissingPayload(LookupError):
    """A topic of the registry has no payload model in the contract."""


def missing_payloads(specs: tuple[topics.TopicSpec, ...] | None = None) -> list[str]:
    """Registry topics (default: topics.ALL_TOPICS) without a payload model; empty when the
    contract is complete."""
    chosen = topics.ALL_TOPICS if specs is None else specs
    return [spec.name for spec in chosen if spec.name not in TOPIC_PAYLOADS]


def contracts() -> list[TopicContract]:
    """Every topic of the registry plus the per-pool inference topic, with its payload model.

    Raises MissingPayload when the registry has a topic this module does not map.
    """
    if missing := missing_payloads():
        raise MissingPayload(
            "no payload model for topic(s) "
            + ", ".join(missing)
            + ": add them to TOPIC_PAYLOADS in studio_ai/schemas/contract.py"
        )
    found = [TopicContract(spec, TOPIC_PAYLOADS[spec.name]) for spec in topics.ALL_TOPICS]
    pool_topic = topics.inference_requested("{pool}")
    found.append(
        TopicContract(
            topics.TopicSpec(
                topics.INFERENCE_REQUESTED_PATTERN,
                pool_topic.key,
                pool_topic.produced_by,
                "inference workers of the pool (consumer group inference-<pool>)",
                pool_topic.description,
            ),
            PATTERN_PAYLOADS[topics.INFERENCE_REQUESTED_PATTERN],
            pattern=True,
        )
    )
    return found


def payload_for(topic: str) -> type[BaseModel]:
    """The payload model of a concrete topic name (a per-pool topic or a DLQ included)."""
    name = topic.removesuffix(".dlq")
    if name in TOPIC_PAYLOADS:
        return TOPIC_PAYLOADS[name]
    prefix, _, suffix = topics.INFERENCE_REQUESTED_PATTERN.partition("{pool}")
    if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix + suffix):
        return PATTERN_PAYLOADS[topics.INFERENCE_REQUESTED_PATTERN]
    raise MissingPayload(f"topic {topic!r} is not part of the event contract")
