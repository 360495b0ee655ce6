"""Research sessions in the store: sessions, their attached sources and their insights.

One document per session, per attached source (`<session_id>|<source_id>`) and per insight
(`<job_id>:<kind>`), each written by a unique insert or a single-document delete, so that
concurrent attaches never lose one another (a filtered update is not atomic on FerretDB
1.24), attaching a source twice keeps one, and a replayed insight is kept once.
Every read names the workspace: a session of another workspace is never found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from studio_ai.schemas.research import Insight, InsightsGenerated, ResearchSource

Document = dict[str, Any]


def _source_key(session_id: str, source_id: str) -> str:
    return f"{session_id}|{source_id}"


class ResearchStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db.research_sessions.create_index(
            [("workspace_id", ASCENDING), ("created_at", DESCENDING)]
        )
        await self.db.research_sources.create_index([("session_id", ASCENDING)])
        await self.db.research_insights.create_index([("session_id", ASCENDING)])

    # --- sessions ---------------------------------------------------------------------------

    async def insert_session(self, session: Document) -> None:
        await self.db.research_sessions.insert_one(session)

    async def get_session(self, workspace_id: str, session_id: str) -> Document | None:
        return await self.db.research_sessions.find_one(
            {"_id": session_id, "workspace_id": workspace_id}
        )

    async def list_sessions(
        self, workspace_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[Document]:
        """Newest first; `before` is the (created_at, id) the previous page ended with."""
        found: Document = {"workspace_id": workspace_id}
        if before is not None:
            created_at, session_id = before
            found["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$lt": session_id}},
            ]
        cursor = (
            self.db.research_sessions.find(found)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        result = await self.db.research_sessions.delete_one(
            {"_id": session_id, "workspace_id": workspace_id}
        )
        if result.deleted_count:
            # The session is gone first, so nothing reads these leftovers while they go.
            await self.db.research_sources.delete_many({"session_id": session_id})
            await self.db.research_insights.delete_many({"session_id": session_id})
        return bool(result.deleted_count)

    # --- attached sources -------------------------------------------------------------------

    async def attach(
        self,
        session_id: str,
        source: ResearchSource,
        *,
        workspace_id: str,
        attached_by: str,
        attached_at: datetime,
    ) -> bool:
        """False when the session already holds the source (it stays attached once)."""
        try:
            await self.db.research_sources.insert_one(
                {
                    "_id": _source_key(session_id, source.source_id),
                    "session_id": session_id,
                    "workspace_id": workspace_id,
                    "source_id": source.source_id,
                    "attached_by": attached_by,
                    "attached_at": attached_at,
                    "source": source.model_dump(mode="json"),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def detach(self, workspace_id: str, session_id: str, source_id: str) -> bool:
        result = await self.db.research_sources.delete_one(
            {"_id": _source_key(session_id, source_id), "workspace_id": workspace_id}
        )
        return bool(result.deleted_count)

    async def sources(self, workspace_id: str, session_id: str) -> list[Document]:
        """The session's attached sources, in the order they were attached."""
        cursor = self.db.research_sources.find(
            {"session_id": session_id, "workspace_id": workspace_id}
        ).sort([("attached_at", ASCENDING), ("_id", ASCENDING)])
        return await cursor.to_list()

    # --- insights ---------------------------------------------------------------------------

    async def insert_insights(
        self, workspace_id: str, generated: InsightsGenerated, *, event_id: str
    ) -> int:
        """Keep each insight of a job once; returns how many were new."""
        added = 0
        common = {
            "session_id": generated.session_id,
            "workspace_id": workspace_id,
            "job_id": str(generated.job_id),
            "generator": generated.generator.value,
            "engine": generated.engine.value if generated.engine else None,
            "model_id": generated.model_id,
            "fallback_reason": generated.fallback_reason,
            "generated_at": generated.generated_at,
            "event_id": event_id,
            "cited_sources": [s.model_dump(mode="json") for s in generated.cited_sources],
        }
        for position, insight in enumerate(generated.insights):
            try:
                await self.db.research_insights.insert_one(
                    {
                        "_id": f"{generated.job_id}:{insight.kind.value}",
                        **common,
                        "position": position,
                        "insight": insight.model_dump(mode="json"),
                    }
                )
                added += 1
            except DuplicateKeyError:
                continue
        return added

    async def insights(self, workspace_id: str, session_id: str) -> list[Document]:
        """The session's insights, oldest job first, in the order each job asked for them."""
        cursor = self.db.research_insights.find(
            {"session_id": session_id, "workspace_id": workspace_id}
        ).sort([("generated_at", ASCENDING), ("job_id", ASCENDING), ("position", ASCENDING)])
        return await cursor.to_list()


def insight_of(doc: Document) -> Insight:
    return Insight.model_validate(doc["insight"])


def source_of(doc: Document) -> ResearchSource:
    return ResearchSource.model_validate(doc["source"])
