"""LLM insights: the prompt lists the sources by id, and the answer is parsed into items that
cite only attached sources."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.insight_prompts import insight_messages, parse_insight
from studio_ai.schemas.research import InsightKind, ProviderName, ResearchSource

SEMAGLUTIDE = ResearchSource(
    source_id="crossref:10.1056/nejmoa2032183",
    provider=ProviderName.CROSSREF,
    external_id="10.1056/nejmoa2032183",
    title="Once-Weekly Semaglutide in Adults with Overweight or Obesity",
    authors=["John P. H. Wilding"],
    year=2021,
    venue="New England Journal of Medicine",
    abstract=(
        "In this double-blind trial, 1961 adults with obesity received once-weekly "
        "semaglutide 2.4 mg or placebo for 68 weeks. The mean change in body weight was "
        "-14.9% with semaglutide and -2.4% with placebo."
    ),
)
METASTASES = ResearchSource(
    source_id="arxiv:1606.05718",
    provider=ProviderName.ARXIV,
    external_id="1606.05718",
    title="Deep Learning for Identifying Metastatic Breast Cancer",
    year=2016,
    abstract=(
        "A deep learning system detected metastatic breast cancer in sentinel lymph node "
        "slides with an area under the curve of 0.925."
    ),
)
UNDATED = ResearchSource(
    source_id="fixture:llm-clinical-summaries",
    provider=ProviderName.FIXTURE,
    external_id="llm-clinical-summaries",
    title="Large language models for clinical summaries",
)
SOURCES = [SEMAGLUTIDE, METASTASES, UNDATED]
ATTACHED = {source.source_id for source in SOURCES}


# --------------------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    "kind", [InsightKind.SUMMARY, InsightKind.BULLETS, InsightKind.OUTLINE, InsightKind.QA]
)
def test_the_prompt_lists_every_source_by_id_and_asks_for_citations(kind: InsightKind) -> None:
    messages = insight_messages(kind, SOURCES, "What dose of semaglutide was used?")
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert "only" in system
    assert "[crossref:10.1038/srep16696]" in system  # shows the citation format
    assert (
        "[crossref:10.1056/nejmoa2032183] Once-Weekly Semaglutide in Adults with Overweight or "
        "Obesity (2021). In this double-blind trial" in user
    )
    assert (
        "[arxiv:1606.05718] Deep Learning for Identifying Metastatic Breast Cancer (2016)." in user
    )
    assert "[fixture:llm-clinical-summaries] Large language models for clinical summaries." in user
    assert "None" not in user


def test_each_kind_gets_its_own_instruction() -> None:
    def user(kind: InsightKind) -> str:
        return str(insight_messages(kind, SOURCES, "What dose was used?")[1]["content"])

    assert "one paragraph of 3 to 5 sentences" in user(InsightKind.SUMMARY)
    assert '"- "' in user(InsightKind.BULLETS)
    assert '"  - "' in user(InsightKind.OUTLINE)
    qa = user(InsightKind.QA)
    assert "Question: What dose was used?" in qa
    assert "do not answer" in qa
    assert qa.index("Question:") < qa.index("Sources:")


def test_long_abstracts_are_cut_at_a_word() -> None:
    content = insight_messages(InsightKind.SUMMARY, [SEMAGLUTIDE], max_chars_per_source=40)[1][
        "content"
    ]
    assert "In this double-blind trial, 1961 adults\u2026" in content
    assert "68 weeks" not in content


def test_references_never_go_to_a_model_and_qa_needs_a_question() -> None:
    with pytest.raises(InvalidInput, match="formatted from the sources"):
        insight_messages(InsightKind.REFERENCES, SOURCES)
    with pytest.raises(InvalidInput, match="needs a question"):
        insight_messages(InsightKind.QA, SOURCES, "  ")
    with pytest.raises(InvalidInput, match="attach at least one source"):
        insight_messages(InsightKind.SUMMARY, [])


# --------------------------------------------------------------------------- parsing


def test_a_summary_is_split_into_cited_sentences_without_preamble_or_reasoning() -> None:
    answer = (
        "<think>The user wants a summary [crossref:10.1/thinking].</think>\n"
        "Here is a summary:\n\n"
        "Semaglutide 2.4 mg reduced body weight by 14.9% [crossref:10.1056/nejmoa2032183]. "
        "A deep learning system detected nodal metastases. [arXiv:1606.05718v2] "
        "Aspirin halved mortality [crossref:10.9999/invented].\n\n"
        "Let me know if you need anything else!"
    )
    insight = parse_insight(InsightKind.SUMMARY, answer, SOURCES)
    assert [(item.text, item.citations) for item in insight.items] == [
        ("Semaglutide 2.4 mg reduced body weight by 14.9%.", ["crossref:10.1056/nejmoa2032183"]),
        ("A deep learning system detected nodal metastases.", ["arxiv:1606.05718"]),
        ("Aspirin halved mortality.", []),
    ]
    assert [f.citation for f in insight.flagged_citations] == ["crossref:10.9999/invented"]
    assert insight.note is None
    assert set(insight.citations) <= ATTACHED


def test_an_unclosed_reasoning_prefix_is_dropped() -> None:
    answer = (
        "I should cite the trial.</think>Weight fell by 14.9% [crossref:10.1056/nejmoa2032183]."
    )
    insight = parse_insight(InsightKind.SUMMARY, answer, SOURCES)
    assert [item.text for item in insight.items] == ["Weight fell by 14.9%."]


def test_bullets_are_the_list_lines_whatever_their_marker() -> None:
    answer = (
        "Key points:\n"
        "- Semaglutide reduced weight by 14.9% [crossref:10.1056/nejmoa2032183]\n"
        "* Nausea was the most common adverse event\n"
        "  [crossref:10.1056/nejmoa2032183]\n"
        "\u2022 Deep learning detected metastases [arxiv:1606.05718]\n"
        "1. **AUC** was 0.925 [arxiv:1606.05718]\n"
        "- [crossref:10.1056/nejmoa2032183]\n"
        "\nThese points come from the attached sources."
    )
    insight = parse_insight(InsightKind.BULLETS, answer, SOURCES)
    assert [(item.text, item.level) for item in insight.items] == [
        ("Semaglutide reduced weight by 14.9%", 0),
        ("Nausea was the most common adverse event", 0),
        ("Deep learning detected metastases", 0),
        ("AUC was 0.925", 0),
    ]
    assert all(item.citations for item in insight.items)


def test_an_outline_keeps_its_indentation_as_levels() -> None:
    answer = (
        "- Semaglutide for obesity [crossref:10.1056/nejmoa2032183]\n"
        "  - Weight fell by 14.9% [crossref:10.1056/nejmoa2032183]\n"
        "    - versus 2.4% with placebo [crossref:10.1056/nejmoa2032183]\n"
        "  - Gastrointestinal events were common\n"
        "- AI in pathology [arxiv:1606.05718]\n"
        "\t- AUC 0.925 [arxiv:1606.05718]\n"
    )
    insight = parse_insight(InsightKind.OUTLINE, answer, SOURCES)
    assert [(item.text, item.level) for item in insight.items] == [
        ("Semaglutide for obesity", 0),
        ("Weight fell by 14.9%", 1),
        ("versus 2.4% with placebo", 2),
        ("Gastrointestinal events were common", 1),
        ("AI in pathology", 0),
        ("AUC 0.925", 1),
    ]


def test_outline_headings_become_top_level_items_under_a_dropped_title() -> None:
    answer = (
        "# Outline\n"
        "## Obesity treatment\n"
        "- Semaglutide reduced weight [crossref:10.1056/nejmoa2032183]\n"
        "\n**Pathology**\n\n"
        "- Deep learning found metastases [arxiv:1606.05718]\n"
    )
    insight = parse_insight(InsightKind.OUTLINE, answer, SOURCES)
    assert [(item.text, item.level) for item in insight.items] == [
        ("Obesity treatment", 0),
        ("Semaglutide reduced weight", 1),
        ("Pathology", 0),
        ("Deep learning found metastases", 1),
    ]


def test_a_reference_list_the_model_adds_is_dropped() -> None:
    answer = (
        "- Weight fell by 14.9% [crossref:10.1056/nejmoa2032183]\n\n"
        "References:\n"
        "- [crossref:10.1056/nejmoa2032183] Wilding JPH. Once-weekly semaglutide."
    )
    insight = parse_insight(InsightKind.BULLETS, answer, SOURCES)
    assert [item.text for item in insight.items] == ["Weight fell by 14.9%"]


def test_an_answer_citing_sources_keeps_the_question() -> None:
    answer = (
        "Participants received semaglutide 2.4 mg once weekly [crossref:10.1056/nejmoa2032183]."
    )
    insight = parse_insight(InsightKind.QA, answer, SOURCES, "What dose was used?")
    assert insight.question == "What dose was used?"
    assert insight.citations == ["crossref:10.1056/nejmoa2032183"]
    assert insight.note is None


def test_an_answer_that_cites_nothing_says_the_sources_do_not_answer() -> None:
    answer = "The attached sources do not report the cost of semaglutide."
    insight = parse_insight(InsightKind.QA, answer, SOURCES, "How much does semaglutide cost?")
    assert insight.note == "none of the attached sources answers the question"
    assert insight.citations == []


def test_an_empty_answer_gives_no_items_and_a_note() -> None:
    insight = parse_insight(InsightKind.BULLETS, "<think>hmm</think>\n\n", SOURCES)
    assert insight.items == []
    assert insight.note == "the model returned no usable text"


def test_parsing_a_references_answer_is_refused() -> None:
    with pytest.raises(InvalidInput, match="formatted from the sources"):
        parse_insight(InsightKind.REFERENCES, "- x", SOURCES)


def test_lines_without_list_markers_are_items_too() -> None:
    answer = (
        "## Key points\n"
        "Semaglutide reduced weight [crossref:10.1056/nejmoa2032183]\n"
        "Deep learning found metastases [arxiv:1606.05718]\n"
    )
    insight = parse_insight(InsightKind.BULLETS, answer, SOURCES)
    assert [item.text for item in insight.items] == [
        "Semaglutide reduced weight",
        "Deep learning found metastases",
    ]
