"""What an inference job cost, from its model's pricing and its usage. Pure logic: no I/O.

A remote API model is priced per token; a self-hosted model per second of the GPU it ran on;
a model without pricing is billed per GPU-second at the deployment's default GPU price.
"""

from __future__ import annotations

from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.models import Pricing, PricingBasis

COST_DECIMALS = 8
SECONDS_PER_HOUR = 3600.0
TOKENS_PER_PRICE_UNIT = 1_000_000.0


def job_cost(
    pricing: Pricing | None,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    gpu_seconds: float,
    default_usd_per_gpu_hour: float,
) -> tuple[float, str]:
    """(cost in USD rounded to 8 decimals, basis): basis is per_token, per_gpu_second or free.

    `pricing` None means per GPU-second at `default_usd_per_gpu_hour`, which may be 0 (cost 0,
    basis still per_gpu_second). A per_gpu_second pricing uses its own `usd_per_gpu_hour`, as
    given; the default applies only to models without pricing.
    """
    _check_non_negative(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        gpu_seconds=gpu_seconds,
        default_usd_per_gpu_hour=default_usd_per_gpu_hour,
    )
    if pricing is None:
        return _per_gpu_second(gpu_seconds, default_usd_per_gpu_hour)
    if pricing.basis is PricingBasis.FREE:
        return 0.0, PricingBasis.FREE.value
    if pricing.basis is PricingBasis.PER_TOKEN:
        cost = (
            prompt_tokens * pricing.usd_per_1m_prompt_tokens
            + completion_tokens * pricing.usd_per_1m_completion_tokens
        ) / TOKENS_PER_PRICE_UNIT
        return round(cost, COST_DECIMALS), PricingBasis.PER_TOKEN.value
    return _per_gpu_second(gpu_seconds, pricing.usd_per_gpu_hour)


def gpu_seconds_share(generation_s: float, concurrent_jobs: int) -> float:
    """The GPU-seconds one job is billed for: its generation time split among its batch.

    A job batched with others occupies the GPU for its share only: four jobs generated
    together in 2 s cost 0.5 GPU-seconds each, not 2. `concurrent_jobs` below 1 counts as 1.
    """
    if generation_s < 0:
        raise InvalidInput(f"generation_s must not be negative, got {generation_s}")
    return generation_s / max(1, concurrent_jobs)


def _per_gpu_second(gpu_seconds: float, usd_per_gpu_hour: float) -> tuple[float, str]:
    cost = gpu_seconds * usd_per_gpu_hour / SECONDS_PER_HOUR
    return round(cost, COST_DECIMALS), PricingBasis.PER_GPU_SECOND.value


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise InvalidInput(f"{name} must not be negative, got {value}")
