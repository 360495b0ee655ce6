"""The FastAPI gateway: started with its broker (publisher) and store in the lifespan."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pymongo.errors import PyMongoError

from studio_ai.adapters.mongo_store import MongoStore, StoreConflict
from studio_ai.adapters.research.registry import build_providers
from studio_ai.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from studio_ai.domain.plans import NotInPlan
from studio_ai.producers.gateway.context import GatewayState, HttpProblem
from studio_ai.producers.gateway.routers import (
    admin_models,
    ai,
    audit,
    images,
    notes,
    receipts,
    research,
    workspaces,
)
from studio_ai.runtime.broker import EventPublisher, ensure_topics, new_broker
from studio_ai.runtime.catalog_files import load_catalog
from studio_ai.runtime.delivery import TransientError
from studio_ai.runtime.logging import correlation_id_var
from studio_ai.runtime.metrics import GatewayMetrics
from studio_ai.runtime.plans_file import load_plans
from studio_ai.runtime.settings import Settings

log = logging.getLogger(__name__)

_DOMAIN_STATUS = {InvalidInput: 422, NotFound: 404, Conflict: 409, NotInPlan: 403}


def create_app(settings: Settings) -> FastAPI:
    registry = CollectorRegistry()
    metrics = GatewayMetrics.create(registry)
    catalog = load_catalog(settings)
    plans = load_plans(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
        await store.ensure_indexes()
        await ensure_topics(settings)
        broker = new_broker(settings, client_id="studio-ai-gateway", registry=registry)
        await broker.start()
        app.state.gateway = GatewayState(
            settings=settings,
            store=store,
            publisher=EventPublisher(broker),
            catalog=catalog,
            plans=plans,
            research_providers=build_providers(settings),
        )
        try:
            yield
        finally:
            for provider in app.state.gateway.research_providers.values():
                await provider.aclose()
            await broker.stop()
            await store.close()

    app = FastAPI(
        title="studio-ai",
        version="0.1.0",
        description="The AI model layer of Databiomics Studio.",
        lifespan=lifespan,
    )
    app.include_router(admin_models.router)
    app.include_router(ai.router)
    app.include_router(notes.router)
    app.include_router(images.router)
    app.include_router(audit.router)
    app.include_router(receipts.router)
    app.include_router(workspaces.router)
    app.include_router(research.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.middleware("http")
    async def correlate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        supplied = request.headers.get("x-correlation-id", "")
        correlation_id = (
            supplied if 0 < len(supplied) <= 100 and supplied.isprintable() else str(uuid.uuid4())
        )
        request.state.correlation_id = correlation_id
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            correlation_id_var.reset(token)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if path != "/metrics":
            metrics.requests.labels(request.method, path, str(response.status_code)).inc()
            metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        response.headers["X-Correlation-ID"] = correlation_id
        return response

    @app.exception_handler(HttpProblem)
    async def http_problem(_: Request, exc: HttpProblem) -> JSONResponse:
        return JSONResponse(
            {"error": exc.error, "detail": exc.detail, **exc.extra},
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        status = next((s for cls, s in _DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
        return JSONResponse({"error": exc.code, "detail": exc.message}, status_code=status)

    @app.exception_handler(PyMongoError)
    async def store_down(_: Request, exc: PyMongoError) -> JSONResponse:
        log.error("store error", extra={"error": repr(exc)})
        return JSONResponse(
            {"error": "store_unavailable", "detail": "the store is not answering; try again"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(TransientError)
    async def busy(_: Request, exc: TransientError) -> JSONResponse:
        log.warning("transient failure answered 503", extra={"error": repr(exc)})
        return JSONResponse(
            {"error": "busy", "detail": f"{exc}; try again shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StoreConflict)
    async def store_conflict(_: Request, exc: StoreConflict) -> JSONResponse:
        return JSONResponse({"error": "busy", "detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)

    return app
