"""The image sweeper (`studio-ai images sweep`): deletes consented images whose retention ended
and unconsented ones that no job uses any more, and audits each deletion.

Each deleted image gets one image.deleted record with the stable id of its deletion, so a
record that another deleter (the job projector, the caller) already published is kept once.
A deletion stays marked on its tombstone until its record is published, so a sweep that
stopped in between is audited by the next one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.images import ImageTombstone
from studio_ai.producers.operator_session import operator_session
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.runtime.broker import EventPublisher, ensure_topics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.envelope import utc_now
from studio_ai.schemas.topics import AUDIT_RECORDED

log = logging.getLogger(__name__)

SWEEPER = "system:image-sweeper"


async def sweep_images(
    store: MongoStore, publisher: EventPublisher, *, now: datetime, unused_grace: timedelta
) -> list[ImageTombstone]:
    """One sweep as of `now`; returns what was deleted, and audits it, with any deletion an
    earlier sweep made but did not get to audit."""
    await store.images.sweep_expired(now, unused_before=now - unused_grace)
    tombstones = await store.images.sweep_audits_pending()
    correlation_id = str(uuid.uuid4())
    for tombstone in tombstones:
        await publish_audit(
            publisher,
            workspace_id=tombstone.workspace_id,
            user_id=SWEEPER,
            action=AuditAction.IMAGE_DELETED,
            outcome=AuditOutcome.DONE,
            correlation_id=correlation_id,
            inputs_refs=[InputRef(ref=f"image:{tombstone.image_id}")],
            reason=tombstone.reason,
            audit_id=audit_id_for(AuditAction.IMAGE_DELETED, tombstone.image_id),
            created_at=tombstone.deleted_at,
        )
    await store.images.sweep_audited(t.image_id for t in tombstones)
    if tombstones:
        log.info(
            "images deleted by the sweeper",
            extra={"images": [t.image_id for t in tombstones], "as_of": now.isoformat()},
        )
    return tombstones


async def run_sweeper(
    settings: Settings,
    *,
    every_s: float | None,
    now: datetime | None,
    report: Callable[[str], None],
) -> None:
    """Sweep once (as of `now`, default the current time) or every `every_s` seconds."""
    await ensure_topics(settings, [AUDIT_RECORDED])
    grace = timedelta(hours=settings.image_unused_grace_hours)
    async with operator_session(settings, client_id="studio-ai-image-sweeper") as session:
        while True:
            as_of = now or utc_now()
            deleted = await sweep_images(
                session.store, session.publisher, now=as_of, unused_grace=grace
            )
            report(f"{as_of.isoformat()} deleted {len(deleted)} image(s)")
            if every_s is None:
                return
            await asyncio.sleep(every_s)
