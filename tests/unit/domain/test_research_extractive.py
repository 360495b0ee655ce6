"""Offline insights: every item is text of the one attached source it cites."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.references import format_reference
from studio_ai.domain.research_extractive import extractive_insight, references_insight
from studio_ai.schemas.research import Insight, InsightKind, ProviderName, ResearchSource

SEMAGLUTIDE = ResearchSource(
    source_id="crossref:10.1056/nejmoa2032183",
    provider=ProviderName.CROSSREF,
    external_id="10.1056/nejmoa2032183",
    title="Once-Weekly Semaglutide in Adults with Overweight or Obesity",
    authors=["John P. H. Wilding", "Rachel L. Batterham", "Salvatore Calanna", "Melanie Davies"],
    year=2021,
    venue="New England Journal of Medicine",
    doi="10.1056/nejmoa2032183",
    abstract=(
        "Obesity is a global health challenge with few effective drug options. In this "
        "double-blind trial, we enrolled 1961 adults with a body-mass index of 30 or greater. "
        "Participants were randomly assigned to once-weekly subcutaneous semaglutide at a dose "
        "of 2.4 mg or placebo, plus lifestyle intervention, for 68 weeks. The mean change in "
        "body weight from baseline to week 68 was -14.9% in the semaglutide group as compared "
        "with -2.4% with placebo. Nausea and diarrhea were the most common adverse events with "
        "semaglutide; they were typically transient and mild to moderate in severity."
    ),
)
METASTASES = ResearchSource(
    source_id="arxiv:1606.05718",
    provider=ProviderName.ARXIV,
    external_id="1606.05718",
    title="Deep Learning for Identifying Metastatic Breast Cancer",
    authors=["Dayong Wang", "Aditya Khosla", "Rishab Gargeya"],
    year=2016,
    venue="arXiv",
    version="v1",
    abstract=(
        "The International Symposium on Biomedical Imaging hosted a grand challenge for "
        "detecting metastatic breast cancer in whole slide images of sentinel lymph node "
        "biopsies. Our deep learning system achieved an area under the curve of 0.925 for whole "
        "slide image classification. Combining the predictions of the deep learning system "
        "with a pathologist's diagnoses reduced the human error rate by approximately 85 percent."
    ),
)
WHO = ResearchSource(
    source_id="fixture:who-ai-ethics",
    provider=ProviderName.FIXTURE,
    external_id="who-ai-ethics",
    title="Ethics and governance of artificial intelligence for health",
    authors=["World Health Organization"],
    year=2021,
)
SOURCES = [SEMAGLUTIDE, METASTASES, WHO]
BY_ID = {source.source_id: source for source in SOURCES}


def _normalised(text: str) -> str:
    return " ".join(text.split()).lower()


def assert_items_come_from_their_sources(insight: Insight) -> None:
    """Each item cites one attached source, and its text (up to case and a trailing period,
    which bullets drop) is that source's title or abstract text."""
    for item in insight.items:
        assert len(item.citations) == 1
        source = BY_ID[item.citations[0]]
        text = _normalised(item.text).rstrip(".")
        assert text in _normalised(f"{source.title}. {source.abstract or ''}")


@pytest.mark.parametrize(
    "kind", [InsightKind.SUMMARY, InsightKind.BULLETS, InsightKind.OUTLINE, InsightKind.QA]
)
def test_every_item_is_text_of_the_attached_source_it_cites(kind: InsightKind) -> None:
    insight = extractive_insight(kind, SOURCES, "What dose of semaglutide was used?")
    assert insight.kind is kind
    assert insight.items
    assert set(insight.citations) <= set(BY_ID)
    assert_items_come_from_their_sources(insight)


def test_a_summary_has_five_sentences_from_several_sources() -> None:
    insight = extractive_insight(InsightKind.SUMMARY, SOURCES)
    assert len(insight.items) == 5
    assert {SEMAGLUTIDE.source_id, METASTASES.source_id} <= set(insight.citations)
    assert all(item.text.endswith(".") for item in insight.items)
    assert insight.note is None


def test_bullets_are_short_lines_without_trailing_periods() -> None:
    insight = extractive_insight(InsightKind.BULLETS, SOURCES)
    assert 1 <= len(insight.items) <= 5
    assert not any(item.text.endswith(".") for item in insight.items)


def test_an_outline_has_a_title_per_source_with_its_key_sentences_below() -> None:
    insight = extractive_insight(InsightKind.OUTLINE, SOURCES)
    top = [item for item in insight.items if item.level == 0]
    assert [(item.text, item.citations) for item in top] == [
        (source.title, [source.source_id]) for source in SOURCES
    ]
    levels = [item.level for item in insight.items]
    assert set(levels) == {0, 1}
    # Each sub-point sits under the title of the source it cites, at most two per source.
    current = ""
    per_source: dict[str, int] = {}
    for item in insight.items:
        if item.level == 0:
            current = item.citations[0]
        else:
            assert item.citations == [current]
            per_source[current] = per_source.get(current, 0) + 1
    assert per_source == {SEMAGLUTIDE.source_id: 2, METASTASES.source_id: 2}


def test_a_source_without_abstract_still_contributes_its_title() -> None:
    insight = extractive_insight(InsightKind.SUMMARY, [WHO])
    assert [(item.text, item.citations) for item in insight.items] == [
        ("Ethics and governance of artificial intelligence for health.", [WHO.source_id])
    ]


def test_a_question_is_answered_from_the_source_that_holds_the_answer() -> None:
    insight = extractive_insight(InsightKind.QA, SOURCES, "What dose of semaglutide was used?")
    assert insight.question == "What dose of semaglutide was used?"
    assert insight.note is None
    assert "2.4 mg" in insight.items[0].text
    assert insight.items[0].citations == [SEMAGLUTIDE.source_id]


def test_a_question_no_source_answers_gives_a_note_and_no_items() -> None:
    insight = extractive_insight(
        InsightKind.QA, SOURCES, "Which vaccine schedule prevents measles outbreaks?"
    )
    assert insight.items == []
    assert insight.note == "none of the attached sources answers the question"


def test_qa_without_a_question_is_refused() -> None:
    for question in (None, "   "):
        with pytest.raises(InvalidInput, match="needs a question"):
            extractive_insight(InsightKind.QA, SOURCES, question)


def test_no_sources_is_refused() -> None:
    with pytest.raises(InvalidInput, match="attach at least one source"):
        extractive_insight(InsightKind.SUMMARY, [])


def test_references_list_each_source_once_formatted_and_cited() -> None:
    insight = references_insight([*SOURCES, SEMAGLUTIDE])
    assert insight.kind is InsightKind.REFERENCES
    assert [(item.text, item.citations) for item in insight.items] == [
        (format_reference(source), [source.source_id]) for source in SOURCES
    ]
    assert extractive_insight(InsightKind.REFERENCES, SOURCES) == insight


def test_the_same_sources_give_the_same_insight() -> None:
    first = extractive_insight(InsightKind.SUMMARY, SOURCES)
    assert extractive_insight(InsightKind.SUMMARY, list(SOURCES)) == first
