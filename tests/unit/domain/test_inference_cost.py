"""Job cost: per token, per GPU-second (own or default price), free, and batched GPU shares."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.inference_cost import gpu_seconds_share, job_cost
from studio_ai.schemas.models import Pricing, PricingBasis


def test_per_token_prices_prompt_and_completion_tokens_separately() -> None:
    pricing = Pricing(
        basis=PricingBasis.PER_TOKEN,
        usd_per_1m_prompt_tokens=0.15,
        usd_per_1m_completion_tokens=0.60,
        usd_per_gpu_hour=99.0,  # ignored: the basis is per token
    )

    cost, basis = job_cost(
        pricing,
        prompt_tokens=1200,
        completion_tokens=300,
        gpu_seconds=40.0,
        default_usd_per_gpu_hour=2.0,
    )

    # 1200 * 0.15 / 1e6 + 300 * 0.60 / 1e6 = 0.00018 + 0.00018
    assert cost == pytest.approx(0.00036, abs=1e-12)
    assert basis == "per_token"


def test_per_gpu_second_uses_the_models_own_gpu_price() -> None:
    pricing = Pricing(basis=PricingBasis.PER_GPU_SECOND, usd_per_gpu_hour=3.6)

    cost, basis = job_cost(
        pricing,
        prompt_tokens=10_000,
        completion_tokens=10_000,
        gpu_seconds=2.5,
        default_usd_per_gpu_hour=100.0,
    )

    assert cost == pytest.approx(0.0025)  # 3.6 $/h is 0.001 $/s
    assert basis == "per_gpu_second"


def test_a_model_without_pricing_costs_gpu_seconds_at_the_default_price() -> None:
    cost, basis = job_cost(
        None,
        prompt_tokens=50,
        completion_tokens=50,
        gpu_seconds=90.0,
        default_usd_per_gpu_hour=2.4,
    )

    assert cost == pytest.approx(0.06)
    assert basis == "per_gpu_second"


def test_a_zero_default_price_costs_nothing_but_keeps_the_basis() -> None:
    assert job_cost(
        None,
        prompt_tokens=50,
        completion_tokens=50,
        gpu_seconds=90.0,
        default_usd_per_gpu_hour=0.0,
    ) == (0.0, "per_gpu_second")


def test_a_free_model_costs_nothing_whatever_it_used() -> None:
    pricing = Pricing(basis=PricingBasis.FREE, usd_per_1m_completion_tokens=5.0)

    assert job_cost(
        pricing,
        prompt_tokens=10**6,
        completion_tokens=10**6,
        gpu_seconds=3600.0,
        default_usd_per_gpu_hour=2.0,
    ) == (0.0, "free")


def test_cost_is_rounded_to_eight_decimals() -> None:
    pricing = Pricing(basis=PricingBasis.PER_TOKEN, usd_per_1m_completion_tokens=0.123456789)

    cost, _ = job_cost(
        pricing,
        prompt_tokens=0,
        completion_tokens=7,
        gpu_seconds=0.0,
        default_usd_per_gpu_hour=0.0,
    )

    assert cost == 0.00000086  # 8.64197523e-07 rounded


def test_negative_usage_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="gpu_seconds"):
        job_cost(
            None,
            prompt_tokens=1,
            completion_tokens=1,
            gpu_seconds=-1.0,
            default_usd_per_gpu_hour=1.0,
        )


def test_a_batched_job_is_billed_for_its_share_of_the_gpu() -> None:
    assert gpu_seconds_share(2.0, 4) == 0.5
    assert gpu_seconds_share(2.0, 1) == 2.0
    assert gpu_seconds_share(2.0, 0) == 2.0  # no batch reported: the job had the GPU alone
    # Four jobs batched together cost what one job alone for the same time would.
    shared = [
        job_cost(
            None,
            prompt_tokens=0,
            completion_tokens=0,
            gpu_seconds=gpu_seconds_share(36.0, 4),
            default_usd_per_gpu_hour=1.0,
        )[0]
        for _ in range(4)
    ]
    alone = job_cost(
        None, prompt_tokens=0, completion_tokens=0, gpu_seconds=36.0, default_usd_per_gpu_hour=1.0
    )[0]
    assert sum(shared) == pytest.approx(alone) == pytest.approx(0.01)
