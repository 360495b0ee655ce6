"""Plain text from the markup in scholarly metadata: Crossref's JATS abstracts
(`<jats:title>Abstract</jats:title><jats:p>...`), HTML (`<p>`, `<i>`, `<sub>`), MathML, Wiley's
`<scp>` small caps, HTML entities, and arXiv's hard-wrapped summaries.

The rules, for both titles and abstracts:

- Tags go, their text stays. Inline tags (`<i>`, `<sub>`, `<scp>`, ...) join their text to
  the words around it (`CO<sub>2</sub>` -> `CO2`, `<scp>T</scp>reebase` -> `Treebase`), with
  one repair: an italic, bold, monospace, styled-content or link run of two or more characters
  glued to a word (or after a comma) gets a space there, because publishers' JATS often drops
  those spaces (`targeting<jats:italic>SMARCB1</jats:italic>for` -> `targeting SMARCB1 for`).
- Small caps (`<scp>`, `<jats:sc>`) are written in capitals, as they are displayed
  (`<jats:sc>r</jats:sc>` -> `R`).
- MathML annotations (TeX duplicates of a formula) and `<script>`/`<style>` content are dropped.
- HTML entities are unescaped; markup that arrives escaped (`&lt;p&gt;...`) is read as markup.
- Whitespace is normalised: every run of spaces, tabs and line breaks becomes one space, so
  arXiv's hard line wraps disappear.

Abstracts keep their paragraphs: paragraphs (`<p>`, list items, sections; in plain text, a
blank line) are joined with a blank line ("\\n\\n"); nothing else in the result is a line
break, and there are no double spaces. A leading "Abstract"/"ABSTRACT"/"Summary" heading or label
is dropped, and a section heading inside a structured abstract is joined to its text
("Methods: We paired ..."). Titles come back on one line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

# Every pattern here runs in time linear in its input (no lazy `.*?` that restarts at each
# opening): a provider's body is not ours, and cleaning runs on the gateway's event loop.
_DECLARATION = re.compile(r"<![A-Za-z][^<>]*>")
_TAG = re.compile(r"<(/?)([A-Za-z][\w.-]*(?::[A-Za-z_][\w.-]*)?)(\s[^<>]*)?>")
_DROPPED_OPEN = re.compile(
    r"<((?:[\w.-]+:)?(?:annotation|annotation-xml|script|style))(?=[\s/>])[^<>]*>", re.I
)
_TEX_MATH_OPEN = re.compile(r"<((?:[\w.-]+:)?tex-math)(?=[\s/>])[^<>]*>", re.I)
MAX_INPUT_CHARS = 50_000  # longer markup is cut: no abstract is that long
_MATHML = re.compile(r"<(?:[\w.-]+:)?math(?=[\s/>])", re.I)
_EMPHASIS = re.compile(
    r"<((?:[\w.-]+:)?(?:italic|i|em|bold|b|strong|underline|u|monospace|tt|code|styled-content"
    r"|ext-link|uri))(?:\s[^<>]*)?>([^<]*)</\1\s*>",
    re.I,
)
_SMALL_CAPS = re.compile(r"<((?:[\w.-]+:)?(?:sc|scp))(?:\s[^<>]*)?>([^<]*)</\1\s*>", re.I)
_ESCAPED_MARKUP = re.compile(
    r"&lt;/?(?:[\w.-]+:)?(?:p|i|b|em|strong|sub|sup|sc|scp|italic|bold|title|sec|br|span|div"
    r"|list|list-item)(?:\s|/|&gt;)",
    re.I,
)
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\x00-\x08\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_PLAIN_LABEL_LINE = re.compile(r"^\s*(?:abstract|summary)[ \t]*[:.]?[ \t]*\r?\n", re.I)
_LABEL_PREFIX = re.compile(
    r"^(?:(?i:abstract|summary)\s*[:.\-\u2013\u2014]\s*|(?:ABSTRACT|SUMMARY)\s+)"
)
_LIST_MARK = re.compile(r"^(?:\(?(?:\d{1,3}|[a-z]|[ivx]{1,4})[.)]|[\u2022\u00b7*\-\u2013\u2014])$")
_HEADING_END = re.compile(r"[.:?!]$")

_LABELS = {"abstract", "summary"}
_TITLE_TAGS = {"title", "h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCK_TAGS = {
    "p",
    "sec",
    "list",
    "list-item",
    "li",
    "ul",
    "ol",
    "div",
    "br",
    "hr",
    "blockquote",
    "disp-quote",
    "def-list",
    "def-item",
    "term",
    "def",
    "table",
    "table-wrap",
    "tr",
    "caption",
    "fig",
    "abstract",
    "trans-abstract",
    "boxed-text",
    "statement",
    "disp-formula",
    "section",
    "article",
}


def clean_abstract(text: str | None) -> str | None:
    """Plain-text abstract (paragraphs separated by "\\n\\n"), or None when nothing is left."""
    if text is None:
        return None
    blocks = _blocks(text)
    paragraphs = _paragraphs(blocks)
    return "\n\n".join(paragraphs) or None


def clean_title(text: str | None) -> str | None:
    """A title (or any short field) on one line without markup, or None when nothing is left."""
    if text is None:
        return None
    joined = " ".join(part for _, part in _blocks(text))
    return _WHITESPACE.sub(" ", joined).strip() or None


def _blocks(text: str) -> list[tuple[bool, str]]:
    """`(is_heading, text)` per block, whitespace collapsed inside each."""
    source = _INVISIBLE.sub("", text[:MAX_INPUT_CHARS])
    if not _TAG.search(source) and _ESCAPED_MARKUP.search(source):
        source = html.unescape(source)
    if not _TAG.search(source):
        source = _PLAIN_LABEL_LINE.sub("", source, count=1)
        return [
            (False, part)
            for raw in _PARAGRAPH_BREAK.split(html.unescape(source))
            if (part := _WHITESPACE.sub(" ", raw).strip())
        ]
    source = _between(source, "<!--", "-->", lambda _: "")
    source = _between(source, "<![CDATA[", "]]>", lambda inner: html.escape(inner, quote=False))
    source = _between(source, "<?", "?>", lambda _: "")
    source = _DECLARATION.sub("", source)
    source = _drop_elements(source, _DROPPED_OPEN)
    if _MATHML.search(source):
        source = _drop_elements(source, _TEX_MATH_OPEN)
    source = _SMALL_CAPS.sub(_capitals, source)
    source = _EMPHASIS.sub(_spaced_emphasis, source)

    blocks: list[tuple[bool, str]] = []
    buffer: list[str] = []
    in_heading = False

    def flush() -> None:
        part = _WHITESPACE.sub(" ", "".join(buffer)).strip()
        buffer.clear()
        if part:
            blocks.append((in_heading, part))

    position = 0
    for tag in _TAG.finditer(source):
        buffer.append(html.unescape(source[position : tag.start()]))
        position = tag.end()
        name = tag.group(2).rsplit(":", 1)[-1].lower()
        if name in _TITLE_TAGS:
            flush()
            in_heading = not tag.group(1) and not (tag.group(3) or "").rstrip().endswith("/")
        elif name in _BLOCK_TAGS:
            flush()
    buffer.append(html.unescape(source[position:]))
    flush()
    return blocks


def _between(source: str, start: str, end: str, replace: Callable[[str], str]) -> str:
    """`source` with every `start`...`end` span replaced by `replace(inner)`; an unclosed
    span is dropped to the end."""
    parts: list[str] = []
    position = 0
    while (opened := source.find(start, position)) != -1:
        parts.append(source[position:opened])
        closed = source.find(end, opened + len(start))
        if closed == -1:
            return "".join(parts)
        parts.append(replace(source[opened + len(start) : closed]))
        position = closed + len(end)
    parts.append(source[position:])
    return "".join(parts)


def _drop_elements(source: str, opening: re.Pattern[str]) -> str:
    """`source` without the elements `opening` starts (up to their closing tag)."""
    parts: list[str] = []
    position = 0
    unclosed: set[str] = set()
    for match in opening.finditer(source):
        name = match.group(1).lower()
        if match.start() < position or name in unclosed:
            continue
        closing = re.compile(rf"</{re.escape(match.group(1))}\s*>", re.I).search(
            source, match.end()
        )
        if closing is None:
            unclosed.add(name)  # no later one of this name can close either
            continue
        parts += [source[position : match.start()], " "]
        position = closing.end()
    parts.append(source[position:])
    return "".join(parts)


def _paragraphs(blocks: list[tuple[bool, str]]) -> list[str]:
    """Drop a leading Abstract label, join headings and list marks to what follows."""
    while len(blocks) > 1 and blocks[0][1].rstrip(":.").strip().lower() in _LABELS:
        blocks = blocks[1:]
    if len(blocks) == 1 and blocks[0][1].rstrip(":.").strip().lower() in _LABELS:
        return []
    paragraphs: list[str] = []
    index = 0
    while index < len(blocks):
        heading, part = blocks[index]
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following is not None and not following[0]:
            if heading:
                joiner = " " if _HEADING_END.search(part) else ": "
                paragraphs.append(f"{part}{joiner}{following[1]}")
                index += 2
                continue
            if _LIST_MARK.match(part):
                paragraphs.append(f"{part} {following[1]}")
                index += 2
                continue
        paragraphs.append(part)
        index += 1
    if paragraphs:
        rest = _LABEL_PREFIX.sub("", paragraphs[0], count=1)
        if rest and rest != paragraphs[0]:
            paragraphs[0] = rest
    return paragraphs


def _capitals(match: re.Match[str]) -> str:
    return html.escape(html.unescape(match.group(2)).upper(), quote=False)


def _spaced_emphasis(match: re.Match[str]) -> str:
    inner = match.group(2)
    whole = match.string
    before = whole[match.start() - 1] if match.start() > 0 else ""
    after = whole[match.end()] if match.end() < len(whole) else ""
    long_enough = len(inner.strip()) >= 2
    glued_before = before.isalnum() or (before in ",;" and inner[:1].isalpha())
    lead = " " if long_enough and glued_before and inner[:1].isalnum() else ""
    trail = " " if long_enough and after.isalnum() and inner[-1:].isalnum() else ""
    return f"{lead}{inner}{trail}"
