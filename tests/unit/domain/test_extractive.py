"""The extractive engine: summaries, bullets and answers taken from the inputs, with sources."""

from __future__ import annotations

import pytest

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.extractive import (
    Sentence,
    Source,
    answer,
    bullets,
    render,
    split_sentences,
    summarize,
)

DOI = "crossref:10.1056/NEJMoa2032183"

ABSTRACT = """Background
Obesity is a chronic disease associated with cardiovascular and metabolic complications.

Methods
We conducted a randomized, double-blind, placebo-controlled trial of once-weekly semaglutide in
adults with obesity (Wilding et al., 2021). A total of 1961 adults with a body-mass index of 30 or
greater were randomly assigned in a 2:1 ratio to semaglutide or placebo. Participants received
subcutaneous semaglutide at a dose of 2.4 mg once weekly, plus lifestyle intervention, for 68
weeks. The primary end point was the percentage change in body weight from baseline to week 68.

Results
The mean change in body weight from baseline to week 68 was -14.9% in the semaglutide group as
compared with -2.4% in the placebo group (p < 0.001). Gastrointestinal adverse events, mostly mild
to moderate nausea and diarrhea, were more frequent with semaglutide than with placebo.

Conclusions
In adults with obesity, once-weekly semaglutide plus lifestyle intervention led to a sustained,
clinically relevant reduction in body weight compared with placebo. This study was funded by Novo
Nordisk; the funder had no role in data analysis.
Trial registration: ClinicalTrials.gov number NCT03548935."""

RESULT = "The mean change in body weight from baseline to week 68 was -14.9%"
CONCLUSION = "once-weekly semaglutide plus lifestyle intervention led to a sustained"
DOSE = "at a dose of 2.4 mg once weekly"

NOTES = Source(
    "job:notes-1",
    "Semaglutide is a glucagon-like peptide-1 receptor agonist. "
    "Weight regain after stopping treatment was reported in an extension study.",
)


def texts(sentences: list[Sentence]) -> str:
    return "\n".join(s.text for s in sentences)


def test_summary_of_a_trial_abstract_keeps_results_and_conclusion_not_funding() -> None:
    summary = summarize(
        "Summarize this abstract for a slide.", [Source(DOI, ABSTRACT)], max_sentences=3
    )

    assert len(summary) == 3
    assert RESULT in texts(summary)
    assert CONCLUSION in texts(summary)
    assert "funded" not in texts(summary)
    assert "ClinicalTrials.gov" not in texts(summary)
    assert "Summarize" not in texts(summary)
    assert all(s.ref == DOI for s in summary)


def test_summary_follows_the_order_of_the_text() -> None:
    summary = summarize("", [Source(DOI, ABSTRACT)], max_sentences=4)

    assert [s.index for s in summary] == sorted(s.index for s in summary)
    assert "funded" not in texts(summary)


def test_every_sentence_is_one_of_the_inputs_and_says_where_it_came_from() -> None:
    prompt = "Summarize the evidence. Semaglutide lowered body weight in adults with obesity."
    sources = [Source(DOI, ABSTRACT), NOTES]

    chosen = [
        *summarize(prompt, sources, max_sentences=10),
        *answer("What dose was used?", sources),
    ]

    by_ref: dict[str | None, list[str]] = {s.ref: split_sentences(s.text) for s in sources}
    by_ref[None] = split_sentences(prompt)
    assert {s.ref for s in chosen} == {DOI, NOTES.ref, None}
    for sentence in chosen:
        assert by_ref[sentence.ref][sentence.index] == sentence.text
    assert "Summarize the evidence." not in texts(chosen)


def test_bullets_are_sentences_of_the_input_trimmed_to_bullet_style() -> None:
    source = Source(
        "fixture:trial",
        "However, the trial met its primary end point at week 68. "
        "In addition, gastrointestinal events were mostly mild and transient. "
        "Moreover, weight regain occurred after treatment was stopped [12].",
    )

    points = bullets("", [source], max_bullets=5)

    assert [p.text for p in points] == [
        "The trial met its primary end point at week 68",
        "Gastrointestinal events were mostly mild and transient",
        "Weight regain occurred after treatment was stopped",
    ]
    assert all(p.ref == "fixture:trial" for p in points)
    for point in points:
        assert point.text[1:] in source.text


def test_near_duplicates_are_said_once() -> None:
    sentence = "Semaglutide reduced body weight by 15 percent at week 68 in adults with obesity."
    sources = [
        Source("crossref:a", sentence + " Nausea was the most common adverse event reported."),
        Source("crossref:b", sentence.replace("reduced", "lowered")),
        Source("crossref:c", sentence),
    ]

    summary = summarize("", sources, max_sentences=5)

    assert sum("body weight by 15 percent" in s.text for s in summary) == 1
    assert any("Nausea" in s.text for s in summary)


def test_answer_gives_the_sentence_that_answers() -> None:
    sources = [Source(DOI, ABSTRACT), NOTES]

    dose = answer("What dose was used?", sources)
    end_point = answer("What was the primary end point?", sources, max_sentences=1)

    assert DOSE in dose[0].text
    assert dose[0].ref == DOI
    assert end_point[0].text.startswith("The primary end point was")


def test_answer_is_empty_when_the_inputs_do_not_say() -> None:
    sources = [Source(DOI, ABSTRACT), NOTES]

    assert answer("What is the capital of France?", sources) == []
    assert answer("What dose of aspirin was used?", sources) == []


def test_answer_reads_context_written_into_the_question() -> None:
    question = (
        "Aspirin 100 mg was given daily to all patients. Bleeding was rare and mild overall. "
        "What dosage was given?"
    )

    found = answer(question, [])

    assert [s.text for s in found] == ["Aspirin 100 mg was given daily to all patients."]
    assert found[0].ref is None


def test_citations_render_as_ref_in_brackets() -> None:
    sentences = [
        Sentence("Semaglutide reduced body weight.", DOI, 5),
        Sentence("Nausea was mostly mild", "job:notes-1", 2),
        Sentence("The prompt said so.", None, 0),
    ]

    paragraph = render(sentences, style="paragraph", cite=True)
    listed = render(sentences, style="bullets", cite=True)

    assert paragraph == (
        f"Semaglutide reduced body weight. [{DOI}] Nausea was mostly mild. [job:notes-1] "
        "The prompt said so."
    )
    assert listed.splitlines() == [
        f"- Semaglutide reduced body weight. [{DOI}]",
        "- Nausea was mostly mild [job:notes-1]",
        "- The prompt said so.",
    ]
    assert "[" not in render(sentences, style="paragraph", cite=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "As reported by Smith et al. in 2019, the effect held. It was large.",
            ["As reported by Smith et al. in 2019, the effect held.", "It was large."],
        ),
        (
            "Patients received 3.5 mg daily vs. placebo (see Fig. 2). Dr. Lee led the study.",
            ["Patients received 3.5 mg daily vs. placebo (see Fig. 2).", "Dr. Lee led the study."],
        ),
        (
            "Weight fell more with semaglutide, p < 0.05. Nausea, e.g. after dosing, was common.",
            [
                "Weight fell more with semaglutide, p < 0.05.",
                "Nausea, e.g. after dosing, was common.",
            ],
        ),
        (
            "Adverse events (i.e. nausea) were mild. mRNA levels rose in all groups.",
            ["Adverse events (i.e. nausea) were mild.", "mRNA levels rose in all groups."],
        ),
    ],
)
def test_splitting_keeps_abbreviations_and_decimals_inside_sentences(
    text: str, expected: list[str]
) -> None:
    assert split_sentences(text) == expected


def test_splitting_reads_lists_headings_and_markup() -> None:
    text = (
        "## Key findings\n"
        "- Weight fell by 15% at week 68\n"
        "2. Nausea was mostly mild\n"
        "Results: the effect was sustained\n"
        "over the full\tstudy period.\n\n"
        "<jats:p>Bleeding was <jats:italic>rare</jats:italic> &amp; mild.</jats:p> Ok then."
    )

    assert split_sentences(text) == [
        "Weight fell by 15% at week 68",
        "Nausea was mostly mild",
        "the effect was sustained over the full study period.",
        "Bleeding was rare & mild.",
    ]


def test_empty_input_gives_an_empty_result() -> None:
    blank = [Source("fixture:empty", ""), Source("fixture:blank", "  \n\n ")]

    assert split_sentences("") == []
    assert summarize("", []) == []
    assert summarize(" ", blank) == []
    assert bullets("", blank) == []
    assert answer("", []) == []
    assert answer("What dose was used?", blank) == []
    assert render([], style="bullets", cite=True) == ""


def test_a_limit_below_one_is_refused_with_the_fix() -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        summarize("text", [], max_sentences=0)


def test_same_input_gives_the_same_output() -> None:
    sources = [Source(DOI, ABSTRACT), NOTES]

    assert summarize("", sources) == summarize("", list(sources))
    assert bullets("", sources) == bullets("", sources)
    assert answer("What were the adverse events?", sources) == answer(
        "What were the adverse events?", sources
    )


def test_a_large_context_is_handled() -> None:
    # 200 KB of context: no timing asserted (the engine is linear; a slow machine must not fail).
    paragraphs = [
        f"Cohort {n} enrolled {n + 40} adults with obesity at site {n % 17}. "
        f"Participants in cohort {n} received semaglutide at {n % 5 + 1}.4 mg weekly. "
        f"Mean weight change in cohort {n} was -{n % 13 + 2}.1% at week {n % 60 + 8}. "
        f"Nausea affected {n % 30 + 5} participants of site {n % 17} during titration."
        for n in range(900)
    ]
    sources = [Source(f"fixture:{k}", "\n\n".join(paragraphs[k::4])) for k in range(4)]
    assert sum(len(s.text) for s in sources) > 200_000

    summary = summarize("", sources)
    found = answer("What dose did cohort 7 receive?", sources, max_sentences=1)

    assert len(summary) == 5
    assert found[0].text == "Participants in cohort 7 received semaglutide at 3.4 mg weekly."
