"""Quota arithmetic: what a job reserves, when it is refused, and what settles it. Pure logic.

A workspace's usage is a set of counters keyed by period: `jobs:<UTC day>`,
`tokens:<UTC month>`, `gpu_s:<UTC month>` and `concurrent`. Admission reserves a job's share
(one job, one concurrent slot, its token estimate); the job's end settles it: a completed job
is charged the tokens and GPU-seconds it used, a failed or cancelled one gives everything back.

What a quota meters follows what the model consumes, so a free model is never blocked by a
budget it does not draw on: tokens are counted for every model except free ones (the built-in
extractive engine, `pricing.basis: free`), GPU-seconds only for models on GPU engines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from studio_ai.schemas.plans import QuotaName, Quotas

CHARS_PER_TOKEN_ESTIMATE = 3  # below the ~4 of English text: a reservation errs on the high side
TOKENS_PER_IMAGE_ESTIMATE = 256  # Gemma 3 encodes an image as 256 tokens
CONCURRENCY_RETRY_AFTER_S = 5
_KEEP_DAYS = 3
_KEEP_MONTHS = 2


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


Counters = dict[str, float]


def day_key(now: datetime) -> str:
    return "jobs:" + now.astimezone(UTC).strftime("%Y-%m-%d")


def month_key(prefix: str, now: datetime) -> str:
    return f"{prefix}:" + now.astimezone(UTC).strftime("%Y-%m")


def counter_key(quota: QuotaName, now: datetime) -> str:
    if quota is QuotaName.JOBS_PER_DAY:
        return day_key(now)
    if quota is QuotaName.TOKENS_PER_MONTH:
        return month_key("tokens", now)
    if quota is QuotaName.GPU_SECONDS_PER_MONTH:
        return month_key("gpu_s", now)
    return "concurrent"


def period_of(quota: QuotaName, now: datetime) -> str | None:
    key = counter_key(quota, now)
    return key.split(":", 1)[1] if ":" in key else None


def resets_at(quota: QuotaName, now: datetime) -> datetime | None:
    now = now.astimezone(UTC)
    if quota is QuotaName.JOBS_PER_DAY:
        return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    if quota in (QuotaName.TOKENS_PER_MONTH, QuotaName.GPU_SECONDS_PER_MONTH):
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)
    return None


def token_estimate(*, prompt_chars: int, context_chars: int, images: int, max_tokens: int) -> int:
    """What a job may use at most, as far as admission can tell: its input and max_tokens."""
    input_tokens = math.ceil((prompt_chars + context_chars) / CHARS_PER_TOKEN_ESTIMATE)
    return input_tokens + images * TOKENS_PER_IMAGE_ESTIMATE + max_tokens


@dataclass(frozen=True)
class Metering:
    """What a job draws on: tokens unless its model is free, GPU time if it runs on a GPU."""

    tokens: bool
    gpu: bool


def reservation(now: datetime, *, tokens: int, metering: Metering) -> Counters:
    deltas: Counters = {day_key(now): 1, "concurrent": 1}
    if metering.tokens:
        deltas[month_key("tokens", now)] = tokens
    return deltas


@dataclass(frozen=True)
class Exceeded:
    quota: QuotaName
    limit: float
    used: float
    asked: float
    retry_after_s: int
    resets_at: datetime | None
    in_flight: float = 0

    def message(self, plan: str) -> str:
        what = {
            QuotaName.JOBS_PER_DAY: f"{_n(self.used)} of {_n(self.limit)} jobs today (UTC)",
            QuotaName.TOKENS_PER_MONTH: (
                f"{_n(self.used)} of {_n(self.limit)} tokens this month, and this job may use "
                f"up to {_n(self.asked)} (its input and max_tokens): lower max_tokens, or use "
                "the built-in extractive model, which is not metered"
                + (
                    f"; {_n(self.in_flight)} running job(s) hold reservations that their end "
                    "gives back in part"
                    if self.in_flight
                    else ""
                )
            ),
            QuotaName.GPU_SECONDS_PER_MONTH: (
                f"{_n(self.used)} of {_n(self.limit)} GPU-seconds this month: the built-in "
                "extractive model does not use the GPU"
            ),
            QuotaName.CONCURRENT_JOBS: (
                f"{_n(self.used)} of {_n(self.limit)} jobs queued or running: wait for one to end"
            ),
        }[self.quota]
        when = f"; it resets at {self.resets_at.isoformat()}" if self.resets_at else ""
        return f"quota {self.quota.value} of plan {plan!r} is used up: {what}{when}"


def check(
    totals: Mapping[str, float],
    deltas: Mapping[str, float],
    quotas: Quotas,
    now: datetime,
    *,
    metering: Metering,
) -> Exceeded | None:
    """The first quota the reservation `deltas` would break, or None."""
    for quota in QuotaName:
        limit = quotas.limit(quota)
        if limit is None:
            continue
        key = counter_key(quota, now)
        used = totals.get(key, 0)
        if quota is QuotaName.GPU_SECONDS_PER_MONTH:
            # GPU time is only known when a job ends: admission stops once it is spent.
            if metering.gpu and used >= limit:
                return _exceeded(quota, limit, used, 0, now)
            continue
        asked = deltas.get(key, 0)
        if asked and used + asked > limit:
            exceeded = _exceeded(quota, limit, used, asked, now)
            in_flight = totals.get("concurrent", 0)
            if quota is QuotaName.TOKENS_PER_MONTH and in_flight > 0:
                # Running jobs' reservations count as used until they end and are settled to
                # what they used: trying again soon may well succeed.
                return replace(
                    exceeded, retry_after_s=CONCURRENCY_RETRY_AFTER_S, in_flight=in_flight
                )
            return exceeded
    return None


def _exceeded(quota: QuotaName, limit: float, used: float, asked: float, now: datetime) -> Exceeded:
    reset = resets_at(quota, now)
    retry = (
        max(1, math.ceil((reset - now).total_seconds()))
        if reset is not None
        else CONCURRENCY_RETRY_AFTER_S
    )
    return Exceeded(quota, limit, used, asked, retry, reset)


def settlement(
    reserved: Mapping[str, float],
    outcome: Outcome,
    *,
    tokens_used: int,
    gpu_seconds: float,
    metering: Metering,
) -> Counters:
    """The deltas that turn a job's reservation into its final charge."""
    deltas: Counters = {key: -amount for key, amount in reserved.items()}
    if outcome is Outcome.COMPLETED:
        for key in reserved:
            if key.startswith("jobs:"):
                deltas[key] = 0  # a completed job keeps its place in the day's count
            elif key.startswith("tokens:"):
                deltas[key] = tokens_used - reserved[key]
        if metering.gpu and gpu_seconds > 0:
            day = next((k for k in reserved if k.startswith("jobs:")), None)
            month = day[len("jobs:") : len("jobs:") + 7] if day else None
            if month:
                deltas[f"gpu_s:{month}"] = round(gpu_seconds, 6)
    return {k: v for k, v in deltas.items() if v}


def roll(totals: Mapping[str, float], deltas: Mapping[str, float], now: datetime) -> Counters:
    """New totals: `totals` + `deltas`, without counters of periods long past."""
    merged: Counters = dict(totals)
    for key, amount in deltas.items():
        merged[key] = round(merged.get(key, 0) + amount, 6)
    oldest_day = (now.astimezone(UTC) - timedelta(days=_KEEP_DAYS)).strftime("%Y-%m-%d")
    months = set(_recent_months(now, _KEEP_MONTHS + 1))
    kept: Counters = {}
    for key, value in merged.items():
        kind, _, period = key.partition(":")
        if kind == "jobs" and period < oldest_day:
            continue
        if kind in ("tokens", "gpu_s") and period not in months:
            continue
        kept[key] = value
    return kept


def _recent_months(now: datetime, count: int) -> list[str]:
    """'YYYY-MM' of this month and the `count - 1` before it, by the calendar."""
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months


def _n(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))
