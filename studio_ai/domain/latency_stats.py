"""Latency, throughput and cost per model over a time window, from inference metrics records.

Pure logic: no I/O. The caller fetches the records (analytics.inference-metrics.v1) of the
window; `summarize_models` can also drop the ones that finished outside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.inference import EngineName, InferenceMetrics, JobStatus

COST_DECIMALS = 8


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (q in 0..100) of `values` by linear interpolation; None if empty.

    Linear interpolation between the two nearest ranks, as numpy's default and Excel's
    PERCENTILE.INC: the values sorted, the percentile lies at position q/100 * (n - 1).
    So percentile([10, 20, 30, 40], 50) is 25.0 and the 0th/100th are the min/max.
    """
    if not 0 <= q <= 100:
        raise InvalidInput(f"a percentile must be between 0 and 100, got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = q / 100 * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class ModelStats(BaseModel):
    """One model's jobs in the window: outcomes, latency percentiles, throughput and cost."""

    model_config = ConfigDict(protected_namespaces=())

    model_id: str
    engines: list[EngineName] = Field(description="Engines that ran its jobs, sorted.")
    jobs: int = Field(ge=0, description="Finished jobs of any outcome.")
    completed: int = Field(ge=0)
    failed: int = Field(ge=0)
    p50_ms: float | None = Field(description="Median admission-to-end time of completed jobs.")
    p95_ms: float | None = Field(description="95th percentile of the same.")
    p50_queue_ms: float | None = Field(description="Median queue time, of all jobs.")
    p95_queue_ms: float | None
    p50_ttft_ms: float | None = Field(description="Median time to first token, completed jobs.")
    p95_ttft_ms: float | None
    tokens_per_s: float = Field(
        ge=0, description="Throughput: completion tokens of all jobs / the window's seconds."
    )
    mean_job_tokens_per_s: float | None = Field(
        description="Mean of the completed jobs' own generation speed."
    )
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost: float = Field(ge=0, description="Sum of the jobs' cost, in cost_currency.")
    cost_currency: str
    cost_per_1k_completion_tokens: float | None = Field(
        description="cost / completion_tokens * 1000; None when no token was generated."
    )


def summarize_models(
    records: Iterable[InferenceMetrics], *, window_s: float, until: datetime | None = None
) -> list[ModelStats]:
    """Per-model stats of `records`, sorted by model id.

    `window_s` is the length of the window the records cover; throughput divides by it. With
    `until`, records that finished outside (until - window_s, until] are left out (`until`
    must be timezone-aware if the records' `finished_at` are). Latency and time-to-first-token
    percentiles count completed jobs only (a fast failure is not a fast answer); queue time,
    tokens and cost count every job.
    """
    if window_s <= 0:
        raise InvalidInput(f"window_s must be positive, got {window_s}")
    if until is not None:
        start = until - timedelta(seconds=window_s)
        records = (r for r in records if start < r.finished_at <= until)
    by_model: dict[str, list[InferenceMetrics]] = {}
    for record in records:
        by_model.setdefault(record.model_id, []).append(record)
    return [_model_stats(model_id, by_model[model_id], window_s) for model_id in sorted(by_model)]


def _model_stats(model_id: str, records: Sequence[InferenceMetrics], window_s: float) -> ModelStats:
    currencies = {record.cost_currency for record in records}
    if len(currencies) > 1:
        raise InvalidInput(
            f"the records of {model_id} mix currencies ({', '.join(sorted(currencies))}); "
            "convert them before summing costs"
        )
    completed = [r for r in records if r.outcome is JobStatus.COMPLETED]
    total_ms = [r.total_ms for r in completed]
    queue_ms = [r.queue_ms for r in records]
    ttft_ms = [r.ttft_ms for r in completed if r.ttft_ms is not None]
    completion_tokens = sum(r.completion_tokens for r in records)
    cost = round(sum(r.cost for r in records), COST_DECIMALS)
    return ModelStats(
        model_id=model_id,
        engines=sorted({r.engine for r in records}),
        jobs=len(records),
        completed=len(completed),
        failed=sum(1 for r in records if r.outcome is JobStatus.FAILED),
        p50_ms=percentile(total_ms, 50),
        p95_ms=percentile(total_ms, 95),
        p50_queue_ms=percentile(queue_ms, 50),
        p95_queue_ms=percentile(queue_ms, 95),
        p50_ttft_ms=percentile(ttft_ms, 50),
        p95_ttft_ms=percentile(ttft_ms, 95),
        tokens_per_s=completion_tokens / window_s,
        mean_job_tokens_per_s=(
            sum(r.tokens_per_s for r in completed) / len(completed) if completed else None
        ),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=completion_tokens,
        cost=cost,
        cost_currency=currencies.pop(),
        cost_per_1k_completion_tokens=(
            round(cost / completion_tokens * 1000, COST_DECIMALS) if completion_tokens else None
        ),
    )
