"""HTML bodies: rendering to plain text (html_to_text) and sanitising for display."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

import nh3

# Boundaries are written as markers and resolved afterwards, so nested blocks make one line
# break, paragraphs a blank line, and `<br>` exactly the breaks it asks for.
_LINE, _PARAGRAPH, _BREAK = "\x00", "\x01", "\x02"
_LINE_TAGS = {
    "div", "li", "tr", "dd", "dt", "section", "article", "header", "footer", "center", "address",
    "hr", "caption",
}  # fmt: skip
_PARAGRAPH_TAGS = {
    "p", "table", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "title", "noscript", "template", "xml"}
_MARKER_RUN = re.compile(r"[ \x00\x01\x02]*[\x00\x01\x02][ \x00\x01\x02]*")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0

    def boundary(self, tag: str) -> None:
        if tag == "br":
            self.chunks.append(_BREAK)
        elif tag in _PARAGRAPH_TAGS:
            self.chunks.append(_PARAGRAPH)
        elif tag in _LINE_TAGS:
            self.chunks.append(_LINE)
        elif tag in {"td", "th"}:
            self.chunks.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif not self.skipping:
            self.boundary(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.skipping and tag not in _SKIP_TAGS:
            self.boundary(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif not self.skipping and tag != "br":
            self.boundary(tag)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def _resolve_markers(match: re.Match[str]) -> str:
    run = match.group(0)
    breaks = run.count(_BREAK)
    if _PARAGRAPH in run:
        breaks = max(breaks, 2)
    elif _LINE in run:
        breaks = max(breaks, 1)
    return "\n" * breaks


def html_to_text(html: str) -> str:
    """Render HTML as plain text: no scripts or styles, one line per block, entities unescaped."""
    if not html:
        return ""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = "".join(extractor.chunks)
    except Exception:  # HTMLParser is lenient; this is a last resort for pathological input
        text = html_lib.unescape(re.sub(r"<[^>]*>", " ", html))
    text = _MARKER_RUN.sub(_resolve_markers, text.replace("\xa0", " "))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "center",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
_ALLOWED_ATTRIBUTES = {
    "*": {"title", "lang", "dir"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
    "table": {"align", "border", "cellpadding", "cellspacing", "width"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
    "p": {"align"},
    "div": {"align"},
}
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if element == "img" and attribute == "src":
        # Remote images track the reader; only images carried inside the mail are shown.
        return value if lowered.startswith(("cid:", "data:image/")) else None
    if attribute == "href" and lowered.startswith("data:"):
        return None
    return value


def sanitise_html(html: str) -> str:
    """Return HTML that is safe to render: formatting and links kept, scripts and remote images gone."""
    if not html:
        return ""
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style", "title", "noscript", "template"},
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return _IMG_WITHOUT_SRC.sub("", cleaned).strip()
