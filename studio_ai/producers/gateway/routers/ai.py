"""/ai: submit inference jobs, follow them (GET, server-sent events), cancel them; the model
selector with availability; per-model latency, throughput and cost."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from studio_ai.domain.latency_stats import ModelStats
from studio_ai.producers import inference_commands, job_admission
from studio_ai.producers.gateway import sse
from studio_ai.producers.gateway.context import AdminCaller, AnyCaller, State
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.inference_api import (
    CancelAccepted,
    DefaultModelUpdate,
    GenerateMultimodalRequest,
    GenerateTextRequest,
    JobAccepted,
    JobList,
    JobView,
    SelectorList,
)
from studio_ai.schemas.models import ModelTask

router = APIRouter(prefix="/ai", tags=["ai: inference jobs"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key."},
    404: {"model": ErrorBody, "description": "No such job, model, image or ref in the workspace."},
    409: {
        "model": ErrorBody,
        "description": "No installed model can take the job, or the job has ended already.",
    },
    410: {"model": ErrorBody, "description": "An image ref whose image was deleted."},
    422: {"model": ErrorBody, "description": "Invalid input; the detail says what to change."},
    503: {"model": ErrorBody, "description": "The broker or store is not answering; try again."},
}


@router.post("/generate-text", response_model=JobAccepted, status_code=202, responses=ERRORS)
async def generate_text(
    body: GenerateTextRequest, request: Request, state: State, caller: AnyCaller
) -> JobAccepted:
    """Queue a text job (summary, bullets, qa or free) on a fast text model."""
    return await job_admission.submit_text(state, caller, body, request.state.correlation_id)


@router.post("/generate-multimodal", response_model=JobAccepted, status_code=202, responses=ERRORS)
async def generate_multimodal(
    body: GenerateMultimodalRequest, request: Request, state: State, caller: AnyCaller
) -> JobAccepted:
    """Queue an image + text job on an image-text model (images from POST /images)."""
    return await job_admission.submit_multimodal(state, caller, body, request.state.correlation_id)


@router.get("/jobs", response_model=JobList, responses=ERRORS)
async def list_jobs(
    state: State, caller: AnyCaller, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> JobList:
    """The workspace's jobs, newest first."""
    return JobList(jobs=await inference_commands.list_jobs(state, caller, limit))


@router.get("/jobs/{job_id}", response_model=JobView, responses=ERRORS)
async def get_job(job_id: str, state: State, caller: AnyCaller) -> JobView:
    """Status, progress, result or error, timings, usage, and the model and engine used."""
    return await inference_commands.get_job(state, caller, job_id)


@router.post(
    "/jobs/{job_id}/cancel", response_model=CancelAccepted, status_code=202, responses=ERRORS
)
async def cancel_job(
    job_id: str, request: Request, state: State, caller: AnyCaller
) -> CancelAccepted:
    """Stop a queued or running job (and the engine's request)."""
    return await inference_commands.cancel_job(state, caller, job_id, request.state.correlation_id)


@router.get("/jobs/{job_id}/events", responses=ERRORS)
async def job_events(
    job_id: str,
    state: State,
    caller: AnyCaller,
    poll_s: Annotated[float, Query(ge=0.05, le=10)] = 0.25,
) -> StreamingResponse:
    """Server-sent events: `progress` while queued or running, then one `status` at the end."""
    return sse.follow(
        await inference_commands.get_job(state, caller, job_id),
        lambda: inference_commands.get_job(state, caller, job_id),
        lambda view: view.status.terminal,
        poll_s,
    )


@router.get("/models", response_model=SelectorList, responses=ERRORS)
async def models_for_task(
    state: State, caller: AnyCaller, task: ModelTask = ModelTask.FAST_TEXT
) -> SelectorList:
    """The models for a task with their availability and the default: the app's selector."""
    return await inference_commands.selector(state, caller, task)


@router.put("/models/default/{task}", response_model=SelectorList, responses=ERRORS)
async def set_default_model(
    task: ModelTask, body: DefaultModelUpdate, state: State, caller: AdminCaller
) -> SelectorList:
    """Set the workspace's default model for a task (admin)."""
    return await inference_commands.set_default(state, caller, task, body.model_id)


class ModelMetrics(BaseModel):
    window: str
    window_s: float
    models: list[ModelStats]


@router.get("/metrics/models", response_model=ModelMetrics, responses=ERRORS)
async def metrics_by_model(state: State, caller: AnyCaller, window: str = "1h") -> ModelMetrics:
    """p50/p95 latency, throughput and cost per model over the window (e.g. 15m, 1h, 7d)."""
    span, stats = await inference_commands.model_metrics(state, caller, window)
    return ModelMetrics(window=window, window_s=span.total_seconds(), models=stats)
