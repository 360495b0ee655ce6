"""Settings from the environment (prefix STUDIO_) and an optional .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "models.yaml"
PACKAGED_PLANS = PACKAGED_CATALOG.with_name("plans.yaml")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_", env_file=".env", extra="ignore")

    # Infrastructure
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    mongo_url: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27017"), description="MongoDB connection URL."
    )
    mongo_db: str = Field(default="studio_ai", description="Database name.")
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of created topics.")
    topic_replication: int = Field(default=1, ge=1, description="Replication factor.")

    # HTTP
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(
        default=9100, description="Consumers serve /metrics and /healthz here."
    )

    # Models
    models_dir: Path = Field(default=Path(".models"), description="Where models are installed.")
    catalog_paths: list[Path] = Field(
        default_factory=lambda: [PACKAGED_CATALOG],
        description="Catalog files (JSON list in the environment).",
    )
    hf_endpoint: str = Field(default="https://huggingface.co", description="Hub for hf_api/hf_cli.")
    hf_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STUDIO_HF_TOKEN", "HF_TOKEN"),
        description="Token for gated models (never logged).",
    )
    mirror_endpoint: str | None = Field(
        default=None, description="Hub-compatible mirror for the `mirror` transport."
    )
    mirror_token: SecretStr | None = Field(
        default=None, description="Token for the mirror (the hub's token is never sent there)."
    )
    staging_dir: Path | None = Field(
        default=None,
        description="Pre-staged model folders (<org>--<name>) for the `local` transport.",
    )
    download_progress_interval_s: float = Field(default=1.0, gt=0)
    download_attempts: int = Field(default=3, ge=1, description="Tries for transient failures.")
    download_retry_backoff_s: float = Field(default=2.0, ge=0)
    download_metadata_timeout_s: float = Field(default=30.0, gt=0)

    # Inference
    inference_max_in_flight: int = Field(
        default=64, ge=1, description="Jobs a worker keeps in flight per pool."
    )
    inference_attempts: int = Field(
        default=3, ge=1, description="Tries of an engine call that fails retryably."
    )
    inference_backoff_s: float = Field(default=1.0, ge=0, description="First retry delay.")
    inference_timeout_s: float = Field(default=300.0, gt=0, description="Per engine call.")
    inference_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the TGI / vLLM servers (never logged)."
    )
    inference_endpoint_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a model's endpoint_url may name (JSON list); empty: any host.",
    )
    inference_progress_interval_s: float = Field(
        default=0.5, gt=0, description="Least time between two progress events of a job."
    )
    inference_job_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        description="A job that waited longer than this in its queue fails as expired.",
    )
    transformers_max_batch: int = Field(
        default=16, ge=1, description="Most jobs in one batch of the in-process engine."
    )
    worker_heartbeat_s: float = Field(default=2.0, gt=0)
    worker_live_ttl_s: float = Field(
        default=10.0, gt=0, description="A pool is live when a worker beat this recently."
    )
    prompt_max_chars: int = Field(default=32_000, ge=1)
    context_max_chars: int = Field(
        default=200_000, ge=0, description="All context_refs of a job together."
    )
    max_tokens_limit: int = Field(default=4096, ge=1, description="Largest max_tokens allowed.")
    default_max_tokens: int = Field(default=256, ge=1)
    default_gpu_usd_per_hour: float = Field(
        default=0.0, ge=0, description="GPU price for models without their own pricing."
    )

    # Governance
    plans_path: Path = Field(default=PACKAGED_PLANS, description="The plans file (YAML).")
    default_plan: str = Field(
        default="free", description="The plan of a workspace no operator has assigned one."
    )

    # Research
    crossref_base_url: str = Field(
        default="https://api.crossref.org", description="Crossref REST API."
    )
    crossref_mailto: str | None = Field(
        default=None,
        description="Contact address sent to Crossref (User-Agent and mailto=), which puts "
        "requests in its polite pool.",
    )
    arxiv_base_url: str = Field(
        default="https://export.arxiv.org", description="arXiv export API (/api/query)."
    )
    arxiv_min_interval_s: float = Field(
        default=3.0,
        ge=0,
        description="Least time between two arXiv requests of one process (arXiv asks for 3 s).",
    )
    research_timeout_s: float = Field(default=15.0, gt=0, description="Per provider request.")
    research_attempts: int = Field(
        default=3, ge=1, description="Tries of a provider request that fails transiently."
    )
    research_backoff_s: float = Field(default=1.0, ge=0, description="First retry delay.")
    research_max_sources: int = Field(
        default=50, ge=1, description="Most sources one research session may hold."
    )
    research_max_tokens: int = Field(
        default=512, ge=1, description="max_tokens per insight kind on an LLM."
    )
    research_llm_deadline_s: float = Field(
        default=600.0,
        gt=0,
        description="Longest an insights job waits for its LLM answers before it falls back.",
    )
    llm_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STUDIO_LLM_BASE_URL", "LLM_BASE_URL"),
        description="A remote OpenAI-compatible server for research insights (with LLM_API_KEY).",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STUDIO_LLM_API_KEY", "LLM_API_KEY"),
        description="Bearer token for LLM_BASE_URL (never logged).",
    )
    llm_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("STUDIO_LLM_MODEL", "LLM_MODEL"),
        description="Model name sent to LLM_BASE_URL.",
    )

    # Delivery
    consumer_group_prefix: str = Field(
        default="",
        description="Prepended to every consumer group id, to run two deployments on one cluster.",
    )
    handler_attempts: int = Field(
        default=3, ge=1, description="Tries for a transient handler failure."
    )
    handler_backoff_s: float = Field(default=0.5, ge=0)

    # Logging
    log_level: str = "INFO"
    log_json: bool = True

    # Images
    image_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1, description="Largest image POST /images accepts."
    )
    image_max_side_px: int = Field(default=8192, ge=1, description="Largest width or height.")
    image_max_retention_days: int = Field(
        default=365, ge=1, description="Longest retention_days of an image uploaded with consent."
    )
    image_default_retention_days: int = Field(
        default=30, ge=1, description="retention_days of a consented image that gives none."
    )
    image_unused_grace_hours: float = Field(
        default=24.0,
        gt=0,
        description="An image uploaded without consent that no job uses is deleted after this.",
    )

    # Receipts
    receipt_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 key receipts are signed with: base64 of the 32-byte seed or a PEM "
        "private key (`studio-ai receipts keygen`); never logged. Unset: no receipts are issued.",
    )
    receipt_key_id: str | None = Field(
        default=None,
        description="The signing key's id (kid); default: the first 16 hex digits of the "
        "sha256 of its raw public key.",
    )
    receipt_retired_public_keys: list[str] = Field(
        default_factory=list,
        description="Public keys of earlier signing keys (JSON list of JWK JSON strings or "
        "base64 raw keys): still served and accepted, so their receipts keep verifying.",
    )
