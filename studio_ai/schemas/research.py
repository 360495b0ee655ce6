"""Research sessions: sources from providers, insights with citations, and the research.*
event payloads (key: session_id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from studio_ai.schemas.inference import EngineName, EngineTarget, QuotaReservation, Usage
from studio_ai.schemas.models import Pricing


class ProviderName(StrEnum):
    CROSSREF = "crossref"
    ARXIV = "arxiv"
    FIXTURE = "fixture"


class ResearchSource(BaseModel):
    """One work from a provider, as attached to a session. `source_id` is
    `<provider>:<external_id>`: `crossref:10.1038/srep16696`, `arxiv:1605.08386`,
    `fixture:<id>`; it is what citations name."""

    source_id: str = Field(description="<provider>:<external_id>; what citations name.")
    provider: ProviderName
    external_id: str = Field(
        description="DOI (lower case), arXiv id without version, or fixture id."
    )
    title: str
    authors: list[str] = Field(default_factory=list, description="'Given Family' per author.")
    year: int | None = None
    venue: str | None = Field(default=None, description="Journal, proceedings or 'arXiv'.")
    abstract: str | None = Field(
        default=None, description="Plain text: JATS/HTML markup removed, whitespace normalised."
    )
    url: str | None = None
    doi: str | None = None
    version: str | None = Field(default=None, description="arXiv version (v2), if given.")
    work_type: str | None = Field(
        default=None, description="journal-article, posted-content, preprint..."
    )


class InsightKind(StrEnum):
    SUMMARY = "summary"
    BULLETS = "bullets"
    OUTLINE = "outline"
    REFERENCES = "references"
    QA = "qa"


class InsightGenerator(StrEnum):
    """What wrote the insights (recorded on each)."""

    REMOTE_LLM = "remote_llm"  # the OpenAI-compatible server at LLM_BASE_URL
    POOL = "pool"  # the workspace's installed text model, through its engine
    EXTRACTIVE = "extractive"  # sentences chosen from the sources, offline


class InsightItem(BaseModel):
    """One sentence, bullet, outline line or reference, with the sources it cites."""

    text: str = Field(description="Plain text without citation markers.")
    citations: list[str] = Field(
        default_factory=list, description="source_ids of attached sources this item rests on."
    )
    level: int = Field(default=0, ge=0, le=3, description="Outline depth (0: top level).")


class FlaggedCitation(BaseModel):
    """A citation a model wrote that does not point at an attached source; removed from the
    text and kept here so a reviewer sees it."""

    citation: str = Field(max_length=300)
    reason: str


class Insight(BaseModel):
    kind: InsightKind
    question: str | None = Field(default=None, description="The question, for qa.")
    items: list[InsightItem] = Field(default_factory=list)
    flagged_citations: list[FlaggedCitation] = Field(default_factory=list)
    note: str | None = Field(
        default=None, description="Why an insight is empty (e.g. no source answers the question)."
    )
    generator: InsightGenerator | None = Field(
        default=None,
        description="What wrote this insight, when it differs by kind (set by the worker).",
    )

    @property
    def citations(self) -> list[str]:
        return list(dict.fromkeys(c for item in self.items for c in item.citations))


class InsightsRequested(BaseModel):
    """research.insights-requested.v1: generate insights for a session from the sources
    attached when it was asked (a snapshot, so a replay generates from the same material)."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    session_id: str
    kinds: list[InsightKind] = Field(min_length=1)
    question: str | None = None
    sources: list[ResearchSource] = Field(min_length=1)
    requested_model_id: str | None = Field(
        default=None, description="The model the caller asked for, if any."
    )
    model_id: str = Field(description="The installed text model resolved for the pool path.")
    fallback_reason: str | None = None
    pool: str
    target: EngineTarget
    pricing: Pricing | None = None
    max_tokens: int = Field(ge=1, description="Per insight kind.")
    remote_llm: bool = Field(
        default=False,
        description="Write with the operator's remote LLM (LLM_BASE_URL): configured, allowed "
        "by the workspace's plan, and no model asked for by name.",
    )
    queued_at: datetime
    quota: QuotaReservation | None = None


class InsightsGenerated(BaseModel):
    """research.insight-generated.v1: the insights of one job, for the session projection."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    session_id: str
    insights: list[Insight]
    generator: InsightGenerator
    engine: EngineName | None = Field(
        default=None, description="The engine for the pool path; none for the remote LLM."
    )
    model_id: str = Field(description="The model that wrote the insights.")
    fallback_reason: str | None = Field(
        default=None, description="Why a more capable generator was not used."
    )
    usage: Usage = Field(default_factory=Usage)
    generated_at: datetime
    cited_sources: list[ResearchSource] = Field(
        default_factory=list,
        description="The sources the insights cite, as they were when generated: their "
        "references stay readable after a source is detached.",
    )
