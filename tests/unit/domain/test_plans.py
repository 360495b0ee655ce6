"""Plans: parsing the plans file, overrides, and refusals that name the plan that allows it."""

from __future__ import annotations

import re

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.plans import (
    NotInPlan,
    check_features,
    check_retention,
    effective_plan,
    parse_plans,
)
from studio_ai.runtime.plans_file import load_plans
from studio_ai.runtime.settings import PACKAGED_PLANS, Settings
from studio_ai.schemas.inference import TextTask
from studio_ai.schemas.models import Modality
from studio_ai.schemas.plans import PlanOverrides, QuotaName

PLANS = load_plans(Settings(plans_path=PACKAGED_PLANS, default_plan="free"))


def test_the_packaged_plans_go_from_free_to_enterprise() -> None:
    assert list(PLANS) == ["free", "pro", "enterprise"]
    assert PLANS["enterprise"].quotas.jobs_per_day is None


def test_a_task_outside_the_plan_names_the_plan_that_allows_it() -> None:
    with pytest.raises(NotInPlan, match="plan 'pro' includes it") as caught:
        check_features(
            PLANS["free"],
            PLANS,
            workspace_id="w1",
            text_task=TextTask.FREE,
            modality=Modality.TEXT,
            model_id="studio-ai/extractive",
        )
    assert "set-plan w1 pro" in caught.value.message


def test_images_and_models_outside_the_plan_are_refused() -> None:
    with pytest.raises(NotInPlan, match="image input"):
        check_features(
            PLANS["free"],
            PLANS,
            workspace_id="w1",
            text_task=TextTask.SUMMARY,
            modality=Modality.MULTIMODAL,
            model_id="google/medgemma-4b-it",
        )
    with pytest.raises(NotInPlan, match=re.escape("meta-llama/Llama-3.2-3B-Instruct")):
        check_features(
            PLANS["free"],
            PLANS,
            workspace_id="w1",
            text_task=TextTask.SUMMARY,
            modality=Modality.TEXT,
            model_id="meta-llama/Llama-3.2-3B-Instruct",
        )


def test_pro_allows_every_model_by_pattern() -> None:
    check_features(
        PLANS["pro"],
        PLANS,
        workspace_id="w1",
        text_task=TextTask.FREE,
        modality=Modality.MULTIMODAL,
        model_id="google/medgemma-4b-it",
    )


def test_overrides_change_limits_not_features() -> None:
    plan = effective_plan(
        PLANS["free"],
        PlanOverrides(
            quotas={QuotaName.JOBS_PER_DAY: 3, QuotaName.TOKENS_PER_MONTH: None},
            image_retention_max_days=2,
        ),
    )
    assert plan.quotas.jobs_per_day == 3
    assert plan.quotas.tokens_per_month is None
    assert plan.quotas.concurrent_jobs == PLANS["free"].quotas.concurrent_jobs
    assert plan.image_retention_max_days == 2
    assert plan.models == PLANS["free"].models


def test_retention_above_the_plan_is_refused_with_the_maximum() -> None:
    check_retention(PLANS["pro"], 90)
    with pytest.raises(InvalidInput, match="at most 90 day"):
        check_retention(PLANS["pro"], 91)


def test_a_broken_plans_file_says_where() -> None:
    with pytest.raises(InvalidInput, match=r"plan 'x'.*tasks"):
        parse_plans(
            {
                "plans": {
                    "x": {
                        "tasks": ["dance"],
                        "modalities": [],
                        "models": [],
                        "image_retention_max_days": 1,
                    }
                }
            },
            source="p.yaml",
        )
    with pytest.raises(InvalidInput, match="expected a mapping"):
        parse_plans([], source="p.yaml")
