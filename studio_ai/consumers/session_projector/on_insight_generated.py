"""research.insight-generated.v1 -> research_insights (the insights of GET
/research/sessions/{id}).

Group: session-projector. Idempotency: one document per (job, kind), written by a unique
insert, so a redelivery or a replay of the topic from offset 0 keeps each insight once.
Insights of a session deleted meanwhile (or of another workspace) are dropped, with a log line.
"""

from __future__ import annotations

import logging

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.source_ids import parse_source_id
from studio_ai.runtime.delivery import PermanentError
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.research import InsightsGenerated

log = logging.getLogger(__name__)


async def project_insights(event: Envelope[InsightsGenerated], store: MongoStore) -> None:
    generated = event.payload
    for insight in generated.insights:
        for citation in insight.citations:
            try:
                parse_source_id(citation)
            except InvalidInput as exc:
                raise PermanentError(
                    f"insight {generated.job_id}:{insight.kind.value} cites {citation!r}, which "
                    f"is not a source id ({exc.message}); the insights worker must cite only "
                    "attached sources"
                ) from exc
    session = await store.research.get_session(event.workspace_id, generated.session_id)
    if session is None:
        log.info(
            "insights for a session that no longer exists were dropped",
            extra={"session_id": generated.session_id, "job_id": str(generated.job_id)},
        )
        return
    await store.research.insert_insights(
        event.workspace_id, generated, event_id=str(event.event_id)
    )
