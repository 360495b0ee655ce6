"""Source ids: `<provider>:<external_id>`, checked and put in one canonical form.

The canonical forms are what `ResearchSource.source_id` holds and what citations name:

- `crossref:<doi>`: the DOI in lower case, without `https://doi.org/` or `doi:`
  (`crossref:10.1038/srep16696`);
- `arxiv:<id>`: the arXiv id without its version (`arxiv:1605.08386`,
  `arxiv:cond-mat/0211034`); a version (`v2`) is kept apart;
- `fixture:<id>`: an offline sample's id (`fixture:llm-clinical-summaries`).

Everything here is pure; a bad id raises `InvalidInput` saying what a valid one looks like.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.research import ProviderName

DOI_MAX_CHARS = 300
SOURCE_ID_MAX_CHARS = 400

DOI_EXAMPLE = "10.1038/srep16696"
ARXIV_EXAMPLES = "2101.00001 or 1605.08386v2 (new style), cond-mat/0211034 (old style)"
FIXTURE_ID_PATTERN = "[a-z0-9][a-z0-9-]{0,63}"

_DOI = re.compile(r"10\.\d{4,9}/\S+")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|(?:dx\.)?doi\.org/|doi:\s*)", re.I)
_ARXIV_PREFIX = re.compile(r"^arxiv:\s*", re.I)
_ARXIV_URL = re.compile(r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/", re.I)
_ARXIV_NEW = re.compile(r"(\d{2})(\d{2})\.(\d{4,5})(v[1-9]\d*)?", re.I)
_ARXIV_OLD = re.compile(r"([a-z]+(?:-[a-z]+)*)(\.[a-z]{2})?/(\d{7})(v[1-9]\d*)?", re.I)
_FIXTURE = re.compile(FIXTURE_ID_PATTERN)


def _shown(text: str) -> str:
    """The user's text, quoted and shortened, for an error message."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def normalise_doi(text: str) -> str:
    """`10.1038/srep16696` from `https://doi.org/10.1038/SREP16696`, `doi:10.1038/...` etc."""
    value = text.strip()
    if _DOI_PREFIX.match(value):
        was_url = "doi.org/" in value[:24].lower()
        value = _DOI_PREFIX.sub("", value, count=1).strip()
        if was_url:
            value = unquote(value)
    value = value.lower()
    if (
        len(value) > DOI_MAX_CHARS
        or not value.isprintable()
        or not _DOI.fullmatch(value)
        # "." and ".." segments would walk the provider's URL to another resource
        or any(segment in (".", "..") for segment in value.split("/"))
    ):
        raise InvalidInput(
            f"{_shown(text)} is not a DOI; a DOI looks like {DOI_EXAMPLE} "
            f"(10., 4-9 digits, a slash, then the suffix; at most {DOI_MAX_CHARS} characters; "
            "a 'https://doi.org/' or 'doi:' prefix is fine)"
        )
    return value


def normalise_arxiv_id(text: str) -> tuple[str, str | None]:
    """`(id_without_version, version or None)`: `("1605.08386", "v2")` from `arXiv:1605.08386v2`
    or `https://arxiv.org/abs/1605.08386v2`; old-style ids keep their archive
    (`("math.CO/0001001", "v1")`)."""
    value = text.strip()
    value = _ARXIV_URL.sub("", value, count=1)
    value = _ARXIV_PREFIX.sub("", value, count=1).strip()
    if value.lower().endswith(".pdf"):
        value = value[:-4]
    value = value.rstrip("/")
    new = _ARXIV_NEW.fullmatch(value)
    if new is not None:
        yy, mm, number, version = new.groups()
        yymm = int(yy + mm)
        # New-style ids started in April 2007 (0704), with 5-digit numbers from 2015 (1501).
        if 1 <= int(mm) <= 12 and yymm >= 704 and len(number) == (4 if yymm < 1501 else 5):
            return f"{yy}{mm}.{number}", version.lower() if version else None
    old = _ARXIV_OLD.fullmatch(value)
    if old is not None:
        archive, subject, number, version = old.groups()
        month = int(number[2:4])
        if 1 <= month <= 12:
            subject_part = subject.upper() if subject else ""
            return f"{archive.lower()}{subject_part}/{number}", version.lower() if version else None
    raise InvalidInput(
        f"{_shown(text)} is not an arXiv id; an arXiv id looks like {ARXIV_EXAMPLES}; "
        "an 'arXiv:' prefix or an arxiv.org/abs/ link is fine"
    )


def normalise_fixture_id(text: str) -> str:
    """A fixture sample's id, lower case: `llm-clinical-summaries`."""
    value = text.strip().lower()
    if not _FIXTURE.fullmatch(value):
        raise InvalidInput(
            f"{_shown(text)} is not a fixture id; a fixture id is 1-64 lower-case letters, "
            "digits and dashes, starting with a letter or digit (e.g. llm-clinical-summaries)"
        )
    return value


def normalise_external_id(
    provider: ProviderName | str, external_id: str, *, keep_version: bool = False
) -> str:
    """The canonical external id of `provider`. For arXiv, `keep_version=True` keeps a version
    the text names (`1605.08386v2`), which is what fetching that exact version needs."""
    name = _provider(provider)
    if name is ProviderName.CROSSREF:
        return normalise_doi(external_id)
    if name is ProviderName.ARXIV:
        arxiv_id, version = normalise_arxiv_id(external_id)
        return f"{arxiv_id}{version}" if keep_version and version else arxiv_id
    return normalise_fixture_id(external_id)


def parse_source_id(text: str, *, keep_version: bool = False) -> tuple[ProviderName, str]:
    """`(ProviderName.CROSSREF, "10.1038/srep16696")` from `crossref:10.1038/srep16696`.

    The provider name is case-insensitive and the external id is normalised (so
    `crossref:https://doi.org/10.1038/SREP16696` parses too). An arXiv version is dropped,
    as in `source_id`, unless `keep_version` is set.
    """
    value = text.strip()
    provider, sep, external_id = value.partition(":")
    if len(value) > SOURCE_ID_MAX_CHARS or not sep or not external_id.strip():
        raise InvalidInput(
            f"{_shown(text)} is not a source id; a source id is <provider>:<id>, such as "
            f"crossref:{DOI_EXAMPLE}, arxiv:1605.08386 or fixture:llm-clinical-summaries"
        )
    name = _provider(provider)
    return name, normalise_external_id(name, external_id, keep_version=keep_version)


def source_id(provider: ProviderName | str, external_id: str) -> str:
    """`crossref:10.1038/srep16696`: the canonical source id (arXiv versions dropped)."""
    name = _provider(provider)
    return f"{name.value}:{normalise_external_id(name, external_id)}"


def _provider(provider: ProviderName | str) -> ProviderName:
    if isinstance(provider, ProviderName):
        return provider
    try:
        return ProviderName(provider.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in ProviderName)
        raise InvalidInput(
            f"{_shown(provider)} is not a research provider; use one of: {known}"
        ) from None
