"""Research insights written by a language model: the chat messages that ask for one, and the
parsing of its answer into cited items.

The model sees each attached source as `[source_id] title (year). abstract` and is told to
cite every sentence or bullet with those exact ids. Its answer is split into items (lines for
bullets and outlines, sentences for summaries and answers), and every item's markers are
checked against the attached ids: citations of anything else are removed and flagged, so an
insight never cites a source the session does not hold. `references` never goes to a model:
it is formatted from the sources (see `research_extractive.references_insight`).

Pure logic: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from studio_ai.domain.citations import check_citations
from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.extractive import split_sentences
from studio_ai.domain.references import distinct_sources
from studio_ai.domain.research_extractive import NO_ANSWER_NOTE, required_question
from studio_ai.schemas.research import (
    FlaggedCitation,
    Insight,
    InsightItem,
    InsightKind,
    ResearchSource,
)

DEFAULT_MAX_CHARS_PER_SOURCE = 2000
MAX_LEVEL = 3
EMPTY_NOTE = "the model returned no usable text"

SYSTEM = (
    "You help biomedical educators build presentation decks from research sources. Use only "
    "the sources listed in the user's message, never facts from memory. Cite the source of "
    "every sentence or bullet with its exact id in square brackets, such as "
    "[crossref:10.1038/srep16696]; cite two sources as [arxiv:1605.08386; crossref:10.1/x]. "
    "Never invent an id, never number the sources, and never add a reference list."
)

INSTRUCTIONS = {
    InsightKind.SUMMARY: (
        "Write a summary of the sources below as one paragraph of 3 to 5 sentences, each "
        "ending with the citation of the sources it rests on."
    ),
    InsightKind.BULLETS: (
        "Write 3 to 6 key points from the sources below for a slide: one line each, every "
        'line starting with "- " and ending with its citation, most important first.'
    ),
    InsightKind.OUTLINE: (
        "Write a slide outline from the sources below: one line per slide title starting "
        'with "- ", and under each, its sub-points starting with "  - " (two spaces, a dash). '
        "End every line that states a finding with its citation."
    ),
    InsightKind.QA: (
        "Answer the question below in 1 to 4 sentences using only the sources below, each "
        "sentence ending with its citation. If the sources do not answer it, say plainly that "
        "they do not, and do not guess."
    ),
}


# --------------------------------------------------------------------------- prompt


def insight_messages(
    kind: InsightKind,
    sources: Sequence[ResearchSource],
    question: str | None = None,
    *,
    max_chars_per_source: int = DEFAULT_MAX_CHARS_PER_SOURCE,
) -> list[dict[str, Any]]:
    """System and user chat messages asking for the `kind` insight of `sources`."""
    if kind is InsightKind.REFERENCES:
        raise InvalidInput(
            "references are formatted from the sources, not written by a model: "
            "use references_insight"
        )
    _check_sources(sources)
    listing = "\n\n".join(
        _source_entry(source, max_chars_per_source) for source in distinct_sources(sources)
    )
    body = INSTRUCTIONS[kind]
    if kind is InsightKind.QA:
        body += f"\n\nQuestion: {required_question(question)}"
    body += f"\n\nSources:\n{listing}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


def _source_entry(source: ResearchSource, max_chars: int) -> str:
    title = " ".join(source.title.split()).rstrip(" .") or "Untitled"
    year = f" ({source.year})" if source.year is not None else ""
    abstract = _truncate(" ".join((source.abstract or "").split()), max_chars)
    return f"[{source.source_id}] {title}{year}." + (f" {abstract}" if abstract else "")


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0] if " " in text[:max_chars] else text[:max_chars]
    return f"{cut.rstrip(' ,;:')}\u2026"


def _check_sources(sources: Sequence[ResearchSource]) -> None:
    if not sources:
        raise InvalidInput("no sources are attached: attach at least one source to the session")


# --------------------------------------------------------------------------- parsing

_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_THINK_END = re.compile(r"^.*?</think>", re.DOTALL | re.IGNORECASE)
_LIST_ITEM = re.compile(r"^([ \t]*)(?:[-*+\u2022\u25e6\u25aa\u2023]|\d{1,2}[.)])[ \t]+(.*)$")
_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+(.+?)[ \t#]*|\*\*([^*]+?)\*\*:?)[ \t]*$")
# Only lines without a citation are ever dropped as chatter, so content is rarely lost.
_CHATTY_OPENER = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below (?:is|are))\b",
    re.IGNORECASE,
)
_CHATTY_CLOSER = re.compile(
    r"^(?:let me know|i hope|hope this|feel free|if you (?:would|'d) like|would you like)\b",
    re.IGNORECASE,
)
# A reference list the model added anyway: everything from its heading on is dropped.
_REFERENCE_HEADING = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*)?(?:references|sources|citations|bibliography|works cited)"
    r"(?:\*\*)?[ \t]*:?(?:\*\*)?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_MARKER_AFTER_END = re.compile(r"([.!?])[ \t]*((?:\[[A-Za-z][\w.-]*:[^\[\]\n]+\][ \t]*)+)")
_BOLD = re.compile(r"\*\*|__")


def parse_insight(
    kind: InsightKind,
    text: str,
    sources: Sequence[ResearchSource],
    question: str | None = None,
) -> Insight:
    """The model's answer `text` as an Insight whose items cite only attached sources."""
    if kind is InsightKind.REFERENCES:
        raise InvalidInput(
            "references are formatted from the sources, not parsed from a model's answer"
        )
    attached = [source.source_id for source in distinct_sources(sources)]
    lines = _content_lines(text)
    if kind in (InsightKind.BULLETS, InsightKind.OUTLINE):
        raw_items = _list_items(lines, headings_are_items=kind is InsightKind.OUTLINE)
    else:
        raw_items = [(sentence, 0) for sentence in _sentences(lines)]
    items: list[InsightItem] = []
    flagged: dict[str, FlaggedCitation] = {}
    for raw, level in raw_items:
        checked = check_citations(raw, attached)
        for flag in checked.flagged:
            flagged.setdefault(flag.citation, flag)
        item_text = _BOLD.sub("", checked.text).strip()
        if any(ch.isalnum() for ch in item_text):
            items.append(InsightItem(text=item_text, citations=checked.citations, level=level))
    return Insight(
        kind=kind,
        question=" ".join(question.split()) if kind is InsightKind.QA and question else None,
        items=items,
        flagged_citations=list(flagged.values()),
        note=_note(kind, items),
    )


def _note(kind: InsightKind, items: list[InsightItem]) -> str | None:
    if kind is InsightKind.QA and not any(item.citations for item in items):
        return NO_ANSWER_NOTE
    return None if items else EMPTY_NOTE


def _content_lines(text: str) -> list[str]:
    """The answer's lines without reasoning, chatty preamble or closing, or a reference list."""
    text = _THINK_BLOCK.sub("", text)
    text = _THINK_END.sub("", text)  # only the closing tag: the chat template opened the block
    if heading := _REFERENCE_HEADING.search(text):
        text = text[: heading.start()]
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and _is_chatter(lines[0], _CHATTY_OPENER):
        lines.pop(0)
    while lines and _is_chatter(lines[-1], _CHATTY_CLOSER):
        lines.pop()
    return lines


def _is_chatter(line: str, chatty: re.Pattern[str]) -> bool:
    """A blank line, or one without citations that announces or closes the answer."""
    stripped = line.strip()
    if not stripped:
        return True
    if _LIST_ITEM.match(line) or _HEADING.match(line) or "[" in stripped:
        return False
    return stripped.endswith(":") or chatty.match(stripped) is not None


def _sentences(lines: list[str]) -> list[str]:
    """Sentences of prose (headings left out), each keeping the markers that follow it."""
    prose = "\n".join(line for line in lines if not _HEADING.match(line))
    # "Weight fell. [a:1] Nausea…" -> "Weight fell [a:1]. Nausea…": a marker after the period
    # belongs to the sentence before it, and the splitter needs the period last.
    prose = _MARKER_AFTER_END.sub(lambda m: f" {m.group(2).strip()}{m.group(1)} ", prose)
    return split_sentences(prose)


def _list_items(lines: list[str], *, headings_are_items: bool) -> list[tuple[str, int]]:
    """(text, level) of each list item; the level comes from its indentation.

    With no list marker at all, each non-empty line but a heading is an item. A line after an
    item that is indented or starts in lower case continues it. Heading lines (`## Methods`,
    `**Methods**`) are dropped, except in an outline with two or more of them: there each
    becomes a top-level item and the list items under it go one level deeper (a heading right
    above another, like "# Outline" above "## Background", titles the answer and is dropped).
    """
    if not any(_LIST_ITEM.match(line) for line in lines):
        return [(line.strip(), 0) for line in lines if line.strip() and not _is_heading(line)]
    structural = headings_are_items and sum(1 for ln in lines if _is_heading(ln)) >= 2
    items: list[tuple[str, int]] = []
    indents: list[int] = []
    base = 0
    continues = False
    for position, line in enumerate(lines):
        if item := _LIST_ITEM.match(line):
            level = _level(indents, len(item.group(1).expandtabs(4)))
            items.append((item.group(2), min(MAX_LEVEL, base + level)))
            continues = True
        elif heading := _HEADING.match(line):
            if structural and not _titles_a_heading(lines, position):
                items.append(((heading.group(1) or heading.group(2)).strip(), 0))
                indents.clear()
                base = 1
            continues = False
        elif continues and line.strip() and (line[0].isspace() or line.strip()[0].islower()):
            text, level = items[-1]
            items[-1] = (f"{text} {line.strip()}", level)
        else:
            continues = False
    return items


def _titles_a_heading(lines: list[str], position: int) -> bool:
    following = next((line for line in lines[position + 1 :] if line.strip()), "")
    return _is_heading(following)


def _is_heading(line: str) -> bool:
    return _LIST_ITEM.match(line) is None and _HEADING.match(line) is not None


def _level(indents: list[int], indent: int) -> int:
    """Depth of an item indented by `indent`, given the indents of the open items above it."""
    while indents and indents[-1] > indent:
        indents.pop()
    if not indents or indents[-1] < indent:
        indents.append(indent)
    return len(indents) - 1
