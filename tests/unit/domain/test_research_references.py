"""References read like a Vancouver/AMA bibliography entry, whatever the source leaves out."""

from __future__ import annotations

from typing import Any

import pytest

from studio_ai.domain.references import distinct_sources, format_reference
from studio_ai.schemas.research import ProviderName, ResearchSource


def crossref(**overrides: Any) -> ResearchSource:
    fields: dict[str, Any] = {
        "source_id": "crossref:10.1056/nejmoa2032183",
        "provider": ProviderName.CROSSREF,
        "external_id": "10.1056/nejmoa2032183",
        "title": "Once-Weekly Semaglutide in Adults with Overweight or Obesity",
        "authors": [
            "John P. H. Wilding",
            "Rachel L. Batterham",
            "Salvatore Calanna",
            "Melanie Davies",
        ],
        "year": 2021,
        "venue": "New England Journal of Medicine",
        "doi": "10.1056/nejmoa2032183",
        "work_type": "journal-article",
    }
    return ResearchSource(**{**fields, **overrides})


def arxiv(**overrides: Any) -> ResearchSource:
    fields: dict[str, Any] = {
        "source_id": "arxiv:1606.05718",
        "provider": ProviderName.ARXIV,
        "external_id": "1606.05718",
        "title": "Deep Learning for Identifying Metastatic Breast Cancer",
        "authors": ["Dayong Wang", "Aditya Khosla", "Rishab Gargeya"],
        "year": 2016,
        "venue": "arXiv",
        "version": "v1",
    }
    return ResearchSource(**{**fields, **overrides})


def test_a_journal_article_lists_three_authors_then_et_al_and_its_doi() -> None:
    assert format_reference(crossref()) == (
        "Wilding JPH, Batterham RL, Calanna S, et al. Once-Weekly Semaglutide in Adults with "
        "Overweight or Obesity. New England Journal of Medicine. 2021. "
        "doi:10.1056/nejmoa2032183"
    )


def test_three_authors_are_listed_without_et_al() -> None:
    reference = format_reference(crossref(authors=["Ana Silva", "Bo Chen", "Carla Mendes"]))
    assert reference.startswith("Silva A, Chen B, Mendes C. Once-Weekly")
    assert "et al" not in reference


def test_an_arxiv_preprint_names_its_versioned_id_once() -> None:
    reference = format_reference(arxiv(version="v2"))
    assert reference == (
        "Wang D, Khosla A, Gargeya R. Deep Learning for Identifying Metastatic Breast Cancer "
        "[preprint]. 2016. arXiv:1606.05718v2"
    )


def test_an_arxiv_id_without_a_known_version_has_no_suffix() -> None:
    assert format_reference(arxiv(version=None)).endswith(" arXiv:1606.05718")


def test_a_doi_wins_over_the_arxiv_id_and_url() -> None:
    reference = format_reference(
        arxiv(doi="https://doi.org/10.1038/s41591-019-0508-1", url="https://arxiv.org/abs/x")
    )
    assert reference.endswith(" doi:10.1038/s41591-019-0508-1")


def test_missing_parts_leave_no_none_and_no_double_punctuation() -> None:
    bare = ResearchSource(
        source_id="fixture:llm-clinical-summaries",
        provider=ProviderName.FIXTURE,
        external_id="llm-clinical-summaries",
        title="Large language models for clinical summaries.",
    )
    assert format_reference(bare) == "Large language models for clinical summaries."
    with_url = bare.model_copy(update={"url": "https://example.org/llm", "venue": "Lancet."})
    assert format_reference(with_url) == (
        "Large language models for clinical summaries. Lancet. https://example.org/llm"
    )
    for source in (bare, with_url, crossref(authors=[], year=None, venue=None)):
        reference = format_reference(source)
        assert "None" not in reference
        assert ".." not in reference
        assert ". ." not in reference


def test_a_question_title_keeps_its_question_mark() -> None:
    reference = format_reference(crossref(title="Does aspirin prevent preeclampsia?"))
    assert "Does aspirin prevent preeclampsia? New England" in reference


@pytest.mark.parametrize(
    "author",
    [
        "World Health Organization",
        "GBD 2019 Diseases and Injuries Collaborators",
        "Centers for Disease Control and Prevention",
        "Cochrane",
    ],
)
def test_organisations_are_kept_verbatim(author: str) -> None:
    assert format_reference(crossref(authors=[author])).startswith(f"{author}. Once-Weekly")


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("Jean-Pierre Dupont", "Dupont JP"),
        ("Vincent van Gogh", "van Gogh V"),
        ("Martin Luther King Jr.", "King ML Jr"),
        ("Wilding, John P. H.", "Wilding JPH"),
        ("J.P.H. Wilding", "Wilding JPH"),
        ("Émilie du Châtelet", "du Châtelet É"),
    ],
)
def test_person_names_become_family_name_and_initials(author: str, expected: str) -> None:
    assert format_reference(crossref(authors=[author])).startswith(f"{expected}. Once-Weekly")


def test_blank_author_entries_are_skipped() -> None:
    assert format_reference(crossref(authors=["  ", "Ana Silva"])).startswith("Silva A. Once")


def test_a_source_with_nothing_to_print_falls_back_to_its_id() -> None:
    empty = ResearchSource(
        source_id="fixture:untitled",
        provider=ProviderName.FIXTURE,
        external_id="untitled",
        title="",
    )
    assert format_reference(empty) == "fixture:untitled"


def test_distinct_sources_keeps_the_first_of_each_id_in_order() -> None:
    first, other = crossref(), arxiv()
    again = crossref(title="A later copy")
    assert distinct_sources([first, other, again]) == [first, other]
