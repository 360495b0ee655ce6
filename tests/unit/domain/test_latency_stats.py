"""Per-model latency, throughput and cost from inference metrics records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.latency_stats import percentile, summarize_models
from studio_ai.schemas.inference import EngineName, InferenceMetrics, JobStatus

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(
    model_id: str = "llama",
    *,
    outcome: JobStatus = JobStatus.COMPLETED,
    engine: EngineName = EngineName.VLLM,
    queue_ms: float = 10.0,
    ttft_ms: float | None = 50.0,
    total_ms: float = 1000.0,
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
    tokens_per_s: float = 40.0,
    cost: float = 0.001,
    finished_at: datetime = NOW,
) -> InferenceMetrics:
    return InferenceMetrics(
        job_id=uuid.uuid4(),
        workspace_id="ws-1",
        model_id=model_id,
        engine=engine,
        pool="gpu",
        outcome=outcome,
        queue_ms=queue_ms,
        ttft_ms=ttft_ms,
        total_ms=total_ms,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        tokens_per_s=tokens_per_s,
        cost=cost,
        cost_basis="per_gpu_second",
        finished_at=finished_at,
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([10, 20, 30, 40], 50, 25.0),
        ([40, 10, 30, 20], 50, 25.0),  # order does not matter
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 9.55),
        ([100], 95, 100.0),
        ([3, 7], 0, 3.0),
        ([3, 7], 100, 7.0),
    ],
)
def test_percentile_interpolates_between_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_q_must_be_a_percentage() -> None:
    assert percentile([], 50) is None
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        percentile([1.0], 101)


def test_latency_percentiles_count_completed_jobs_and_queue_counts_all() -> None:
    records = [
        record(total_ms=ms, queue_ms=ms / 10, ttft_ms=ms / 20) for ms in range(100, 1100, 100)
    ]
    records.append(
        record(
            outcome=JobStatus.FAILED,
            total_ms=5.0,
            queue_ms=2000.0,
            ttft_ms=None,
            completion_tokens=0,
            tokens_per_s=0.0,
        )
    )

    [stats] = summarize_models(records, window_s=60)

    assert (stats.jobs, stats.completed, stats.failed) == (11, 10, 1)
    assert stats.p50_ms == pytest.approx(550.0)  # the 5 ms failure is not a fast answer
    assert stats.p95_ms == pytest.approx(955.0)
    assert stats.p50_ttft_ms == pytest.approx(27.5)
    assert stats.p95_ttft_ms == pytest.approx(47.75)
    # Queue time counts the failed job too: 10..100 ms plus 2000 ms.
    assert stats.p50_queue_ms == pytest.approx(60.0)
    assert stats.p95_queue_ms == pytest.approx(1050.0)
    assert stats.mean_job_tokens_per_s == pytest.approx(40.0)


def test_throughput_divides_the_windows_tokens_by_its_length() -> None:
    records = [record(completion_tokens=300) for _ in range(4)]

    [per_minute] = summarize_models(records, window_s=60)
    [per_hour] = summarize_models(records, window_s=3600)

    assert per_minute.tokens_per_s == pytest.approx(20.0)
    assert per_hour.tokens_per_s == pytest.approx(1200 / 3600)


def test_until_leaves_out_records_outside_the_window() -> None:
    records = [
        record(finished_at=NOW - timedelta(seconds=30), completion_tokens=60),
        record(finished_at=NOW, completion_tokens=60),
        record(finished_at=NOW - timedelta(seconds=90), completion_tokens=1000),
        record(finished_at=NOW + timedelta(seconds=1), completion_tokens=1000),
    ]

    [stats] = summarize_models(records, window_s=60, until=NOW)

    assert stats.jobs == 2
    assert stats.completion_tokens == 120
    assert stats.tokens_per_s == pytest.approx(2.0)


def test_costs_and_tokens_are_summed_per_model_sorted_by_model_id() -> None:
    records = [
        record("mistral", cost=0.002, prompt_tokens=10, completion_tokens=500),
        record("llama", cost=0.0015, completion_tokens=1000, engine=EngineName.TRANSFORMERS),
        record("llama", cost=0.0005, completion_tokens=1000, engine=EngineName.EXTRACTIVE),
        record("mistral", cost=0.003, prompt_tokens=20, completion_tokens=500),
    ]

    llama, mistral = summarize_models(records, window_s=60)

    assert (llama.model_id, mistral.model_id) == ("llama", "mistral")
    assert llama.engines == [EngineName.EXTRACTIVE, EngineName.TRANSFORMERS]
    assert llama.cost == pytest.approx(0.002)
    assert llama.cost_per_1k_completion_tokens == pytest.approx(0.001)
    assert mistral.cost == pytest.approx(0.005)
    assert mistral.cost_per_1k_completion_tokens == pytest.approx(0.005)
    assert (mistral.prompt_tokens, mistral.completion_tokens) == (30, 1000)
    assert mistral.cost_currency == "USD"


def test_a_model_with_only_failures_has_no_latency_and_no_cost_per_token() -> None:
    records = [
        record(outcome=JobStatus.FAILED, ttft_ms=None, completion_tokens=0, cost=0.0004)
        for _ in range(3)
    ]

    [stats] = summarize_models(records, window_s=60)

    assert (stats.completed, stats.failed) == (0, 3)
    assert stats.p50_ms is None and stats.p95_ms is None
    assert stats.p50_ttft_ms is None
    assert stats.p50_queue_ms == pytest.approx(10.0)
    assert stats.mean_job_tokens_per_s is None
    assert stats.cost == pytest.approx(0.0012)
    assert stats.cost_per_1k_completion_tokens is None
    assert stats.tokens_per_s == 0.0


def test_no_records_no_models_and_the_window_must_be_positive() -> None:
    assert summarize_models([], window_s=60) == []
    with pytest.raises(InvalidInput, match="window_s"):
        summarize_models([record()], window_s=0)
