"""Citation markers are checked against the attached sources: real ones kept, invented ones
flagged and removed from the text."""

from __future__ import annotations

from studio_ai.domain.citations import NOT_ATTACHED, NUMBERED, check_citations

ATTACHED = [
    "crossref:10.1056/nejmoa2032183",
    "arxiv:1606.05718",
    "fixture:llm-clinical-summaries",
]


def test_attached_citations_are_kept_in_order_and_removed_from_the_text() -> None:
    checked = check_citations(
        "Semaglutide reduced body weight by 14.9% [crossref:10.1056/nejmoa2032183]. "
        "A deep learning system detected metastases [arxiv:1606.05718].",
        ATTACHED,
    )
    assert checked.text == (
        "Semaglutide reduced body weight by 14.9%. A deep learning system detected metastases."
    )
    assert checked.citations == ["crossref:10.1056/nejmoa2032183", "arxiv:1606.05718"]
    assert checked.flagged == []


def test_an_invented_citation_is_flagged_and_removed() -> None:
    checked = check_citations(
        "Tirzepatide lowered HbA1c [crossref:10.9999/invented.2023]. "
        "Semaglutide lowered weight [crossref:10.1056/nejmoa2032183].",
        ATTACHED,
    )
    assert "invented" not in checked.text
    assert "[" not in checked.text
    assert checked.citations == ["crossref:10.1056/nejmoa2032183"]
    assert [(f.citation, f.reason) for f in checked.flagged] == [
        ("crossref:10.9999/invented.2023", NOT_ATTACHED)
    ]


def test_several_ids_in_one_bracket_are_each_checked() -> None:
    checked = check_citations(
        "Both reported benefit [arxiv:1606.05718; crossref:10.1056/nejmoa2032183, pubmed:123].",
        ATTACHED,
    )
    assert checked.text == "Both reported benefit."
    assert checked.citations == ["arxiv:1606.05718", "crossref:10.1056/nejmoa2032183"]
    assert [f.citation for f in checked.flagged] == ["pubmed:123"]


def test_an_arxiv_version_and_doi_case_match_the_attached_id() -> None:
    checked = check_citations(
        "Detection improved [arXiv:1606.05718v2]. Weight fell [crossref:10.1056/NEJMoa2032183].",
        ATTACHED,
    )
    assert checked.citations == ["arxiv:1606.05718", "crossref:10.1056/nejmoa2032183"]
    assert checked.flagged == []


def test_doi_and_arxiv_links_spell_attached_sources() -> None:
    checked = check_citations(
        "Weight fell [doi:10.1056/nejmoa2032183] and metastases were found "
        "[https://arxiv.org/abs/1606.05718v1].",
        ATTACHED,
    )
    assert checked.citations == ["crossref:10.1056/nejmoa2032183", "arxiv:1606.05718"]


def test_repeated_citations_are_listed_once() -> None:
    checked = check_citations(
        "Summaries were accurate [fixture:llm-clinical-summaries]. They were also brief "
        "[fixture:llm-clinical-summaries]. Fabricated [x:1] and again [x:1].",
        ATTACHED,
    )
    assert checked.citations == ["fixture:llm-clinical-summaries"]
    assert [f.citation for f in checked.flagged] == ["x:1"]


def test_brackets_that_are_not_source_ids_stay_as_text() -> None:
    text = (
        "The hazard ratio was 0.80 [95% CI 0.72 to 0.90] and the interval [1.2, 3.4] held "
        "[Note: exploratory] at [10:30]."
    )
    checked = check_citations(text, ATTACHED)
    assert checked.text == text
    assert checked.citations == []
    assert checked.flagged == []


def test_numbered_markers_name_no_source_and_are_removed() -> None:
    checked = check_citations("Weight fell [1]. Nausea was common [2, 3].", ATTACHED)
    assert checked.text == "Weight fell. Nausea was common."
    assert [(f.citation, f.reason) for f in checked.flagged] == [
        ("[1]", NUMBERED),
        ("[2, 3]", NUMBERED),
    ]


def test_a_marker_after_the_period_leaves_tidy_text() -> None:
    checked = check_citations(
        "[fixture:llm-clinical-summaries] Models drafted notes. [arxiv:1606.05718]  Done here.",
        ATTACHED,
    )
    assert checked.text == "Models drafted notes. Done here."


def test_line_breaks_and_indentation_survive() -> None:
    checked = check_citations("- Weight fell [arxiv:1606.05718]\n  - by 15%", ATTACHED)
    assert checked.text == "- Weight fell\n  - by 15%"


def test_a_very_long_invented_citation_is_shortened_for_the_flag() -> None:
    checked = check_citations(f"Claim [crossref:10.1/{'x' * 500}].", ATTACHED)
    assert len(checked.flagged[0].citation) <= 300
