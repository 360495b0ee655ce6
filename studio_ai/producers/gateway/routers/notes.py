"""/notes: text saved by a caller that jobs may read through the context ref note:<id>."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter

from studio_ai.domain.errors import InvalidInput
from studio_ai.producers.gateway.context import AnyCaller, State
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.inference_api import NoteCreate, NoteView

router = APIRouter(prefix="/notes", tags=["ai: inference jobs"])


@router.post(
    "",
    response_model=NoteView,
    status_code=201,
    responses={422: {"model": ErrorBody, "description": "Empty or too long."}},
)
async def create_note(body: NoteCreate, state: State, caller: AnyCaller) -> NoteView:
    """Save text (slide notes, a pasted abstract) for jobs to read as context."""
    if len(body.text) > state.settings.context_max_chars:
        raise InvalidInput(
            f"the note has {len(body.text)} characters; the limit is "
            f"{state.settings.context_max_chars}"
        )
    note_id = f"note_{uuid.uuid4().hex}"
    await state.store.jobs.insert_note(
        note_id,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        title=body.title,
        text=body.text,
        at=datetime.now(UTC),
    )
    return NoteView(note_id=note_id, ref=f"note:{note_id}", title=body.title, chars=len(body.text))
