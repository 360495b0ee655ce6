"""The markdown export: sections per insight, numbered citations that match the reference
list, uncited sources apart, removed citations counted."""

from __future__ import annotations

import re

from studio_ai.domain.references import format_reference
from studio_ai.domain.research_export import session_markdown
from studio_ai.domain.research_extractive import extractive_insight, references_insight
from studio_ai.schemas.research import (
    FlaggedCitation,
    Insight,
    InsightItem,
    InsightKind,
    ProviderName,
    ResearchSource,
)

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
        "Participants were randomly assigned to once-weekly subcutaneous semaglutide at a dose "
        "of 2.4 mg or placebo for 68 weeks. The mean change in body weight was -14.9% with "
        "semaglutide and -2.4% with placebo."
    ),
)
METASTASES = ResearchSource(
    source_id="arxiv:1606.05718",
    provider=ProviderName.ARXIV,
    external_id="1606.05718",
    title="Deep Learning for Identifying Metastatic Breast Cancer",
    authors=["Dayong Wang", "Aditya Khosla"],
    year=2016,
    venue="arXiv",
    abstract=(
        "Our deep learning system achieved an area under the curve of 0.925 for whole slide "
        "image classification of sentinel lymph node biopsies."
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

SUMMARY = Insight(
    kind=InsightKind.SUMMARY,
    items=[
        InsightItem(
            text="A deep learning system reached an AUC of 0.925.", citations=[METASTASES.source_id]
        ),
        InsightItem(
            text="Semaglutide 2.4 mg reduced body weight by 14.9%.",
            citations=[SEMAGLUTIDE.source_id, METASTASES.source_id],
        ),
    ],
)
BULLETS = Insight(
    kind=InsightKind.BULLETS,
    items=[
        InsightItem(
            text="Weight fell by 14.9% with semaglutide", citations=[SEMAGLUTIDE.source_id]
        ),
        InsightItem(text="Placebo lowered weight by 2.4%", citations=[SEMAGLUTIDE.source_id]),
    ],
    flagged_citations=[
        FlaggedCitation(citation="crossref:10.9999/invented", reason="not an attached source")
    ],
)
OUTLINE = Insight(
    kind=InsightKind.OUTLINE,
    items=[
        InsightItem(text="Obesity pharmacotherapy", citations=[SEMAGLUTIDE.source_id]),
        InsightItem(text="Semaglutide 2.4 mg weekly", citations=[SEMAGLUTIDE.source_id], level=1),
        InsightItem(text="68 weeks of treatment", citations=[], level=2),
    ],
)


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"{heading}\n")
    following = markdown.find("\n## ", start + 1)
    return markdown[start : following if following != -1 else len(markdown)]


def test_the_document_has_a_title_and_a_section_per_insight() -> None:
    qa = Insight(kind=InsightKind.QA, question="What dose was used?", items=[])
    markdown = session_markdown("Semaglutide deck", [SUMMARY, BULLETS, OUTLINE, qa], SOURCES)
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == [
        "# Semaglutide deck",
        "## Summary",
        "## Key points",
        "## Outline",
        "## Q&A: What dose was used?",
        "## References",
        "## Further reading",
    ]


def test_citation_numbers_follow_first_citation_and_match_the_references() -> None:
    markdown = session_markdown("Deck", [SUMMARY, BULLETS], SOURCES)
    assert (
        "A deep learning system reached an AUC of 0.925 [1]. "
        "Semaglutide 2.4 mg reduced body weight by 14.9% [1, 2]." in markdown
    )
    assert "- Weight fell by 14.9% with semaglutide [2]" in markdown
    references = section(markdown, "## References")
    assert f"1. {format_reference(METASTASES)}" in references
    assert f"2. {format_reference(SEMAGLUTIDE)}" in references


def test_every_inline_number_has_its_reference() -> None:
    insights = [
        extractive_insight(InsightKind.SUMMARY, SOURCES),
        extractive_insight(InsightKind.OUTLINE, SOURCES),
    ]
    markdown = session_markdown("Deck", insights, SOURCES)
    body = markdown[: markdown.index("## References")]
    inline = {int(n) for group in re.findall(r"\[([\d, ]+)\]", body) for n in group.split(",")}
    listed = {
        int(line.split(".", 1)[0])
        for line in section(markdown, "## References").splitlines()
        if line[:1].isdigit()
    }
    assert inline == listed == set(range(1, len(listed) + 1))


def test_uncited_sources_are_further_reading_not_numbered_references() -> None:
    markdown = session_markdown("Deck", [BULLETS], SOURCES)
    references = section(markdown, "## References")
    assert format_reference(WHO) not in references
    further = section(markdown, "## Further reading")
    assert f"- {format_reference(WHO)}" in further
    assert f"- {format_reference(METASTASES)}" in further


def test_an_outline_keeps_its_levels_as_indentation() -> None:
    markdown = session_markdown("Deck", [OUTLINE], SOURCES)
    assert (
        "- Obesity pharmacotherapy [1]\n"
        "  - Semaglutide 2.4 mg weekly [1]\n"
        "    - 68 weeks of treatment\n" in markdown
    )


def test_flagged_citations_are_counted_under_their_section_not_rendered() -> None:
    markdown = session_markdown("Deck", [SUMMARY, BULLETS], SOURCES)
    assert "invented" not in markdown
    assert "> Note: 1 citation(s) to sources not attached were removed." in section(
        markdown, "## Key points"
    )
    assert "> Note:" not in section(markdown, "## Summary")


def test_a_citation_of_a_source_the_export_does_not_have_is_dropped_and_counted() -> None:
    insight = Insight(
        kind=InsightKind.BULLETS,
        items=[InsightItem(text="A claim", citations=["crossref:10.1/detached"])],
    )
    markdown = session_markdown("Deck", [insight], SOURCES)
    assert "- A claim\n" in markdown
    assert "> Note: 1 citation(s) to sources not attached were removed." in markdown
    assert "## References" not in markdown


def test_an_unanswered_question_shows_its_note() -> None:
    qa = extractive_insight(InsightKind.QA, SOURCES, "Which vaccine schedule prevents measles?")
    markdown = session_markdown("Deck", [qa], SOURCES)
    assert "## Q&A: Which vaccine schedule prevents measles?\n\n" in markdown
    assert "_None of the attached sources answers the question._" in markdown


def test_text_cannot_open_a_heading_or_list() -> None:
    insights = [
        Insight(
            kind=InsightKind.SUMMARY,
            items=[InsightItem(text="# 1 finding\nthat spans lines.", citations=[WHO.source_id])],
        ),
        Insight(
            kind=InsightKind.BULLETS,
            items=[
                InsightItem(text="## Not a heading", citations=[WHO.source_id]),
                InsightItem(text="1. Not a numbered list", citations=[]),
            ],
        ),
    ]
    markdown = session_markdown("# Deck", insights, SOURCES)
    assert markdown.startswith("# \\# Deck\n")
    assert "\n\\# 1 finding that spans lines [1].\n" in markdown
    assert "- \\## Not a heading [1]" in markdown
    assert "- 1\\. Not a numbered list" in markdown
    assert not any(line.startswith("# ") for line in markdown.splitlines()[1:])


def test_a_references_insight_numbers_all_its_sources_after_the_cited_ones() -> None:
    markdown = session_markdown("Deck", [references_insight(SOURCES), BULLETS], SOURCES)
    assert markdown.count("## References") == 1
    assert "## Further reading" not in markdown
    assert section(markdown, "## References").splitlines()[2:] == [
        f"1. {format_reference(SEMAGLUTIDE)}",
        f"2. {format_reference(METASTASES)}",
        f"3. {format_reference(WHO)}",
    ]
