"""The envelope every event travels in, and the rules for deriving event ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

PayloadT = TypeVar("PayloadT", bound=BaseModel)

# Event ids of derived events are uuid5(parent event id, event type + discriminator), so a
# consumer that reprocesses a message after a crash publishes the very same event id again and
# every downstream ledger sees a duplicate instead of a new fact.
_DERIVED_NAMESPACE = uuid.UUID("6f0d6a86-6a5f-4c57-9d3e-2b9c1d6e7a10")


def derived_event_id(
    parent_event_id: uuid.UUID, event_type: str, discriminator: str = ""
) -> uuid.UUID:
    """The id of the event that `parent_event_id` causes, stable across redeliveries."""
    return uuid.uuid5(_DERIVED_NAMESPACE, f"{parent_event_id}:{event_type}:{discriminator}")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[PayloadT]):
    """Metadata common to every event; `payload` holds the event's own fields."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique id of this event.")
    event_type: str = Field(description="Dotted event name, e.g. models.installed.")
    schema_version: int = Field(default=1, description="Version of the payload schema.")
    occurred_at: datetime = Field(default_factory=utc_now, description="When it happened (UTC).")
    correlation_id: str = Field(
        description="One id per user request, carried through the whole chain of events."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="event_id of the event that caused this one."
    )
    workspace_id: str = Field(description="Workspace the event belongs to.")
    user_id: str = Field(description="User who started the chain.")
    payload: PayloadT = Field(description="The event's own fields.")

    def caused(
        self,
        event_type: str,
        payload: BaseModel,
        *,
        discriminator: str = "",
        event_id: uuid.UUID | None = None,
    ) -> Envelope[BaseModel]:
        """A follow-up event in the same chain, with a deterministic event id (derived from
        this one's, unless the caller has a stable id of its own)."""
        return Envelope[BaseModel](
            event_id=event_id or derived_event_id(self.event_id, event_type, discriminator),
            event_type=event_type,
            correlation_id=self.correlation_id,
            causation_id=self.event_id,
            workspace_id=self.workspace_id,
            user_id=self.user_id,
            payload=payload,
        )
