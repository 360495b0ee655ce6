"""Job admission behind POST /ai/generate-text and /ai/generate-multimodal.

Nothing reaches a worker unless the whole job is valid: the prompt, the model and modality,
every context and image ref (all scoped to the caller's workspace), the workspace's plan
(403) and its quotas (a reservation, or 429). The job is recorded as `queued` and audited
before its event is published, so a GET right after the 202 finds it and every queued job
has its audit record.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from studio_ai.domain.errors import InvalidInput, NotFound
from studio_ai.domain.fallback import (
    EXTRACTIVE_MODEL_ID,
    Resolution,
    check_fits,
    resolve_model,
)
from studio_ai.domain.identity import Caller
from studio_ai.domain.inference_job import (
    admitted_job,
    apply_failed,
    inputs_of,
)
from studio_ai.domain.model_ids import validate_model_id
from studio_ai.domain.model_installation import ModelInstallation
from studio_ai.domain.plans import NotInPlan, check_features, model_allowed
from studio_ai.domain.quotas import Metering, Outcome, token_estimate
from studio_ai.domain.task_prompts import build_messages
from studio_ai.producers.gateway.context import GatewayState, HttpProblem, cached
from studio_ai.producers.governance import release, reserve, workspace_plan
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.runtime.broker import ensure_topics
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    ContextDocument,
    EngineName,
    EngineTarget,
    ImageInput,
    InferenceFailed,
    InferenceRequested,
    JobError,
    JobTimings,
    TextTask,
)
from studio_ai.schemas.inference_api import (
    GenerateMultimodalRequest,
    GenerateTextRequest,
    JobAccepted,
    JobLinks,
)
from studio_ai.schemas.models import CatalogEntry, Modality, ModelTask, PricingBasis
from studio_ai.schemas.research import InsightsRequested
from studio_ai.schemas.topics import TopicSpec, inference_requested

log = logging.getLogger(__name__)

_JOB_REF = re.compile(r"^job:([0-9a-f-]{36})$")
_NOTE_REF = re.compile(r"^note:(note_[0-9a-f]{32})$")
_LIVE_CACHE_S = 1.0
_READ_CACHE_S = 1.0  # catalog entries and default models, per workspace


async def live_pools(state: GatewayState) -> set[str]:
    """Pools with a worker that beat recently (cached for a second per gateway process)."""

    def load() -> Awaitable[set[str]]:
        since = datetime.now(UTC) - timedelta(seconds=state.settings.worker_live_ttl_s)
        return state.store.jobs.live_pools(since)

    return await cached(state, "live_pools", _LIVE_CACHE_S, load)


async def catalog_for(state: GatewayState, caller: Caller) -> list[CatalogEntry]:
    own = await cached(
        state,
        f"catalog:{caller.workspace_id}",
        _READ_CACHE_S,
        lambda: state.store.list_catalog_entries(caller.workspace_id),
    )
    return [*state.catalog, *own]


async def default_model(
    state: GatewayState, caller: Caller, task: ModelTask, catalog: list[CatalogEntry]
) -> str | None:
    defaults = await cached(
        state,
        f"defaults:{caller.workspace_id}",
        _READ_CACHE_S,
        lambda: state.store.jobs.default_models(caller.workspace_id),
    )
    chosen = defaults.get(task)
    if chosen is not None:
        return chosen
    return next((e.model_id for e in catalog if e.task is task and e.default), None)


def check_known(model_id: str, task: ModelTask, catalog: list[CatalogEntry]) -> None:
    if model_id == EXTRACTIVE_MODEL_ID:
        return
    validate_model_id(model_id)
    if not any(e.model_id == model_id for e in catalog):
        names = ", ".join(e.model_id for e in catalog if e.task is task) or "none"
        raise NotFound(
            f"model {model_id!r} is not in this workspace's catalog; GET /ai/models?task="
            f"{task.value} lists the models for the task ({names})"
        )
    check_fits(model_id, task, catalog)


def metering_for(
    state: GatewayState, resolution: Resolution, entry: CatalogEntry | None
) -> Metering:
    """What a job on the resolved model draws on: no GPU-seconds on the CPU's extractive
    engine, no tokens there or on a model the operator's catalog prices as free."""
    on_cpu = resolution.resolved_model_id == EXTRACTIVE_MODEL_ID
    # Only the operator's catalog may declare a model free: a workspace admin's own entry
    # saying so would switch its token quota off.
    free = on_cpu or (
        entry is not None
        and entry.pricing is not None
        and entry.pricing.basis is PricingBasis.FREE
        and entry in state.catalog
    )
    return Metering(tokens=not free, gpu=not on_cpu)


def engine_target(resolution: Resolution, inst: ModelInstallation | None) -> EngineTarget:
    if resolution.resolved_model_id == EXTRACTIVE_MODEL_ID or inst is None or not inst.runtime:
        return EngineTarget(engine=EngineName.EXTRACTIVE)
    runtime = inst.runtime
    return EngineTarget(
        engine=EngineName(runtime.engine.value),
        local_path=inst.local_path,
        endpoint_url=runtime.endpoint_url,
        served_model=runtime.served_model,
        revision_sha=inst.revision_sha,
    )


async def _resolve_context(
    state: GatewayState, caller: Caller, refs: list[str]
) -> list[ContextDocument]:
    documents: list[ContextDocument] = []
    for ref in dict.fromkeys(refs):
        if match := _JOB_REF.match(ref):
            try:
                job_id = uuid.UUID(match.group(1))
            except ValueError:
                job_id = None
            job = await state.store.jobs.get_job(job_id, caller.workspace_id) if job_id else None
            if job is None:
                raise NotFound(f"context ref {ref!r}: no such job in this workspace")
            if job.result is None:
                raise InvalidInput(
                    f"context ref {ref!r}: that job is {job.status.value} and has no output "
                    "to read; use a completed job"
                )
            documents.append(ContextDocument(ref=ref, text=job.result.text))
        elif match := _NOTE_REF.match(ref):
            note = await state.store.jobs.get_note(caller.workspace_id, match.group(1))
            if note is None:
                raise NotFound(f"context ref {ref!r}: no such note in this workspace")
            documents.append(ContextDocument(ref=ref, text=note["text"]))
        else:
            raise InvalidInput(
                f"context ref {ref!r} is not valid: use job:<job_id> (an earlier job's output) "
                "or note:<note_id> (text saved with POST /notes)"
            )
    total = sum(len(d.text) for d in documents)
    if total > state.settings.context_max_chars:
        raise InvalidInput(
            f"the context refs hold {total} characters; the limit is "
            f"{state.settings.context_max_chars}: pass fewer or shorter refs"
        )
    return documents


async def _resolve_images(state: GatewayState, caller: Caller, refs: list[str]) -> list[ImageInput]:
    from studio_ai.domain.images import validate_image_ref

    images: list[ImageInput] = []
    for ref in dict.fromkeys(refs):
        image_id = validate_image_ref(ref)
        meta = await state.store.images.get_meta(caller.workspace_id, image_id)
        if meta is None:
            tombstone = await state.store.images.get_tombstone(caller.workspace_id, image_id)
            if tombstone is not None:
                raise HttpProblem(
                    410,
                    "image_gone",
                    f"image {image_id} was deleted at {tombstone.deleted_at.isoformat()} "
                    f"({tombstone.reason}); upload it again with POST /images",
                )
            raise NotFound(f"image ref {ref!r}: no such image in this workspace")
        images.append(ImageInput(image_id=image_id, sha256=meta.sha256, media_type=meta.media_type))
    return images


def _check_prompt(state: GatewayState, prompt: str) -> None:
    if len(prompt) > state.settings.prompt_max_chars:
        raise InvalidInput(
            f"the prompt has {len(prompt)} characters; the limit is "
            f"{state.settings.prompt_max_chars}: shorten it or pass the material as context_refs"
        )


def _max_tokens(state: GatewayState, asked: int | None) -> int:
    limit = state.settings.max_tokens_limit
    if asked is not None and asked > limit:
        raise InvalidInput(f"max_tokens {asked} is above this deployment's limit of {limit}")
    return asked or min(state.settings.default_max_tokens, limit)


async def submit_text(
    state: GatewayState, caller: Caller, body: GenerateTextRequest, correlation_id: str
) -> JobAccepted:
    _check_prompt(state, body.prompt)
    max_tokens = _max_tokens(state, body.max_tokens)
    catalog = await catalog_for(state, caller)
    check_known(body.model_id, ModelTask.FAST_TEXT, catalog)
    context = await _resolve_context(state, caller, body.context_refs)
    build_messages(body.task, body.prompt, [d.text for d in context])  # raises what's missing
    return await _admit(
        state,
        caller,
        correlation_id,
        catalog=catalog,
        task=ModelTask.FAST_TEXT,
        text_task=body.task,
        model_id=body.model_id,
        prompt=body.prompt,
        context=context,
        images=[],
        max_tokens=max_tokens,
        temperature=body.temperature,
        context_refs=list(dict.fromkeys(body.context_refs)),
    )


async def submit_multimodal(
    state: GatewayState, caller: Caller, body: GenerateMultimodalRequest, correlation_id: str
) -> JobAccepted:
    _check_prompt(state, body.prompt)
    if not body.prompt.strip():
        raise InvalidInput("the prompt is empty: say what to do with the images")
    max_tokens = _max_tokens(state, body.max_tokens)
    catalog = await catalog_for(state, caller)
    check_known(body.model_id, ModelTask.IMAGE_TEXT, catalog)
    images = await _resolve_images(state, caller, body.image_refs)
    return await _admit(
        state,
        caller,
        correlation_id,
        catalog=catalog,
        task=ModelTask.IMAGE_TEXT,
        text_task=TextTask.FREE,
        model_id=body.model_id,
        prompt=body.prompt,
        context=[],
        images=images,
        max_tokens=max_tokens,
        temperature=body.temperature,
        image_refs=[i.image_id for i in images],
    )


async def _admit(
    state: GatewayState,
    caller: Caller,
    correlation_id: str,
    *,
    catalog: list[CatalogEntry],
    task: ModelTask,
    text_task: TextTask,
    model_id: str,
    prompt: str,
    context: list[ContextDocument],
    images: list[ImageInput],
    max_tokens: int,
    temperature: float | None,
    context_refs: list[str] | None = None,
    image_refs: list[str] | None = None,
) -> JobAccepted:
    plan = await workspace_plan(state, caller.workspace_id)
    modality = Modality.MULTIMODAL if task is ModelTask.IMAGE_TEXT else Modality.TEXT
    job_id = uuid.uuid4()
    inputs = inputs_of(prompt, context, images)
    async with audited_denial(state, caller, correlation_id, model_id, inputs):
        check_features(
            plan,
            state.plans,
            workspace_id=caller.workspace_id,
            text_task=text_task,
            modality=modality,
            model_id=model_id,
        )
        # Fallback only ever lands on a model the plan allows.
        installations = {
            mid: inst
            for mid, inst in (await state.store.list_installations(caller.workspace_id)).items()
            if model_allowed(plan, mid)
        }
        default_model_id = await default_model(state, caller, task, catalog)
        resolution = resolve_model(
            model_id,
            task,
            catalog=catalog,
            installations=installations,
            live_pools=await live_pools(state),
            default_model_id=default_model_id
            if default_model_id and model_allowed(plan, default_model_id)
            else None,
            allow_extractive=model_allowed(plan, EXTRACTIVE_MODEL_ID),
        )
        entry = next((e for e in catalog if e.model_id == resolution.resolved_model_id), None)
        quota = await reserve(
            state,
            caller,
            plan,
            job_id,
            tokens=token_estimate(
                prompt_chars=len(prompt),
                context_chars=sum(len(d.text) for d in context),
                images=len(images),
                max_tokens=max_tokens,
            ),
            metering=metering_for(state, resolution, entry),
        )
    try:
        payload = InferenceRequested(
            job_id=job_id,
            task=task,
            text_task=text_task,
            prompt=prompt,
            context=context,
            images=images,
            max_tokens=max_tokens,
            temperature=temperature,
            requested_model_id=model_id,
            model_id=resolution.resolved_model_id,
            fallback_reason=resolution.fallback_reason,
            pool=resolution.pool,
            target=engine_target(resolution, installations.get(resolution.resolved_model_id)),
            pricing=entry.pricing if entry else None,
            queued_at=datetime.now(UTC),
            quota=quota,
        )
        event = Envelope[InferenceRequested](
            event_type="ai.inference-requested",
            correlation_id=correlation_id,
            workspace_id=caller.workspace_id,
            user_id=caller.user_id,
            occurred_at=payload.queued_at,
            payload=payload,
        )
        job = admitted_job(
            payload,
            workspace_id=caller.workspace_id,
            user_id=caller.user_id,
            context_refs=context_refs or [],
            image_refs=image_refs or [],
        )
        for image in images:
            recorded = await state.store.images.record_use(
                image.image_id, str(payload.job_id), workspace_id=caller.workspace_id
            )
            if not recorded:
                await state.store.images.end_use(str(payload.job_id), [i.image_id for i in images])
                await release(state.store, job_id, Outcome.FAILED)
                raise HttpProblem(
                    410,
                    "image_gone",
                    f"image {image.image_id} was deleted while the job was being admitted; upload "
                    "it again with POST /images",
                )
        topic = inference_requested(resolution.pool)
        try:
            await state.store.jobs.insert_job(job)
        except Exception:
            await _end_image_uses(state, payload)
            await release(state.store, job_id, Outcome.FAILED)
            raise
        await queue_admitted(
            state,
            caller,
            correlation_id,
            event,
            topic=topic,
            key=str(payload.job_id),
            model_id=resolution.resolved_model_id,
            inputs=[InputRef(ref=f"job:{job_id}"), *inputs],
            reason=resolution.fallback_reason,
            action=AuditAction.INFERENCE_REQUESTED,
            on_failure=lambda: _end_image_uses(state, payload),
        )
    except BaseException:
        # Whatever stopped the job from being queued, its reservation goes back (once per job:
        # the paths above that already gave it back make this a no-op).
        with contextlib.suppress(Exception):
            await release(state.store, job_id, Outcome.FAILED)
        raise
    links = f"/ai/jobs/{payload.job_id}"
    return JobAccepted(
        job_id=payload.job_id,
        requested_model_id=model_id,
        resolved_model_id=resolution.resolved_model_id,
        fallback_reason=resolution.fallback_reason,
        pool=resolution.pool,
        engine=payload.target.engine,
        links=JobLinks(self=links, events=f"{links}/events", cancel=f"{links}/cancel"),
    )


async def queue_admitted(
    state: GatewayState,
    caller: Caller,
    correlation_id: str,
    event: Envelope[InferenceRequested] | Envelope[InsightsRequested],
    *,
    topic: TopicSpec,
    key: str,
    model_id: str,
    inputs: list[InputRef],
    reason: str | None,
    action: AuditAction,
    on_failure: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Audit an admitted job as accepted, then publish its request. If either fails, the job
    ends failed (`not_queued`), `on_failure` undoes what admission did, its reservation goes
    back, and the caller gets 503."""
    job_id = event.payload.job_id
    try:
        await audit_request(
            state,
            caller,
            correlation_id,
            AuditOutcome.ACCEPTED,
            model_id=model_id,
            inputs=inputs,
            reason=reason,
            audit_id=audit_id_for(action, str(job_id)),
            action=action,
        )
        if topic.name not in state.known_topics:
            await ensure_topics(state.settings, [topic])
            state.known_topics.add(topic.name)
        await state.publisher.publish(topic, event, key=key)
    except Exception as exc:
        log.exception("could not publish the job's request", extra={"topic": topic.name})
        await fail_unqueued(state, event, type(exc).__name__)
        if on_failure is not None:
            await on_failure()
        await release(state.store, job_id, Outcome.FAILED)
        raise HttpProblem(
            503,
            "broker_unavailable",
            "the job could not be queued (the event broker did not accept it); try again",
            {"Retry-After": "5"},
        ) from exc


@asynccontextmanager
async def audited_denial(
    state: GatewayState,
    caller: Caller,
    correlation_id: str,
    model_id: str,
    inputs: list[InputRef],
    *,
    action: AuditAction = AuditAction.INFERENCE_REQUESTED,
) -> AsyncIterator[None]:
    """A request the plan or a quota refuses is audited as denied, with the reason."""
    try:
        yield
    except (NotInPlan, HttpProblem) as exc:
        if isinstance(exc, HttpProblem) and exc.status != 429:
            raise
        reason = exc.message if isinstance(exc, NotInPlan) else exc.detail
        try:
            await audit_request(
                state,
                caller,
                correlation_id,
                AuditOutcome.DENIED,
                model_id=model_id,
                inputs=inputs,
                reason=reason,
                action=action,
            )
        except Exception:
            # The refusal stands either way; a broker outage must not turn it into a 500.
            log.exception("could not publish the audit record of a refused job")
        raise


async def audit_request(
    state: GatewayState,
    caller: Caller,
    correlation_id: str,
    outcome: AuditOutcome,
    *,
    model_id: str,
    inputs: list[InputRef],
    reason: str | None,
    audit_id: uuid.UUID | None = None,
    action: AuditAction = AuditAction.INFERENCE_REQUESTED,
) -> None:
    await publish_audit(
        state.publisher,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        action=action,
        outcome=outcome,
        correlation_id=correlation_id,
        model_id=model_id,
        inputs_refs=inputs,
        reason=reason,
        audit_id=audit_id,
    )


async def fail_unqueued(
    state: GatewayState,
    event: Envelope[InferenceRequested] | Envelope[InsightsRequested],
    cause: str,
) -> None:
    request = event.payload
    failed = InferenceFailed(
        job_id=request.job_id,
        error=JobError(
            code="not_queued",
            message=f"the job could not be queued ({cause}); submit it again",
            retryable=True,
        ),
        timings=JobTimings(queued_at=request.queued_at, finished_at=datetime.now(UTC)),
        model_id=request.model_id,
        engine=request.target.engine,
        pool=request.pool,
        worker_id="gateway",
    )
    envelope = event.caused("ai.inference-failed", failed)
    # Recorded as the job's one outcome too: if the broker did take the request after all (an
    # ambiguous timeout), the worker republishes this failure instead of running the job.
    await state.store.jobs.claim_outcome(
        request.job_id,
        {
            "kind": "failed",
            "workspace_id": event.workspace_id,
            "terminal": envelope.model_dump_json(serialize_as_any=True),
            "worker_id": "gateway",
            "recorded_at": datetime.now(UTC),
        },
    )
    await state.store.jobs.update_job(
        request.job_id,
        lambda job: apply_failed(
            job, failed, occurred_at=envelope.occurred_at, event_id=envelope.event_id
        ),
    )


async def _end_image_uses(state: GatewayState, request: InferenceRequested) -> None:
    """A job that never got queued stops using its images. They are kept, even without
    consent, so that submitting the job again works; `images sweep` deletes (and audits) an
    unconsented image no job uses after STUDIO_IMAGE_UNUSED_GRACE_HOURS."""
    if request.images:
        await state.store.images.end_use(str(request.job_id), [i.image_id for i in request.images])
