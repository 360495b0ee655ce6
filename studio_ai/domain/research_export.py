"""A research session as slide-ready markdown: its insights with numbered citations, then
the references they cite.

    # Semaglutide for obesity
    ## Summary
    Once-weekly semaglutide reduced body weight by 14.9% [1]. ...
    ## Key points
    - Nausea and diarrhoea were the most common adverse events [1, 2]
    ## References
    1. Wilding JPH, Batterham RL, Calanna S, et al. Once-weekly semaglutide ... doi:...
    ## Further reading
    - <attached sources that no insight cites>

Citation numbers follow the order in which sources are first cited across the document, and
the References list uses the same numbers. Attached sources no insight cites are listed
apart, unnumbered, under "Further reading", so the numbered list holds only what the text
rests on. A `references` insight adds no section of its own; the sources it lists join the
numbered References after those the text cites, since asking for references means wanting
them all listed. Citations of sources the export was not given (flagged by the
checker, or unknown here) are not rendered; a note under the section counts them.

Pure logic: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from studio_ai.domain.references import distinct_sources, format_reference
from studio_ai.schemas.research import Insight, InsightItem, InsightKind, ResearchSource

DEFAULT_TITLE = "Research notes"
SECTION_TITLES = {
    InsightKind.SUMMARY: "Summary",
    InsightKind.BULLETS: "Key points",
    InsightKind.OUTLINE: "Outline",
    InsightKind.QA: "Q&A",
}
_PROSE_KINDS = frozenset({InsightKind.SUMMARY, InsightKind.QA})
# Text that markdown would read as a heading, quote, list item, rule or table at a line start.
_BLOCK_START = re.compile(
    r"^(?:#|>|\||[-+*](?=[ \t]|$)|\d{1,9}(?=[.)](?:[ \t]|$))|(?=(?:[-*_=][ \t]*)+$))"
)
_TERMINAL = (".", "!", "?")


class _Numbering:
    """Citation numbers in order of first citation, for the sources the export knows."""

    def __init__(self, sources: Sequence[ResearchSource]) -> None:
        self.known = {source.source_id: source for source in sources}
        self.numbers: dict[str, int] = {}

    def cite(self, citations: Sequence[str]) -> tuple[list[int], int]:
        """The numbers of `citations`, sorted, and how many of them name unknown sources."""
        numbers: list[int] = []
        unknown = 0
        for source_id in dict.fromkeys(citations):
            if source_id in self.known:
                numbers.append(self.numbers.setdefault(source_id, len(self.numbers) + 1))
            else:
                unknown += 1
        return sorted(numbers), unknown

    def cited(self) -> list[ResearchSource]:
        """The cited sources, in citation-number order."""
        return [self.known[source_id] for source_id in self.numbers]


def session_markdown(
    title: str, insights: Sequence[Insight], sources: Sequence[ResearchSource]
) -> str:
    """The session as markdown: a heading, a section per insight, then its references."""
    known = distinct_sources(sources)
    numbering = _Numbering(known)
    blocks = [f"# {_escape(_one_line(title) or DEFAULT_TITLE)}"]
    blocks.extend(
        _section(insight, numbering) for insight in insights if insight.kind in SECTION_TITLES
    )
    for insight in insights:
        if insight.kind is InsightKind.REFERENCES:
            numbering.cite(insight.citations)
    cited = numbering.cited()
    if cited:
        listed = (f"{n}. {format_reference(s)}" for n, s in enumerate(cited, start=1))
        blocks.append("## References\n\n" + "\n".join(listed))
    uncited = [source for source in known if source.source_id not in numbering.numbers]
    if uncited:
        listed = (f"- {format_reference(source)}" for source in uncited)
        blocks.append("## Further reading\n\n" + "\n".join(listed))
    return "\n\n".join(blocks) + "\n"


def _section(insight: Insight, numbering: _Numbering) -> str:
    heading = f"## {SECTION_TITLES[insight.kind]}"
    if insight.kind is InsightKind.QA and insight.question:
        heading += f": {_one_line(insight.question)}"
    lines: list[str] = []
    unknown = 0
    for item in insight.items:
        line, item_unknown = _item_line(item, insight.kind, numbering)
        if line:
            lines.append(line)
        unknown += item_unknown
    parts = [heading]
    if lines:
        parts.append(" ".join(lines) if insight.kind in _PROSE_KINDS else "\n".join(lines))
    if insight.note:
        parts.append(_note(insight.note, emphasise=not lines))
    elif not lines:
        parts.append("_Nothing to show._")
    removed = len(insight.flagged_citations) + unknown
    if removed:
        parts.append(f"> Note: {removed} citation(s) to sources not attached were removed.")
    return "\n\n".join(parts)


def _item_line(item: InsightItem, kind: InsightKind, numbering: _Numbering) -> tuple[str, int]:
    text = _one_line(item.text)
    if not text:  # numbered nothing: a number with no line to carry it would be a gap
        return "", 0
    numbers, unknown = numbering.cite(item.citations)
    markers = f" [{', '.join(map(str, numbers))}]" if numbers else ""
    if kind in _PROSE_KINDS:
        return _escape(_with_markers(text, markers)), unknown
    return f"{'  ' * item.level}- {_escape(text)}{markers}", unknown


def _with_markers(sentence: str, markers: str) -> str:
    """'Weight fell [1].': markers go before the sentence's final punctuation."""
    if markers and sentence.endswith(_TERMINAL):
        return f"{sentence[:-1]}{markers}{sentence[-1]}"
    return f"{sentence}{markers}"


def _note(note: str, *, emphasise: bool) -> str:
    text = _one_line(note)
    text = text[:1].upper() + text[1:]
    text = text if text.endswith(_TERMINAL) else f"{text}."
    return f"_{text}_" if emphasise else f"> {text}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _escape(text: str) -> str:
    """Text that cannot open a heading, quote, list, rule or table where a line starts."""
    start = _BLOCK_START.match(text)
    if start is None:
        return text
    # A backslash escapes punctuation only: "1. Dose" becomes "1\. Dose", "# Dose" "\# Dose".
    cut = start.end() if start.group()[:1].isdigit() else 0
    return f"{text[:cut]}\\{text[cut:]}"
