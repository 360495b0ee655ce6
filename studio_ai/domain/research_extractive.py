"""Research insights chosen from the sources' own sentences, offline (the `extractive` generator).

Each source is read as its abstract (its title when it has none), under its source_id; the
extractive engine (`studio_ai.domain.extractive`) picks sentences and says which source each
came from, so every item cites exactly the source its text was taken from and nothing else.
A source without an abstract still contributes its title. References are formatted from the
sources, whatever generator writes the other kinds.

Pure logic: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from studio_ai.domain import extractive
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.references import distinct_sources, format_reference
from studio_ai.schemas.research import Insight, InsightItem, InsightKind, ResearchSource

SUMMARY_SENTENCES = 5
BULLETS = 5
OUTLINE_POINTS_PER_SOURCE = 2
ANSWER_SENTENCES = 3
NO_ANSWER_NOTE = "none of the attached sources answers the question"
TOO_LITTLE_TEXT_NOTE = "the attached sources have too little text to choose sentences from"


def extractive_insight(
    kind: InsightKind, sources: Sequence[ResearchSource], question: str | None = None
) -> Insight:
    """The `kind` insight of `sources`, every item a sentence (or title) of the source it cites."""
    sources = distinct_sources(sources)
    if not sources:
        raise InvalidInput("no sources are attached: attach at least one source to the session")
    if kind is InsightKind.REFERENCES:
        return references_insight(sources)
    if kind is InsightKind.OUTLINE:
        return Insight(kind=kind, items=_outline(sources))
    if kind is InsightKind.QA:
        return _qa(required_question(question), sources)
    documents = [_document(source) for source in sources]
    if kind is InsightKind.SUMMARY:
        sentences = extractive.summarize("", documents, max_sentences=SUMMARY_SENTENCES)
    else:
        sentences = extractive.bullets("", documents, max_bullets=BULLETS)
    items = _cited(sentences)
    return Insight(kind=kind, items=items, note=None if items else TOO_LITTLE_TEXT_NOTE)


def references_insight(sources: Sequence[ResearchSource]) -> Insight:
    """One formatted reference per source, each citing its source, in the order given."""
    return Insight(
        kind=InsightKind.REFERENCES,
        items=[
            InsightItem(text=format_reference(source), citations=[source.source_id])
            for source in distinct_sources(sources)
        ],
    )


def _document(source: ResearchSource) -> extractive.Source:
    """The text sentences are chosen from: the abstract, or the title when there is none.

    A title is left out next to an abstract: it shares the abstract's key words, so it would
    often be chosen, yet it reads as a fragment in a summary and repeats the outline's heading.
    """
    abstract = (source.abstract or "").strip()
    return extractive.Source(ref=source.source_id, text=abstract or _title_sentence(source))


def _title_sentence(source: ResearchSource) -> str:
    title = _title(source)
    return title if not title or title.endswith(("?", "!")) else f"{title}."


def _title(source: ResearchSource) -> str:
    return " ".join(source.title.split()).rstrip(" .")


def _cited(sentences: Sequence[extractive.Sentence], *, level: int = 0) -> list[InsightItem]:
    # A sentence without a ref would come from the prompt, which is never given here.
    return [
        InsightItem(text=sentence.text, citations=[sentence.ref], level=level)
        for sentence in sentences
        if sentence.ref is not None
    ]


def _outline(sources: Sequence[ResearchSource]) -> list[InsightItem]:
    """Per source: its title, then its most central abstract sentences one level below."""
    items: list[InsightItem] = []
    for source in sources:
        items.append(
            InsightItem(text=_title(source) or source.source_id, citations=[source.source_id])
        )
        if source.abstract and source.abstract.strip():
            points = extractive.bullets(
                "", [_document(source)], max_bullets=OUTLINE_POINTS_PER_SOURCE
            )
            items.extend(_cited(points, level=1))
    return items


def _qa(question: str, sources: Sequence[ResearchSource]) -> Insight:
    documents = [_document(source) for source in sources]
    items = _cited(extractive.answer(question, documents, max_sentences=ANSWER_SENTENCES))
    return Insight(
        kind=InsightKind.QA,
        question=question,
        items=items,
        note=None if items else NO_ANSWER_NOTE,
    )


def required_question(question: str | None) -> str:
    """`question` with its whitespace tidied; InvalidInput when there is none."""
    if question is None or not question.strip():
        raise InvalidInput("a Q&A insight needs a question: ask one about the attached sources")
    return " ".join(question.split())
