"""Reference formatting for research sources, in a Vancouver/AMA-like style.

    Wilding JPH, Batterham RL, Calanna S, et al. Once-weekly semaglutide in adults with
    overweight or obesity. N Engl J Med. 2021. doi:10.1056/nejmoa2032183

Parts: authors (up to three as "Family GI", then "et al."), title (with "[preprint]" for
arXiv and posted-content works), venue, year, then one identifier: the DOI, else the arXiv id
(with its version when known), else the URL. Missing parts are left out, never printed as
"None", and each part ends with exactly one period. There is no volume, issue or page
information in a `ResearchSource`, so none is printed.

Pure logic: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from studio_ai.schemas.research import ProviderName, ResearchSource

MAX_AUTHORS = 3
MAX_GIVEN_INITIALS = 3  # "JPH Wilding": a short all-capitals given name is already initials


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# An author is kept verbatim (an organisation, not a person) when it is a single token, holds
# a digit, a connecting word or one of these words. "World Health Organization", "GBD 2019
# Collaborators", "Centers for Disease Control and Prevention" and "Cochrane" stay as they are;
# "John P. H. Wilding" becomes "Wilding JPH". A person whose name is a single token ("Plato")
# is also kept as is, which is what the style wants for them too.
_ORGANISATION_WORDS = _word_set(
    """academy agency alliance association authority board bureau center centre clinic
    collaboration collaborative collaborators college commission committee consortium council
    department division federation forum foundation group hospital initiative institute
    institution investigators laboratory league ministry network office organisation
    organization panel partnership program programme project registry service society study
    task team trialists trust union university unit working"""
)
_CONNECTING_WORDS = frozenset({"and", "of", "for", "on", "the", "in", "&"})
# Lower-case particles that belong to the family name: "Vincent van Gogh" -> "van Gogh V".
_PARTICLES = _word_set("van von der den de del della di da du dos das la le ten ter bin al el st")
_SUFFIXES = {"jr": "Jr", "sr": "Sr", "ii": "II", "iii": "III", "iv": "IV"}
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_ARXIV_VERSION = re.compile(r"v\d+$")
_PREPRINT_TYPES = frozenset({"posted-content", "preprint"})


def format_reference(source: ResearchSource) -> str:
    """`source` as one reference line; falls back to its source_id when it has nothing else."""
    parts = [
        _authors(source.authors),
        _title(source),
        _venue(source),
        str(source.year) if source.year is not None else "",
    ]
    head = " ".join(_end_with_period(part) for part in parts if part)
    identifier = _identifier(source)
    reference = f"{head} {identifier}".strip()
    return reference or source.source_id


def distinct_sources(sources: Iterable[ResearchSource]) -> list[ResearchSource]:
    """`sources` in order, keeping the first of each source_id."""
    seen: dict[str, ResearchSource] = {}
    for source in sources:
        seen.setdefault(source.source_id, source)
    return list(seen.values())


# --------------------------------------------------------------------------- authors


def _authors(authors: Iterable[str]) -> str:
    names = [name for name in (_author(raw) for raw in authors) if name]
    if len(names) > MAX_AUTHORS:
        return ", ".join([*names[:MAX_AUTHORS], "et al."])
    return ", ".join(names)


def _author(raw: str) -> str:
    name = " ".join(raw.split()).strip(" ,;")
    if not name:
        return ""
    tokens = name.split()
    if _is_organisation(tokens):
        return name
    given, family, suffix = _name_parts(name)
    initials = "".join(_initials(token) for token in given)
    return " ".join(part for part in (family, initials, suffix) if part)


def _is_organisation(tokens: list[str]) -> bool:
    if len(tokens) == 1:
        return True
    words = [token.lower().strip(".,()") for token in tokens]
    return any(
        word in _ORGANISATION_WORDS or word in _CONNECTING_WORDS or any(c.isdigit() for c in word)
        for word in words
    )


def _name_parts(name: str) -> tuple[list[str], str, str]:
    """(given names, family name, suffix) of a 'Given Family' or 'Family, Given' name."""
    suffix = ""
    pieces = [piece.strip() for piece in name.split(",") if piece.strip()]
    if len(pieces) > 1 and pieces[-1].lower().rstrip(".") in _SUFFIXES:
        suffix = _SUFFIXES[pieces.pop().lower().rstrip(".")]
    if len(pieces) == 2:  # "Wilding, John P. H."
        return pieces[1].split(), pieces[0], suffix
    tokens = " ".join(pieces).split()
    if len(tokens) > 1 and tokens[-1].lower().rstrip(".") in _SUFFIXES:
        suffix = _SUFFIXES[tokens.pop().lower().rstrip(".")]
    family_start = len(tokens) - 1
    while family_start > 1 and tokens[family_start - 1] in _PARTICLES:
        family_start -= 1
    return tokens[:family_start], " ".join(tokens[family_start:]), suffix


def _initials(token: str) -> str:
    """'John' -> 'J', 'Jean-Pierre' -> 'JP', 'J.P.' -> 'JP', 'JPH' (already initials) -> 'JPH'."""
    letters = token.replace(".", "").replace("-", "")
    if letters.isupper() and len(letters) <= MAX_GIVEN_INITIALS:
        return letters
    return "".join(part[0].upper() for part in re.split(r"[-.]", token) if part)


# --------------------------------------------------------------------------- other parts


def _title(source: ResearchSource) -> str:
    title = " ".join(source.title.split()).rstrip(" .")
    if not title:
        return ""
    return f"{title} [preprint]" if _is_preprint(source) else title


def _is_preprint(source: ResearchSource) -> bool:
    return source.provider is ProviderName.ARXIV or (source.work_type or "") in _PREPRINT_TYPES


def _venue(source: ResearchSource) -> str:
    venue = " ".join((source.venue or "").split())
    # "arXiv. 2016. arXiv:1605.08386" says the server twice: the identifier names it.
    if venue.lower() == "arxiv" and _doi(source) is None and source.provider is ProviderName.ARXIV:
        return ""
    return venue


def _identifier(source: ResearchSource) -> str:
    doi = _doi(source)
    if doi:
        return f"doi:{doi}"
    if source.provider is ProviderName.ARXIV and source.external_id:
        return f"arXiv:{_arxiv_id(source.external_id, source.version)}"
    return (source.url or "").strip()


def _doi(source: ResearchSource) -> str | None:
    raw = source.doi or (source.external_id if source.provider is ProviderName.CROSSREF else None)
    doi = _DOI_PREFIX.sub("", raw.strip()) if raw else ""
    return doi or None


def _arxiv_id(external_id: str, version: str | None) -> str:
    base = _ARXIV_VERSION.sub("", external_id.strip())
    if not version or not version.strip():
        return external_id.strip()
    version = version.strip()
    return f"{base}{version if version.startswith('v') else f'v{version}'}"


def _end_with_period(part: str) -> str:
    return part if part.endswith((".", "?", "!")) else f"{part}."
