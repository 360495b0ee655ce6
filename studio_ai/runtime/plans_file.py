"""Reading the plans file named in the settings."""

from __future__ import annotations

import yaml

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.plans import parse_plans
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.plans import Plan


def load_plans(settings: Settings) -> dict[str, Plan]:
    path = settings.plans_path
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"plans file {path} cannot be read: {exc}") from exc
    plans = parse_plans(document, source=str(path))
    if settings.default_plan not in plans:
        raise InvalidInput(
            f"STUDIO_DEFAULT_PLAN={settings.default_plan!r} is not a plan in {path} "
            f"(plans: {', '.join(plans)})"
        )
    return plans
