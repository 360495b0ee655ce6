"""Runs consumer groups until SIGINT/SIGTERM, with /metrics and /healthz on a side port."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from studio_ai.consumers.app import ConsumerApp, create_consumer_app
from studio_ai.runtime.broker import ensure_topics
from studio_ai.runtime.settings import Settings

log = logging.getLogger(__name__)


def _side_app(app: ConsumerApp) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        healthy = app.broker.running
        return JSONResponse(
            {"status": "ok" if healthy else "starting", "groups": app.groups},
            status_code=200 if healthy else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(app.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


async def run_consumers(
    settings: Settings,
    groups: list[str],
    *,
    metrics_port: int | None = None,
    group_ids: dict[str, str] | None = None,
) -> None:
    app = create_consumer_app(settings, groups, group_ids=group_ids)
    await app.store.ensure_indexes()
    await ensure_topics(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            _side_app(app),
            host=settings.metrics_host,
            port=metrics_port if metrics_port is not None else settings.metrics_port,
            log_level="warning",
            lifespan="off",
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.broker.start()
    log.info("consumers running", extra={"groups": groups})
    server_task = asyncio.create_task(server.serve())
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await app.broker.stop()
        await server_task
        await app.close()
