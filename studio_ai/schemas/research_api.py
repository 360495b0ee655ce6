"""HTTP bodies of /research: sessions, attaching sources, generating and exporting insights."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from studio_ai.schemas.inference import EngineName
from studio_ai.schemas.research import (
    FlaggedCitation,
    InsightGenerator,
    InsightItem,
    InsightKind,
    ProviderName,
    ResearchSource,
)

MAX_ATTACH_RESULTS = 20


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, description="What the deck is about.")
    query: str | None = Field(
        default=None, max_length=500, description="The research question, kept with the session."
    )
    providers: list[ProviderName] = Field(
        default_factory=lambda: list(ProviderName),
        min_length=1,
        description="Providers this session may attach from (default: all).",
    )

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the title is blank: say what the research is for")
        return value.strip()

    @field_validator("providers")
    @classmethod
    def _unique(cls, value: list[ProviderName]) -> list[ProviderName]:
        return list(dict.fromkeys(value))


class AttachRequest(BaseModel):
    """Attach one work by id (`{provider, id}`) or the top results of a search
    (`{provider, query, limit}`)."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    id: str | None = Field(
        default=None,
        max_length=300,
        description="DOI for crossref, arXiv id for arxiv, fixture id for fixture.",
    )
    query: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=3, ge=1, le=MAX_ATTACH_RESULTS)

    @model_validator(mode="after")
    def _one_of(self) -> AttachRequest:
        if (self.id is None) == (self.query is None):
            raise ValueError(
                "give either id (attach one work) or query (attach the top `limit` results)"
            )
        if self.query is not None and not self.query.strip():
            raise ValueError("the query is blank: say what to search for")
        return self


class GenerateInsightsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kinds: list[InsightKind] = Field(
        min_length=1, description="summary, bullets, outline, references and/or qa."
    )
    question: str | None = Field(
        default=None, max_length=1000, description="Required with qa: what to answer."
    )
    model_id: str | None = Field(
        default=None,
        max_length=200,
        description="An installed text model to write with (default: the workspace's).",
    )

    @field_validator("kinds")
    @classmethod
    def _unique(cls, value: list[InsightKind]) -> list[InsightKind]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _question_for_qa(self) -> GenerateInsightsRequest:
        if InsightKind.QA in self.kinds and not (self.question and self.question.strip()):
            raise ValueError("the qa kind needs a question: add `question`")
        return self


class AttachedSource(BaseModel):
    source: ResearchSource
    reference: str = Field(description="The formatted reference.")
    attached_at: datetime
    attached_by: str


class SessionSummary(BaseModel):
    session_id: str
    title: str
    query: str | None = None
    providers: list[ProviderName]
    created_at: datetime
    created_by: str


class SessionPage(BaseModel):
    sessions: list[SessionSummary]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for more.")


class CitedReference(BaseModel):
    source_id: str
    reference: str
    attached: bool = Field(description="False once the source was detached from the session.")


class InsightView(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    job_id: uuid.UUID
    kind: InsightKind
    question: str | None = None
    items: list[InsightItem]
    citations: list[str]
    references: list[CitedReference]
    flagged_citations: list[FlaggedCitation]
    note: str | None = None
    generator: InsightGenerator
    engine: EngineName | None = None
    model_id: str
    fallback_reason: str | None = None
    generated_at: datetime


class SessionView(SessionSummary):
    sources: list[AttachedSource]
    insights: list[InsightView]


class AttachResult(BaseModel):
    session_id: str
    attached: list[AttachedSource] = Field(description="Sources newly attached.")
    already_attached: list[str] = Field(description="source_ids the session already held.")


class InsightLinks(BaseModel):
    job: str
    session: str
    export: str


class InsightsAccepted(BaseModel):
    job_id: uuid.UUID
    session_id: str
    kinds: list[InsightKind]
    status: str = "queued"
    links: InsightLinks
