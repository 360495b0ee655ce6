"""Server-sent events that follow a projection by polling it: a `progress` event whenever the
view changes, one final `status` event, and keep-alive comments while nothing changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

View = TypeVar("View", bound=BaseModel)

_KEEP_ALIVE_S = 15.0


def follow(
    first: View,
    reload: Callable[[], Awaitable[View]],
    is_final: Callable[[View], bool],
    poll_s: float,
) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        view, last_sent, idle = first, "", 0.0
        while True:
            body = view.model_dump_json()
            if body != last_sent:
                kind = "status" if is_final(view) else "progress"
                yield f"event: {kind}\ndata: {body}\n\n"
                last_sent, idle = body, 0.0
                if kind == "status":
                    return
            elif idle >= _KEEP_ALIVE_S:
                yield ": keep-alive\n\n"
                idle = 0.0
            await asyncio.sleep(poll_s)
            idle += poll_s
            view = await reload()

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
