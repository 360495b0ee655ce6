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
    provider: ProviderName = Field(
        description="Where the work came from: crossref, arxiv or fixture."
    )
    external_id: str = Field(
        description="DOI (lower case), arXiv id without version, or fixture id."
    )
    title: str = Field(description="The work's title.")
    authors: list[str] = Field(default_factory=list, description="'Given Family' per author.")
    year: int | None = Field(default=None, description="Year of publication, if known.")
    venue: str | None = Field(default=None, description="Journal, proceedings or 'arXiv'.")
    abstract: str | None = Field(
        default=None, description="Plain text: JATS/HTML markup removed, whitespace normalised."
    )
    url: str | None = Field(default=None, description="Link to the work, if known.")
    doi: str | None = Field(default=None, description="DOI, if the work has one.")
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

    citation: str = Field(max_length=300, description="The citation as the model wrote it.")
    reason: str = Field(description="Why it was removed.")


class Insight(BaseModel):
    kind: InsightKind = Field(description="summary, bullets, outline, references or qa.")
    question: str | None = Field(default=None, description="The question, for qa.")
    items: list[InsightItem] = Field(
        default_factory=list,
        description="Sentences, bullets, outline lines or references, each with its citations.",
    )
    flagged_citations: list[FlaggedCitation] = Field(
        default_factory=list, description="Citations removed because they name no attached source."
    )
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

    job_id: uuid.UUID = Field(description="The insights job's id.")
    session_id: str = Field(description="The research session; also the Kafka key.")
    kinds: list[InsightKind] = Field(min_length=1, description="The insight kinds to write.")
    question: str | None = Field(default=None, description="The question, for qa.")
    sources: list[ResearchSource] = Field(
        min_length=1,
        description="The session's attached sources when the job was asked for (a snapshot).",
    )
    requested_model_id: str | None = Field(
        default=None, description="The model the caller asked for, if any."
    )
    model_id: str = Field(description="The installed text model resolved for the pool path.")
    fallback_reason: str | None = Field(
        default=None,
        description="Why model_id differs from requested_model_id; none when it does not.",
    )
    pool: str = Field(description="The worker pool of model_id.")
    target: EngineTarget = Field(description="Where and how model_id runs.")
    pricing: Pricing | None = Field(default=None, description="model_id's pricing.")
    max_tokens: int = Field(ge=1, description="Per insight kind.")
    remote_llm: bool = Field(
        default=False,
        description="Write with the operator's remote LLM (LLM_BASE_URL): configured, allowed "
        "by the workspace's plan, and no model asked for by name.",
    )
    queued_at: datetime = Field(description="When the gateway admitted the job (UTC).")
    quota: QuotaReservation | None = Field(
        default=None, description="The job's quota reservation (none: admitted unmetered)."
    )


class InsightsGenerated(BaseModel):
    """research.insight-generated.v1: the insights of one job, for the session projection."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID = Field(description="The insights job's id.")
    session_id: str = Field(description="The research session; also the Kafka key.")
    insights: list[Insight] = Field(description="One insight per kind asked for.")
    generator: InsightGenerator = Field(
        description="What wrote the insights: remote_llm, pool or extractive."
    )
    engine: EngineName | None = Field(
        default=None, description="The engine for the pool path; none for the remote LLM."
    )
    model_id: str = Field(description="The model that wrote the insights.")
    fallback_reason: str | None = Field(
        default=None, description="Why a more capable generator was not used."
    )
    usage: Usage = Field(
        default_factory=Usage,
        description="Tokens read and generated by the model, if one was used.",
    )
    generated_at: datetime = Field(description="When the insights were written (UTC).")
    cited_sources: list[ResearchSource] = Field(
        default_factory=list,
        description="The sources the insights cite, as they were when generated: their "
        "references stay readable after a source is detached.",
    )
