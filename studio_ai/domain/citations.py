"""Citation markers in model-written text, checked against the sources attached to a session.

A marker is `[<source_id>]`, several ids in one bracket separated by `;` or `,`:
`[crossref:10.1038/srep16696]`, `[arxiv:1605.08386; fixture:llm-clinical-summaries]`.
A bracket whose first entry looks like `word:something` is a citation attempt; every entry
of it is matched against the attached ids and removed from the text. An entry that names no
attached source (an invented DOI, a source the session does not hold) is flagged.

Matching is lenient about spelling, never about identity: the provider is case-insensitive,
so is the id (DOIs are case-insensitive by definition), an arXiv version suffix is ignored
(`arxiv:1605.08386v2` is attached `arxiv:1605.08386`), and `doi:…`, `https://doi.org/…`
and `https://arxiv.org/abs/…` spell a crossref or arXiv id.

Bare numbered markers (`[1]`, `[2, 3]`, `[4-6]`) are removed and flagged too: the model was
given no numbering, so they point at nothing, and left in place they would clash with the
numbers an export gives its references. Any other bracket (`[95% CI]`, `[1.2, 3.4]`) is text.

Pure logic: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from studio_ai.schemas.research import FlaggedCitation

NOT_ATTACHED = "not an attached source: removed"
NUMBERED = "a numbered citation names no source: removed"
MAX_FLAGGED_LENGTH = 300

_BRACKET = re.compile(r"[ \t]*\[([^\[\]\n]{1,600})\]")
_SOURCE_ID = re.compile(r"^[A-Za-z][\w.-]*:\S")
# Split only where the next entry starts like an id, so "10.1002/(SICI)…3.0.CO;2-X" holds.
_ENTRY_SEPARATOR = re.compile(r"\s*[;,]\s*(?=[A-Za-z][\w.-]*:\S)")
_NUMBER_OR_RANGE = r"\d{1,3}(?:\s*[-\u2013]\s*\d{1,3})?"
_NUMBERED = re.compile(rf"^{_NUMBER_OR_RANGE}(?:\s*[,;]\s*{_NUMBER_OR_RANGE})*$")
_DOI_URL = re.compile(r"^https?://(?:dx\.)?doi\.org/(.+)$", re.IGNORECASE)
_ARXIV_URL = re.compile(r"^https?://(?:www\.)?arxiv\.org/(?:abs|pdf)/(.+?)(?:\.pdf)?$", re.I)
_ARXIV_VERSION = re.compile(r"v\d+$")
_SPACE_RUN = re.compile(r"(?<=\S)[ \t]{2,}")  # not the indentation a line starts with


@dataclass(frozen=True)
class CheckedText:
    """`text` without citation markers; the attached sources it cites, in order of first
    appearance; the citations removed because they name no attached source."""

    text: str
    citations: list[str] = field(default_factory=list)
    flagged: list[FlaggedCitation] = field(default_factory=list)


def check_citations(text: str, attached: Collection[str]) -> CheckedText:
    """Remove the citation markers from `text`, keeping the attached sources they name."""
    by_key = {_key(source_id): source_id for source_id in attached}
    citations: dict[str, None] = {}
    flagged: dict[str, FlaggedCitation] = {}

    def replace(match: re.Match[str]) -> str:
        content = match.group(1).strip()
        if _NUMBERED.match(content):
            flagged.setdefault(match.group().strip(), _flag(match.group().strip(), NUMBERED))
            return ""
        if not _SOURCE_ID.match(content):
            return match.group()
        for entry in _ENTRY_SEPARATOR.split(content):
            entry = entry.strip()
            if not entry:
                continue
            source_id = by_key.get(_key(entry))
            if source_id is not None:
                citations.setdefault(source_id, None)
            else:
                flagged.setdefault(entry, _flag(entry, NOT_ATTACHED))
        return ""

    stripped = _BRACKET.sub(replace, text)
    return CheckedText(_tidy(stripped), list(citations), list(flagged.values()))


def _key(citation: str) -> tuple[str, str]:
    """A form two spellings of one source share: ('crossref', doi) or ('arxiv', bare id)."""
    citation = citation.strip()
    if doi := _DOI_URL.match(citation):
        return ("crossref", doi.group(1).lower())
    if arxiv := _ARXIV_URL.match(citation):
        return ("arxiv", _ARXIV_VERSION.sub("", arxiv.group(1).lower()))
    provider, _, external_id = citation.partition(":")
    provider = provider.strip().lower()
    external_id = external_id.strip().lower()
    if provider == "doi":
        provider = "crossref"
    if provider == "arxiv":
        external_id = _ARXIV_VERSION.sub("", external_id)
    return (provider, external_id)


def _flag(citation: str, reason: str) -> FlaggedCitation:
    return FlaggedCitation(citation=citation[:MAX_FLAGGED_LENGTH], reason=reason)


def _tidy(text: str) -> str:
    """Collapse the spaces a removed marker leaves behind; keep line breaks."""
    lines = [_SPACE_RUN.sub(" ", line).rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip()
