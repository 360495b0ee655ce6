"""The `extractive` text engine: summary, bullets and Q&A chosen from sentences of the inputs.

It needs no weights, so it answers offline and is the last-resort fallback for text tasks.
It never writes a sentence of its own: every sentence it returns is one of the input's, with
the ref of the document it came from, so callers can cite it (research insights rely on that).
Pure logic: no I/O. Same input, same output; time grows linearly with the input.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from studio_ai.domain.errors import InvalidInput


@dataclass(frozen=True)
class Source:
    """A context document: `ref` says where it came from (`job:…`, `crossref:10.1038/…`)."""

    ref: str
    text: str


@dataclass(frozen=True)
class Sentence:
    """A sentence of the inputs; `ref` is None when it comes from the prompt itself.

    `index` is its position among the sentences of its own text (the prompt without its
    instruction, or the source), so `ref` + `index` point back at where it was taken from.
    """

    text: str
    ref: str | None
    index: int


MIN_WORDS = 3
DUPLICATE_JACCARD = 0.7
EARLY_BONUS = 0.1  # the first sentence of a document weighs 10% more than its last
BOILERPLATE_WEIGHT = 0.05
ANSWER_COVERAGE = 0.5
BM25_K1 = 1.2
BM25_B = 0.75

# --------------------------------------------------------------------------- splitting


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_ODD_SPACES = re.compile(r"[\t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_BLOCK_TAG = re.compile(
    r"</?(?:[\w-]+:)?(?:p|div|br|li|ul|ol|h[1-6]|title|sec|section|abstract|tr|td|th|table"
    r"|caption|blockquote|list-item|list)\b[^<>]*>",
    re.IGNORECASE,
)
# A tag needs a name right after `<` and only name=value attributes, so "p <0.05 and x> 3"
# or "a <b and c> d" in prose are never mistaken for markup.
_INLINE_TAG = re.compile(
    r"</?[A-Za-z][\w:.-]*(?:\s+[\w:.-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s<>]+))*\s*/?>"
)
_EMPHASIS = re.compile(r"\*\*|__|`+")
_LIST_MARKER = re.compile(
    r"^(?:[-*+\u2022\u2023\u25e6\u25aa\u25cf\u2013\u2014]|\(?\d{1,3}[.)]|\(?[a-z]\))\s+"
)
_HEADING_MARKER = re.compile(r"^(?:#{1,6}|>+)\s*")
_SECTION_LABEL = re.compile(
    r"^(?:abstract|background|introduction|context|importance|objectives?|aims?|purpose|"
    r"methods?|design|setting|participants|patients|interventions?|main outcomes?(?: and "
    r"measures)?|main outcome measures|measurements|results?|findings|conclusions?(?: and "
    r"relevance)?|interpretation|significance|discussion|limitations|summary)\s*:\s+",
    re.IGNORECASE,
)
_CANDIDATE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+")
_OPENERS = "\"'\u201c\u2018(["
_LOWER_THEN_UPPER = re.compile(r"[a-z]+[A-Z]")  # mRNA, eGFR, iPSC start sentences too
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # e.g, i.e, U.S
_ABBREVIATIONS = _word_set(
    "al approx ca cf co corp dept dr ed eds eq eqs est fig figs inc jr ltd mr mrs ms "
    "no nos prof ref refs resp sp spp sr st subsp suppl univ var vol vs jan feb mar apr jun "
    "jul aug sep sept oct nov dec"
)
_WORDISH = re.compile(r"[^\W_]")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, without markup, list markers or fragments under 3 words.

    Abbreviations ("e.g.", "et al.", "Fig. 2", "vs.", "Dr."), decimals ("3.5 mg") and
    "p < 0.05." endings are handled; each list item and heading line stands on its own.
    """
    return [s for s in _split(text) if _word_count(s) >= MIN_WORDS]


def _split(text: str) -> list[str]:
    sentences: list[str] = []
    for unit in _units(_clean(text)):
        sentences.extend(_split_unit(unit))
    return sentences


def _clean(text: str) -> str:
    if "<" in text:
        text = _BLOCK_TAG.sub("\n\n", text)
        text = _INLINE_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = text.translate(_INVISIBLE).replace("\r\n", "\n").replace("\r", "\n")
    return _EMPHASIS.sub("", _ODD_SPACES.sub(" ", text))


def _units(text: str) -> Iterable[str]:
    """Runs of text that a sentence never crosses: paragraphs, list items, heading lines."""
    for block in re.split(r"\n[ ]*\n", text):
        raw_lines = [raw for raw in block.split("\n") if raw.strip()]
        lines = [_HEADING_MARKER.sub("", raw.strip()) for raw in raw_lines]
        current: list[str] = []
        in_list_item = False
        for position, line in enumerate(lines):
            marker = _LIST_MARKER.match(line)
            # A wrapped list item goes on indented or in lower case; anything else ends it.
            ends_item = in_list_item and not raw_lines[position][0].isspace() and line[0].isupper()
            if marker or ends_item:
                if current:
                    yield " ".join(current)
                current = [line[marker.end() :] if marker else line]
                in_list_item = marker is not None
            elif position + 1 < len(lines) and _looks_like_heading(line, lines[position + 1]):
                if current:
                    yield " ".join(current)
                yield line
                current = []
                in_list_item = False
            else:
                current.append(line)
        if current:
            yield " ".join(current)


def _looks_like_heading(line: str, next_line: str) -> bool:
    """A short line like "Methods" above a paragraph, not a wrapped line of prose."""
    return (
        len(line.split()) <= 6
        and line[-1] not in ".!?,;:)"
        and (line[0].isupper() or line[0].isdigit())
        and not next_line[0].islower()
    )


def _split_unit(unit: str) -> list[str]:
    unit = " ".join(unit.split())
    pieces: list[str] = []
    start = 0
    for match in _CANDIDATE_END.finditer(unit):
        if not _starts_sentence(unit, match.end()):
            continue
        ends_with_one_period = match.group().startswith(".") and match.group()[1:2] != "."
        if ends_with_one_period and _is_abbreviation(
            unit[max(start, match.start() - 40) : match.start()]
        ):
            continue
        pieces.append(unit[start : match.end()].strip())
        start = match.end()
    pieces.append(unit[start:].strip())
    return [_SECTION_LABEL.sub("", piece) for piece in pieces if piece]


def _starts_sentence(unit: str, position: int) -> bool:
    while position < len(unit) and unit[position] in _OPENERS:
        position += 1
    if position >= len(unit):
        return False
    first = unit[position]
    return first.isupper() or first.isdigit() or _LOWER_THEN_UPPER.match(unit, position) is not None


def _is_abbreviation(before_period: str) -> bool:
    words = before_period.split()
    if not words:
        return False
    word = words[-1].lstrip(_OPENERS)
    return word.lower() in _ABBREVIATIONS or _DOTTED.match(word) is not None


def _word_count(sentence: str) -> int:
    return sum(1 for word in sentence.split() if _WORDISH.search(word))


# --------------------------------------------------------------------------- terms

_STOP_WORDS = _word_set(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either few for from further had has have having he her here hers herself him himself his
    how however i if in into is it its itself just may me might more most much must my myself
    neither no nor not now of off on once only or other our ours ourselves out over own per
    same shall she should so some such than that the their theirs them themselves then there
    these they this those through thus to too under until up upon very via was we were what
    when where whether which while who whom whose why will with within without would yet you
    your yours yourself yourselves"""
)
# Words that shape a question without saying what it is about.
_QUESTION_FILLERS = _word_set(
    "describe explain find found give given know kind list mean means meant please show tell type "
    "use used uses using"
)
_TOKEN = re.compile(r"[^\W_]+")
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("izations", "iz"),
    ("isations", "iz"),
    ("ization", "iz"),
    ("isation", "iz"),
    ("nesses", ""),
    ("ness", ""),
    ("ments", ""),
    ("ment", ""),
    ("ingly", ""),
    ("edly", ""),
    ("ings", ""),
    ("ing", ""),
    ("ages", ""),
    ("age", ""),
    ("ies", "y"),
    ("ied", "y"),
    ("ised", "iz"),
    ("ized", "iz"),
    ("ises", "iz"),
    ("izes", "iz"),
    ("ise", "iz"),
    ("ize", "iz"),
    ("ed", ""),
    ("es", ""),
    ("ly", ""),
    ("s", ""),
)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix-stripping stem: 'patients' ~ 'patient', 'dosing' ~ 'doses' ~ 'dose'."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word[-2] in "sui":  # analysis, status, virus
                break
            word = word[: -len(suffix)] + replacement
            break
    # Applied to every word, stemmed or not, so 'dose'/'dos(es)' and 'control'/'controll(ed)'
    # meet on the same form.
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


# "2.4 mg", "10 mg/kg", "500 IU": a sentence that states an amount is about a dose, so
# "What dose was used?" finds it even when the word "dose" is not there.
_DOSE_AMOUNT = re.compile(
    r"\d(?:[.,]\d+)?\s?(?:mg|g|kg|mcg|\u00b5g|\u03bcg|ug|ng|ml|mL|l|IU|units?|mmol|\u00b5mol)"
    r"(?:/(?:kg|m2|m\u00b2|day|d|dl|dL|ml|mL|h))?\b"
)
_DOSE_TERM = "dos"


def _terms(text: str, *, drop: frozenset[str] = frozenset()) -> Counter[str]:
    terms: Counter[str] = Counter()
    for token in _TOKEN.findall(text.lower()):
        if token in _STOP_WORDS or token in drop or (len(token) == 1 and not token.isdigit()):
            continue
        terms[stem(token)] += 1
    if _DOSE_TERM not in terms and _DOSE_AMOUNT.search(text):
        terms[_DOSE_TERM] = 1
    return terms


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class _Candidate:
    sentence: Sentence
    order: tuple[int, int]  # (document, sentence) in the order the inputs were given
    terms: Counter[str]
    words: int


_INSTRUCTION_VERBS = (
    r"(?:please\s+)?(?:summari[sz]e|list|give|write|explain|describe|provide|create|make|"
    r"generate|extract|outline|produce|draft|turn|convert|rewrite|condense|answer|tell|show)\b"
)
_INSTRUCTION_HEAD = re.compile(
    rf"^\s*{_INSTRUCTION_VERBS}[^:\n.?!]{{0,200}}(?::|\n)", re.IGNORECASE
)
_INSTRUCTION = re.compile(rf"^{_INSTRUCTION_VERBS}", re.IGNORECASE)


Numbered = Sequence[tuple[int, str]]


def _prompt_sentences(prompt: str) -> Numbered:
    """The prompt's own content: its leading instruction, other orders and questions left out."""
    head = _INSTRUCTION_HEAD.match(prompt)
    body = prompt[head.end() :] if head else prompt
    return [
        (index, text)
        for index, text in enumerate(split_sentences(body))
        if not _INSTRUCTION.match(text) and not text.endswith("?")
    ]


def _candidates(prompt_sentences: Numbered, sources: Sequence[Source]) -> list[_Candidate]:
    documents: list[tuple[str | None, Numbered]] = [(None, prompt_sentences)]
    documents.extend((s.ref, list(enumerate(split_sentences(s.text)))) for s in sources)
    candidates = []
    for document, (ref, sentences) in enumerate(documents):
        for index, text in sentences:
            terms = _terms(text)
            if terms:
                candidates.append(
                    _Candidate(
                        Sentence(text, ref, index), (document, index), terms, len(text.split())
                    )
                )
    return candidates


def _pick(ranked: Iterable[_Candidate], limit: int) -> list[_Candidate]:
    """The first `limit` candidates, skipping any that repeat one already picked."""
    picked: list[tuple[_Candidate, frozenset[str]]] = []
    for candidate in ranked:
        stems = frozenset(candidate.terms)
        if any(_jaccard(stems, seen) >= DUPLICATE_JACCARD for _, seen in picked):
            continue
        picked.append((candidate, stems))
        if len(picked) == limit:
            break
    return [candidate for candidate, _ in picked]


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def _check_limit(name: str, value: int) -> None:
    if value < 1:
        raise InvalidInput(f"{name} must be at least 1, got {value}; ask for 1 or more sentences")


# --------------------------------------------------------------------------- summary

_BOILERPLATE = re.compile(
    r"\b(?:funded|funding|sponsored|grants?|supported by|conflicts? of interest|competing "
    r"interests?|the authors? declares?|disclosures?|clinicaltrials\.gov|trial registration|"
    r"registered (?:at|with|in)|NCT\d{8}|ISRCTN|PROSPERO|copyright|all rights reserved|"
    r"licen[cs]ed under|creative commons|open access|published by|elsevier|springer|wiley)\b|©",
    re.IGNORECASE,
)


def summarize(prompt: str, sources: Sequence[Source], *, max_sentences: int = 5) -> list[Sentence]:
    """The most central sentences of the prompt and sources, in the order they were written.

    Central means close to the whole text's TF-IDF centroid; early sentences weigh slightly
    more, funding/registration/copyright lines much less, and near-duplicates are dropped.
    """
    _check_limit("max_sentences", max_sentences)
    candidates = _candidates(_prompt_sentences(prompt), sources)
    scores = _centrality(candidates)
    lengths: dict[int, int] = {}
    for candidate in candidates:
        document, position = candidate.order
        lengths[document] = max(lengths.get(document, 0), position + 1)
    weighted = []
    for candidate, score in zip(candidates, scores, strict=True):
        document, position = candidate.order
        score *= 1.0 + EARLY_BONUS * (1.0 - position / max(1, lengths[document]))
        score *= min(1.0, candidate.words / 8) ** 0.5 * min(1.0, 60 / candidate.words)
        if _BOILERPLATE.search(candidate.sentence.text):
            score *= BOILERPLATE_WEIGHT
        weighted.append((score, candidate))
    weighted.sort(key=lambda pair: (-pair[0], pair[1].order))
    chosen = _pick((candidate for _, candidate in weighted), max_sentences)
    return [candidate.sentence for candidate in sorted(chosen, key=lambda c: c.order)]


def _centrality(candidates: Sequence[_Candidate]) -> list[float]:
    """Cosine of each sentence's TF-IDF vector with the sum of all sentences' unit vectors."""
    count = len(candidates)
    document_frequency: Counter[str] = Counter()
    for candidate in candidates:
        document_frequency.update(candidate.terms.keys())
    idf = {term: math.log((count + 1) / (df + 1)) + 1.0 for term, df in document_frequency.items()}
    units: list[dict[str, float]] = []
    centroid: dict[str, float] = {}
    for candidate in candidates:
        vector = {t: (1.0 + math.log(tf)) * idf[t] for t, tf in candidate.terms.items()}
        norm = math.sqrt(sum(w * w for w in vector.values()))
        unit = {t: w / norm for t, w in vector.items()}
        units.append(unit)
        for term, weight in unit.items():
            centroid[term] = centroid.get(term, 0.0) + weight
    centroid_norm = math.sqrt(sum(w * w for w in centroid.values())) or 1.0
    return [sum(w * centroid[t] for t, w in unit.items()) / centroid_norm for unit in units]


# --------------------------------------------------------------------------- bullets

_CONNECTIVE = re.compile(
    r"^(?:(?:however|in addition|additionally|moreover|furthermore|also|thus|therefore|hence|"
    r"consequently|as a result|in conclusion|in summary|to summari[sz]e|in short|overall|"
    r"finally|notably|importantly|interestingly|similarly|likewise|nevertheless|nonetheless|"
    r"indeed|in contrast|by contrast|conversely|on the other hand|in particular|specifically|"
    r"first(?:ly)?|second(?:ly)?|third(?:ly)?|lastly|meanwhile|of note|taken together|"
    r"collectively|accordingly|in this study|here)\s*,\s*|(?:and|but)\s+)",
    re.IGNORECASE,
)
_NUMBERED_CITATION = re.compile(r"\s*\[\d+(?:\s*[,\u2013-]\s*\d+)*\]")


def bullets(prompt: str, sources: Sequence[Source], *, max_bullets: int = 5) -> list[Sentence]:
    """The summary's sentences as bullets: no leading connective, no trailing period."""
    _check_limit("max_bullets", max_bullets)
    shortened = []
    for sentence in summarize(prompt, sources, max_sentences=max_bullets):
        text = _NUMBERED_CITATION.sub("", sentence.text)
        while match := _CONNECTIVE.match(text):
            text = text[match.end() :]
        first_word = text.split(maxsplit=1)[0] if text else ""
        if first_word.islower():  # "the trial…" -> "The trial…", never "mRNA" -> "MRNA"
            text = text[0].upper() + text[1:]
        text = text.rstrip(" .;,:")
        if _word_count(text) >= MIN_WORDS:
            shortened.append(Sentence(text, sentence.ref, sentence.index))
    return shortened


# --------------------------------------------------------------------------- answers


def answer(question: str, sources: Sequence[Source], *, max_sentences: int = 3) -> list[Sentence]:
    """The sentences that best answer `question`, most relevant first; [] when none does.

    Sentences are ranked by BM25 over the question's content words. A sentence counts only
    if it holds at least half of the question's weight (rarer words weigh more), so a
    question about something the inputs never mention gets no answer rather than a wrong one.
    If `question` also carries context ("Aspirin 100 mg was given. What dose was used?"),
    its statements are searched too.
    """
    _check_limit("max_sentences", max_sentences)
    parts = _split(question)
    asked = [part for part in parts if part.endswith("?")]
    query = _terms(" ".join(asked) if asked else question, drop=_QUESTION_FILLERS)
    context = (
        [(i, text) for i, text in enumerate(split_sentences(question)) if not text.endswith("?")]
        if asked
        else []
    )
    candidates = _candidates(context, sources)
    if not query or not candidates:
        return []
    count = len(candidates)
    document_frequency: Counter[str] = Counter()
    for candidate in candidates:
        document_frequency.update(term for term in candidate.terms if term in query)
    idf = {
        term: math.log(
            1.0 + (count - document_frequency[term] + 0.5) / (document_frequency[term] + 0.5)
        )
        for term in query
    }
    question_weight = sum(idf.values())
    average_length = sum(sum(c.terms.values()) for c in candidates) / count
    scored = []
    for candidate in candidates:
        matched = [term for term in query if term in candidate.terms]
        if sum(idf[term] for term in matched) < ANSWER_COVERAGE * question_weight:
            continue
        length = sum(candidate.terms.values())
        score = 0.0
        for term in matched:
            tf = candidate.terms[term]
            score += (
                idf[term]
                * tf
                * (BM25_K1 + 1)
                / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average_length))
            )
        scored.append((score, candidate))
    scored.sort(key=lambda pair: (-pair[0], pair[1].order))
    return [c.sentence for c in _pick((candidate for _, candidate in scored), max_sentences)]


# --------------------------------------------------------------------------- rendering


def render(
    sentences: Sequence[Sentence], *, style: Literal["paragraph", "bullets"], cite: bool
) -> str:
    """Sentences as a paragraph or a '- ' list, each followed by `[ref]` when citing."""

    def cited(sentence: Sentence, text: str) -> str:
        return f"{text} [{sentence.ref}]" if cite and sentence.ref is not None else text

    if style == "bullets":
        return "\n".join(f"- {cited(s, s.text)}" for s in sentences)
    return " ".join(
        cited(s, s.text if s.text.endswith((".", "!", "?")) else f"{s.text}.") for s in sentences
    )
