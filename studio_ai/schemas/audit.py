"""audit.recorded.v1: one record per audited action. Refs and sha256 hashes only: never prompt
text, output text or image bytes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class AuditAction(StrEnum):
    INFERENCE_REQUESTED = "inference.requested"
    INFERENCE_CANCELLED = "inference.cancelled"
    MODEL_INSTALL_REQUESTED = "model.install_requested"
    MODEL_INSTALL_CANCELLED = "model.install_cancelled"
    IMAGE_UPLOADED = "image.uploaded"
    IMAGE_DELETED = "image.deleted"
    RESEARCH_GENERATED = "research.generated"
    PLAN_CHANGED = "workspace.plan_changed"
    KEY_CREATED = "key.created"
    RECEIPT_ISSUED = "receipt.issued"


class AuditOutcome(StrEnum):
    ACCEPTED = "accepted"  # the action was taken (or queued, for inference and installs)
    DENIED = "denied"  # refused by the plan or a quota
    DONE = "done"


class InputRef(BaseModel):
    """One input of an action, by reference: `prompt`, `note:<id>`, `job:<id>`, `image:<id>`,
    `model:<id>`, `key:<id>` ... with the sha256 of its content where it has one."""

    ref: str = Field(
        max_length=200,
        description="The input: prompt, note:<id>, job:<id>, image:<id>, model:<id>, key:<id> ...",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the input's content, where it has one (never the content itself).",
    )


class AuditRecorded(BaseModel):
    """The payload of audit.recorded.v1 (key: workspace_id)."""

    model_config = ConfigDict(protected_namespaces=())

    audit_id: uuid.UUID = Field(description="Stable id: a republished record is kept once.")
    workspace_id: str = Field(description="Workspace acted on; also the Kafka key.")
    user_id: str = Field(description="Who acted; `system:<process>` for automatic actions.")
    action: AuditAction = Field(description="What was done.")
    model_id: str | None = Field(default=None, description="The model involved, if any.")
    inputs_refs: list[InputRef] = Field(
        default_factory=list, description="The inputs of the action, by reference and hash."
    )
    outcome: AuditOutcome = Field(description="accepted, denied or done.")
    reason: str | None = Field(
        default=None, max_length=500, description="Why it was denied, or what caused it."
    )
    created_at: datetime = Field(description="When the action happened (UTC).")
    correlation_id: str = Field(description="The request the action belongs to.")
