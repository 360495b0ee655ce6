"""Envelopes derive stable ids for follow-up events; dead-letter reasons are readable."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import BaseModel, ValidationError

from studio_ai.domain.errors import NotFound
from studio_ai.runtime.delivery import failure_reason
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.models import DownloadFailureCode, ModelDownloadFailed


def failed() -> ModelDownloadFailed:
    return ModelDownloadFailed(
        download_id=uuid.uuid4(),
        model_id="m",
        code=DownloadFailureCode.DISK_FULL,
        reason="full",
        retryable=True,
    )


def test_follow_up_events_get_the_same_id_on_redelivery() -> None:
    parent = Envelope[ModelDownloadFailed](
        event_type="models.x", correlation_id="c", workspace_id="w", user_id="u", payload=failed()
    )
    a = parent.caused("models.y", failed())
    b = parent.caused("models.y", failed())
    assert a.event_id == b.event_id
    assert a.causation_id == parent.event_id and a.correlation_id == "c"
    assert parent.caused("models.z", failed()).event_id != a.event_id


def test_payload_survives_serialisation_through_a_base_typed_envelope() -> None:
    event = Envelope[BaseModel](
        event_type="t", correlation_id="c", workspace_id="w", user_id="u", payload=failed()
    )
    body = event.model_dump(mode="json", serialize_as_any=True)
    assert body["payload"]["reason"] == "full"


def test_failure_reasons_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError) as invalid:
        ModelDownloadFailed.model_validate({"model_id": 1})
    assert "does not match the event schema" in failure_reason(invalid.value)
    assert "download_id" in failure_reason(invalid.value)
    with pytest.raises(json.JSONDecodeError) as not_json:
        json.loads("{nope")
    assert "not JSON" in failure_reason(not_json.value)
    message = "model 'x' is not in the catalog"
    assert failure_reason(NotFound(message)) == message
