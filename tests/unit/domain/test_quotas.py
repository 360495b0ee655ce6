"""Quota arithmetic: reservations, refusals with the limit hit, settlements, period roll-over."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from studio_ai.domain.quotas import (
    Metering,
    Outcome,
    check,
    reservation,
    resets_at,
    roll,
    settlement,
    token_estimate,
)
from studio_ai.schemas.plans import QuotaName, Quotas

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
GPU_MODEL = Metering(tokens=True, gpu=True)
FREE_MODEL = Metering(tokens=False, gpu=False)


def test_a_reservation_counts_one_job_one_slot_and_its_token_estimate() -> None:
    assert reservation(NOW, tokens=300, metering=GPU_MODEL) == {
        "jobs:2026-11-29": 1,
        "concurrent": 1,
        "tokens:2026-11": 300,
    }


def test_a_free_model_reserves_no_tokens() -> None:
    assert "tokens:2026-11" not in reservation(NOW, tokens=300, metering=FREE_MODEL)


def test_the_token_estimate_covers_input_images_and_max_tokens() -> None:
    assert token_estimate(prompt_chars=30, context_chars=0, images=1, max_tokens=100) == 366


def test_the_job_that_would_pass_the_daily_limit_is_refused_with_the_time_it_resets() -> None:
    quotas = Quotas(jobs_per_day=50)
    deltas = reservation(NOW, tokens=10, metering=GPU_MODEL)
    assert check({"jobs:2026-11-29": 49}, deltas, quotas, NOW, metering=GPU_MODEL) is None
    exceeded = check({"jobs:2026-11-29": 50}, deltas, quotas, NOW, metering=GPU_MODEL)
    assert exceeded is not None
    assert exceeded.quota is QuotaName.JOBS_PER_DAY
    assert exceeded.resets_at == datetime(2026, 11, 30, tzinfo=UTC)
    assert exceeded.retry_after_s == 2 * 3600
    assert "50 of 50 jobs today" in exceeded.message("free")


def test_yesterdays_jobs_do_not_count_today() -> None:
    quotas = Quotas(jobs_per_day=1)
    deltas = reservation(NOW, tokens=10, metering=GPU_MODEL)
    assert check({"jobs:2026-11-28": 1}, deltas, quotas, NOW, metering=GPU_MODEL) is None


def test_tokens_refuse_a_job_whose_estimate_does_not_fit_and_say_what_to_do() -> None:
    quotas = Quotas(tokens_per_month=1000)
    deltas = reservation(NOW, tokens=600, metering=GPU_MODEL)
    exceeded = check({"tokens:2026-11": 500}, deltas, quotas, NOW, metering=GPU_MODEL)
    assert exceeded is not None and exceeded.quota is QuotaName.TOKENS_PER_MONTH
    assert "lower max_tokens" in exceeded.message("free")
    assert exceeded.resets_at == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_spent_token_or_gpu_budget_does_not_block_a_free_model() -> None:
    quotas = Quotas(tokens_per_month=1000, gpu_seconds_per_month=10)
    totals = {"tokens:2026-11": 1000, "gpu_s:2026-11": 10}
    deltas = reservation(NOW, tokens=600, metering=FREE_MODEL)
    assert check(totals, deltas, quotas, NOW, metering=FREE_MODEL) is None
    exceeded = check(
        totals, reservation(NOW, tokens=1, metering=GPU_MODEL), quotas, NOW, metering=GPU_MODEL
    )
    assert exceeded is not None


def test_gpu_seconds_stop_admission_once_spent() -> None:
    quotas = Quotas(gpu_seconds_per_month=10)
    deltas = reservation(NOW, tokens=0, metering=Metering(tokens=False, gpu=True))
    metering = Metering(tokens=False, gpu=True)
    assert check({"gpu_s:2026-11": 9.5}, deltas, quotas, NOW, metering=metering) is None
    exceeded = check({"gpu_s:2026-11": 10}, deltas, quotas, NOW, metering=metering)
    assert exceeded is not None and exceeded.quota is QuotaName.GPU_SECONDS_PER_MONTH


def test_concurrency_is_refused_with_a_short_retry() -> None:
    exceeded = check(
        {"concurrent": 2},
        reservation(NOW, tokens=0, metering=FREE_MODEL),
        Quotas(concurrent_jobs=2),
        NOW,
        metering=FREE_MODEL,
    )
    assert exceeded is not None and exceeded.quota is QuotaName.CONCURRENT_JOBS
    assert exceeded.retry_after_s == 5 and exceeded.resets_at is None


def test_unlimited_quotas_never_refuse() -> None:
    totals = {"jobs:2026-11-29": 10**9, "concurrent": 10**6}
    deltas = reservation(NOW, tokens=10**6, metering=GPU_MODEL)
    assert check(totals, deltas, Quotas(), NOW, metering=GPU_MODEL) is None


def test_a_completed_job_is_charged_what_it_used() -> None:
    reserved = reservation(NOW, tokens=300, metering=GPU_MODEL)
    deltas = settlement(
        reserved, Outcome.COMPLETED, tokens_used=120, gpu_seconds=1.5, metering=GPU_MODEL
    )
    after = roll(roll({}, reserved, NOW), deltas, NOW)
    assert after == {
        "jobs:2026-11-29": 1,
        "concurrent": 0,
        "tokens:2026-11": 120,
        "gpu_s:2026-11": 1.5,
    }


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.CANCELLED])
def test_a_failed_or_cancelled_job_gives_everything_back(outcome: Outcome) -> None:
    reserved = reservation(NOW, tokens=300, metering=GPU_MODEL)
    deltas = settlement(reserved, outcome, tokens_used=50, gpu_seconds=2, metering=GPU_MODEL)
    after = roll(roll({}, reserved, NOW), deltas, NOW)
    assert all(value == 0 for value in after.values())


def test_counters_of_long_past_periods_are_dropped() -> None:
    totals = {"jobs:2026-11-01": 5, "tokens:2026-08": 9, "tokens:2026-10": 7, "concurrent": 1}
    assert roll(totals, {}, NOW) == {"tokens:2026-10": 7, "concurrent": 1}


def test_months_reset_at_the_first() -> None:
    december = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert resets_at(QuotaName.TOKENS_PER_MONTH, december) == datetime(2027, 1, 1, tzinfo=UTC)


def test_early_in_a_month_last_months_counters_are_kept() -> None:
    march_first = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
    assert roll({"tokens:2026-02": 5, "gpu_s:2026-01": 2}, {}, march_first) == {
        "tokens:2026-02": 5,
        "gpu_s:2026-01": 2,
    }


def test_tokens_held_by_running_jobs_ask_for_a_short_retry() -> None:
    quotas = Quotas(tokens_per_month=1000)
    deltas = reservation(NOW, tokens=600, metering=GPU_MODEL)
    exceeded = check(
        {"tokens:2026-11": 500, "concurrent": 2}, deltas, quotas, NOW, metering=GPU_MODEL
    )
    assert exceeded is not None and exceeded.retry_after_s == 5
    assert "2 running job(s) hold reservations" in exceeded.message("pro")
