"""Workspace plan assignments (`workspace_plans`, one document per workspace).

An assignment is written only by operators (CLI or the operator API), one at a time, so a
whole-document replace is enough: the last operator's choice wins.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from studio_ai.schemas.plans import WorkspacePlan

Document = dict[str, Any]


class PlanStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._plans = db.workspace_plans

    async def get(self, workspace_id: str) -> WorkspacePlan | None:
        doc = await self._plans.find_one({"_id": workspace_id})
        if doc is None:
            return None
        doc.pop("_id")
        return WorkspacePlan.model_validate(doc)

    async def put(self, assignment: WorkspacePlan) -> None:
        doc = {"_id": assignment.workspace_id, **assignment.model_dump(mode="python")}
        # Quota names are enum members in the model; the store keeps their plain values.
        doc["overrides"] = assignment.overrides.model_dump(mode="json")
        await self._plans.replace_one({"_id": assignment.workspace_id}, doc, upsert=True)
