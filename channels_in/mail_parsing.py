"""Turn raw RFC 5322 bytes into an `InboundMessage`, however broken the mail is.

Real customer mail is mislabelled (GB2312 labels on GBK bytes), carries raw 8-bit headers, loses its
MIME boundaries and quotes whole threads. Python's `email` package parses the structure; everything
that decodes text (headers, parameters, bodies) is done here from the original bytes so that a wrong
label never turns Chinese into U+FFFD. Pure Python, no Django.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import html as html_lib
import io
import mimetypes
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

import charset_normalizer
import filetype
import nh3

from channels_in.base import AdapterError, InboundAttachment, InboundMessage

__all__ = ["html_to_text", "parse_mail", "sanitise_html"]

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
_MAX_DEPTH = 25

# ---------------------------------------------------------------------------------------------
# Charsets
# ---------------------------------------------------------------------------------------------

# Labels mail clients use for a superset they actually emit: decoding with the superset loses
# nothing when the label was right and recovers the text when it was not.
_CHARSET_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        (
            "gb2312",
            "gbk",
            "x-gbk",
            "cp936",
            "ms936",
            "windows-936",
            "euc-cn",
            "x-euc-cn",
            "gb_2312-80",
            "gb2312-80",
            "csgb2312",
            "chinese",
            "gb18030",
        ),
        "gb18030",
    ),
    **dict.fromkeys(
        ("big5", "big-5", "x-big5", "csbig5", "cp950", "ms950", "big5-hkscs"), "big5hkscs"
    ),
    **dict.fromkeys(
        ("ks_c_5601-1987", "ks_c_5601", "ksc5601", "euc-kr", "x-windows-949", "windows-949"),
        "cp949",
    ),
    **dict.fromkeys(
        (
            "iso-8859-1",
            "iso8859-1",
            "iso_8859-1",
            "latin1",
            "latin-1",
            "l1",
            "us-ascii",
            "ascii",
            "ansi_x3.4-1968",
            "us",
            "cp1252",
            "windows-1252",
            "x-cp1252",
        ),
        "windows-1252",
    ),
    **dict.fromkeys(
        ("shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j"),
        "cp932",
    ),
    **dict.fromkeys(("utf8", "utf-8", "x-utf-8"), "utf-8"),
    **dict.fromkeys(("utf-7", "utf7", "unicode-1-1-utf-7", "x-unicode-2-0-utf-7"), "utf-7"),
}
_UNKNOWN_CHARSETS = {"", "unknown-8bit", "x-unknown", "unknown", "default", "charset", "none"}
# Labels that promise ASCII or Latin-1 but are often slapped on UTF-8 by webmailers.
_LATIN_LABELS = {"windows-1252"}


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves five bytes undefined; Latin-1 maps them to C1 controls instead of failing.
    assert isinstance(error, UnicodeDecodeError)
    chunk = error.object[error.start : error.end]
    return bytes(chunk).decode("latin-1"), error.end


codecs.register_error("helpdesk-latin1", _latin1_fallback)


def _resolve_charset(label: str | bytes | None) -> str | None:
    """Return a Python text codec for a MIME charset label, or None if it is unusable."""
    if label is None:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "replace")
    name = label.strip().strip("\"'").strip().rstrip(";").lower()
    if name.startswith("3d"):  # "charset=3Dutf-8" from a quoted-printable body
        name = name[2:]
    if name in _UNKNOWN_CHARSETS:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):  # "base64", "rot13" and friends
        return None
    return _CHARSET_ALIASES.get(info.name, info.name)


def _decode_bytes(data: bytes, label: str | bytes | None = None, hints: Iterable[str] = ()) -> str:
    """Decode text bytes: declared charset, then UTF-8, then hints, detection, windows-1252."""
    if not data:
        return ""
    codec = _resolve_charset(label)
    if codec and (codec == "utf-7" or codec.startswith("iso2022")) and data.isascii():
        # 7-bit stateful encodings: every byte is ASCII, so "it decodes as UTF-8" proves nothing.
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            if codec.startswith("iso2022_jp"):
                return _decode_iso2022jp_as_cp932(data)
            return data.decode(codec, errors="replace")
    if data.isascii():
        return data.decode("ascii")
    candidates: list[str] = []
    if codec in _LATIN_LABELS:
        candidates.append("utf-8")  # 8-bit bytes under an ASCII/Latin-1 label: UTF-8 is likelier
    if codec:
        candidates.append(codec)
    candidates.append("utf-8")
    resolved_hints: list[str | None] = []
    for hint in [codec, *hints]:
        resolved = _resolve_charset(hint)
        resolved_hints.append(resolved)
        if resolved and resolved.startswith("iso2022_jp"):
            # 8-bit bytes in a mail that claims ISO-2022-JP are Shift_JIS in practice.
            resolved_hints += ["cp932", "euc_jp"]
    candidates += [hint for hint in resolved_hints if hint and hint not in _LATIN_LABELS]
    seen: set[str] = set()
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        if candidate == "windows-1252":
            return data.decode("cp1252", errors="helpdesk-latin1")
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    latin = data.decode("cp1252", errors="helpdesk-latin1")
    if "windows-1252" in resolved_hints and _plausible_latin(latin):
        # The mail declares Latin-1 elsewhere; unlabelled bytes are then most likely Latin-1 too.
        return latin
    if len(data) < 256:
        # Detection is guesswork on a subject or one line (it calls "Zürich" UTF-16 and short GBK
        # Korean). The customers of this helpdesk write Chinese far more than Korean, so a clean
        # GB18030 reading wins, then Latin-1 if it reads as letters.
        try:
            chinese = data.decode("gb18030")
        except UnicodeDecodeError:
            chinese = ""
        if chinese and _plausible_chinese(chinese, data):
            return chinese
        if _plausible_latin(latin):
            return latin
    detected = _detect(data)
    if detected is not None:
        return detected
    if codec:
        return data.decode(codec, errors="replace")
    return data.decode("cp1252", errors="helpdesk-latin1")


def _plausible_latin(text: str) -> bool:
    high = [char for char in text if ord(char) > 0x7F]
    letters = sum(1 for char in high if char.isalpha())
    return not high or letters / len(high) >= 0.8


def _plausible_chinese(text: str, data: bytes) -> bool:
    high = [char for char in text if ord(char) > 0x7F]
    if sum(byte > 0x7F for byte in data) != 2 * len(high):
        return False  # a "character" swallowed an ASCII byte: Latin-1 or Shift_JIS, not GBK
    common = sum(
        1
        for char in high
        if "\u4e00" <= char <= "\u9fff"
        or "\u3000" <= char <= "\u303f"
        or "\uff00" <= char <= "\uffef"
    )
    return bool(high) and common / len(high) >= 0.9


def _decode_iso2022jp_as_cp932(data: bytes) -> str:
    """ISO-2022-JP with vendor characters (NEC ①, IBM kanji) that Python's codec refuses.

    Japanese mailers encode cp932 text as ISO-2022-JP; converting JIS rows back to Shift_JIS
    lets the cp932 codec, which knows those rows, decode them.
    """
    out = bytearray()
    mode = "ascii"
    index = 0
    while index < len(data):
        if data[index] == 0x1B:
            sequence = data[index + 1 : index + 3]
            if sequence in (b"$B", b"$@"):
                mode = "jis"
            elif sequence in (b"(B", b"(J"):
                mode = "ascii"
            elif sequence == b"(I":
                mode = "kana"
            index += 3
            continue
        byte = data[index]
        if mode == "jis" and byte > 0x20 and index + 1 < len(data) and data[index + 1] > 0x20:
            first, second = byte, data[index + 1]
            lead = ((first + 1) >> 1) + (0x70 if first <= 0x5E else 0xB0)
            odd_row_offset = 0x1F if second <= 0x5F else 0x20
            trail = second + (odd_row_offset if first & 1 else 0x7E)
            out += bytes([lead & 0xFF, trail & 0xFF])
            index += 2
            continue
        out.append(byte | 0x80 if mode == "kana" and 0x21 <= byte <= 0x5F else byte)
        index += 1
    return bytes(out).decode("cp932", errors="replace")


def _detect(data: bytes) -> str | None:
    try:
        best = charset_normalizer.from_bytes(data[:200_000]).best()
    except Exception:  # detection is best effort
        return None
    if best is None or best.encoding is None or best.encoding.startswith(("utf_16", "utf_32")):
        return None
    codec = _resolve_charset(best.encoding) or best.encoding
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


# ---------------------------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def _raw_headers(msg: Message, name: str) -> list[bytes]:
    lowered = name.lower()
    values: list[bytes] = []
    for key, value in msg.raw_items():
        if key.lower() == lowered:
            raw = str(value).encode("utf-8", "surrogateescape")
            values.append(_FOLD.sub(b"", raw).strip())
    return values


def _raw_header(msg: Message, name: str) -> bytes | None:
    values = _raw_headers(msg, name)
    return values[0] if values else None


def _decode_b(data: bytes) -> bytes:
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    while data:
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            data = data[:-1]  # a lone trailing character cannot be decoded
    return b""


def _decode_header_bytes(raw: bytes, hints: Iterable[str] = ()) -> str:
    """Decode a header value: RFC 2047 words (split or malformed ones too) and raw 8-bit bytes."""
    raw = _FOLD.sub(b"", raw)
    hints = tuple(hints)
    pieces: list[tuple[bytes, str | None]] = []
    position = 0
    previous_encoded = False
    for match in _ENCODED_WORD.finditer(raw):
        between = raw[position : match.start()]
        if between and not (previous_encoded and between.isspace()):
            pieces.append((between, None))
            previous_encoded = False
        label = match.group(1).split(b"*")[0].decode("ascii", "replace")
        text = match.group(3)
        is_base64 = match.group(2) in b"bB"
        decoded = _decode_b(text) if is_base64 else binascii.a2b_qp(text, header=True)
        if previous_encoded and pieces and pieces[-1][1] == label.lower():
            # Multi-byte characters split across adjacent words must be joined before decoding.
            pieces[-1] = (pieces[-1][0] + decoded, label.lower())
        else:
            pieces.append((decoded, label.lower()))
        previous_encoded = True
        position = match.end()
    if position < len(raw):
        pieces.append((raw[position:], None))
    return "".join(_decode_bytes(data, label, hints) for data, label in pieces)


def _collapse(text: str) -> str:
    return " ".join(text.split())


_PARAM = re.compile(rb';\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')


def _parse_params(raw: bytes | None, hints: Iterable[str] = ()) -> tuple[str, dict[str, str]]:
    """Split `type/sub; a=b` into the lower-cased value and decoded parameters (RFC 2231 too)."""
    if not raw:
        return "", {}
    raw = _FOLD.sub(b"", raw)
    main = raw.split(b";", 1)[0].strip().decode("ascii", "replace").lower()
    segments: dict[str, list[tuple[int, bool, bytes]]] = {}
    for match in _PARAM.finditer(raw):
        key = match.group(1).decode("ascii", "replace").lower()
        value = match.group(2).strip()
        if value.startswith(b'"'):
            value = re.sub(rb"\\(.)", rb"\1", value[1:-1] if value.endswith(b'"') else value[1:])
        extended = key.endswith("*")
        key = key.rstrip("*")
        index = 0
        section = re.fullmatch(r"(.+)\*(\d+)", key)
        if section:
            key, index = section.group(1), int(section.group(2))
        segments.setdefault(key, []).append((index, extended, value))
    params: dict[str, str] = {}
    for key, parts in segments.items():
        parts.sort(key=lambda item: item[0])
        if any(extended for _, extended, _ in parts):
            charset: str | None = None
            data = b""
            for position, (_, extended, value) in enumerate(parts):
                if extended:
                    if position == 0 and value.count(b"'") >= 2:
                        label, _, value = value.split(b"'", 2)
                        charset = label.decode("ascii", "replace") or None
                    value = re.sub(
                        rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), value
                    )
                data += value
            params[key] = _decode_bytes(data, charset, hints)
        else:
            params[key] = _decode_header_bytes(b"".join(value for _, _, value in parts), hints)
    return main, params


_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def _valid_address(address: str) -> bool:
    local, _, domain = address.partition("@")
    return bool(local and domain) and "@" not in domain and not any(c.isspace() for c in address)


def _parse_from(text: str) -> tuple[str, str]:
    """Return (display name, address) from a decoded From-like header, recovering garbage."""
    text = text.strip()
    if not text:
        return "", ""
    angle = re.search(r"<([^<>]*)>\s*$", text)
    if angle and _valid_address(angle.group(1).strip().strip("\"'")):
        name = text[: angle.start()]
        if "<" in name or "," in name:  # several addresses, e.g. `"A" <>, "B" <b@x>`
            name = name.rsplit(",", 1)[-1]
        return name.strip().strip("\"'").strip(), angle.group(1).strip().strip("\"'")
    name, address = parseaddr(text)
    address = address.strip().strip("\"'")
    if _valid_address(address):
        return name.strip(), address
    found = _ADDRESS.findall(text)
    if found:  # garbled: take the last thing that looks like an address
        return name.strip() if name.strip() != address else "", found[-1]
    if address and not re.search(r"[\s<>]", address):
        return name.strip(), address  # a bare local name such as MAILER-DAEMON
    return name.strip(), ""


def _message_ids(raw: bytes | None) -> list[str]:
    if not raw:
        return []
    text = raw.decode("ascii", "replace")
    ids = re.findall(r"<([^<>\s]+)>", text)
    if not ids:
        ids = [token for token in re.split(r"[\s,]+", text) if "@" in token]
    return [value.strip() for value in ids if value.strip()]


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Quoted history and signatures
# ---------------------------------------------------------------------------------------------

_ATTRIBUTION = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"^On\s.{1,300}\swrote\s*:?$",
        r"^Am\s.{1,300}\sschrieb\s?.{0,200}:$",
        r"^Le\s.{1,300}\sa\s+écrit\s*:$",
        r"^El\s.{1,300}\sescribió\s*:$",
        r"^在.{1,300}写道\s*[:：]$",
        r"^於.{1,300}寫道\s*[:：]$",
        r"^.{0,300}(写道|寫道)\s*[:：]$",
    )
]
_ATTRIBUTION_START = re.compile(r"^(On|Am|Le|El|在|於)(\s|\d)", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^-{2,}\s*(Original Message|Original Nachricht|Ursprüngliche Nachricht|Message d'origine"
    r"|原始邮件|原始郵件|原邮件)\s*-{2,}$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{10,}$")
_FROM_LINE = re.compile(r"^\*?\s*(From|发件人|寄件者|Von|De)\s*\*?\s*[:：]", re.IGNORECASE)
_SENT_LINE = re.compile(
    r"^\*?\s*(Sent|Date|发送时间|发件时间|寄件日期|日期|時間|时间|Gesendet|Datum|Envoyé)\s*\*?\s*[:：]",
    re.IGNORECASE,
)
_MOBILE_FOOTER = re.compile(
    r"^(Sent from my\s|Sent from (Mail|Outlook|Yahoo)|Get Outlook for\s|Von meinem .+ gesendet"
    r"|Envoyé de mon\s|发自我的|發自我的|来自我的|從我的 .+ 傳送)",
    re.IGNORECASE,
)


def _quote_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if line.rstrip("\r\n") in ("-- ", "--") or _SEPARATOR.match(stripped):
            return index
        if _MOBILE_FOOTER.match(stripped):
            return index
        if any(pattern.match(stripped) for pattern in _ATTRIBUTION):
            return index
        if _ATTRIBUTION_START.match(stripped) and index + 1 < len(lines):
            joined = f"{stripped} {lines[index + 1].strip()}"
            if any(pattern.match(joined) for pattern in _ATTRIBUTION):
                return index
        following = [other.strip() for other in lines[index + 1 : index + 6] if other.strip()]
        if _UNDERSCORES.match(stripped) and following and _FROM_LINE.match(following[0]):
            return index
        if _FROM_LINE.match(stripped) and any(_SENT_LINE.match(other) for other in following[:4]):
            return index
    return None


def trim_quoted(full_text: str) -> str:
    """Cut quoted history, signature and mobile footers; never return less than something."""
    lines = full_text.split("\n")
    cut = _quote_start(lines)
    kept = lines if cut is None else lines[:cut]
    while kept and (not kept[-1].strip() or kept[-1].lstrip().startswith(">")):
        kept.pop()
    text = "\n".join(kept).strip()
    return text or full_text.strip()


# ---------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------

_UUENCODED = re.compile(r"(?ms)^begin [0-7]{3,4} ([^\r\n]+)\r?\n(.*?)^end[ \t]*\r?$\n?")
_BOUNDARY_LINE = re.compile(rb"(?m)^--([^\s\"][^\r\n]{0,200}?)[ \t]*\r?\n(?=[A-Za-z-]+:)")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def _uudecode(body: str) -> bytes | None:
    out = bytearray()
    for line in body.splitlines():
        if not line or line in ("`", " "):
            continue
        raw = line.encode("ascii", "replace")
        try:
            out += binascii.a2b_uu(raw)
        except binascii.Error:
            # Some encoders pad lines wrongly; decode only the bytes the length char promises.
            size = (((raw[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(raw[:size])
            except binascii.Error:
                return None
    return bytes(out)


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", _collapse(name)).strip(" ._")
    return name[:200]


class _Collector:
    """Walks one message tree and sorts its parts into bodies and attachments."""

    def __init__(self, parser: BytesParser, max_attachment_bytes: int, hints: list[str]) -> None:
        self.parser = parser
        self.max_attachment_bytes = max_attachment_bytes
        self.hints = hints
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[InboundAttachment] = []
        self.skipped: list[dict[str, object]] = []
        self.forwarded_texts: list[str] = []
        self.notes: list[str] = []
        self.preamble = ""

    # -- helpers ------------------------------------------------------------------------------
    def content_type(self, part: Message) -> tuple[str, dict[str, str]]:
        main, params = _parse_params(_raw_header(part, "content-type"), self.hints)
        if "/" not in main or " " in main:
            main = part.get_default_type()
        return main, params

    def disposition(self, part: Message) -> tuple[str, dict[str, str]]:
        return _parse_params(_raw_header(part, "content-disposition"), self.hints)

    def payload_bytes(self, part: Message) -> bytes:
        try:
            data = part.get_payload(decode=True)
        except Exception:  # a broken transfer encoding still leaves the raw text
            data = None
        if isinstance(data, bytes):
            return data
        payload = part.get_payload()
        if isinstance(payload, str):
            return payload.encode("utf-8", "surrogateescape")
        return b""

    def part_text(self, part: Message, params: dict[str, str]) -> str:
        text = _decode_bytes(self.payload_bytes(part), params.get("charset"), self.hints)
        return text.replace("\r\n", "\n").replace("\r", "\n")

    # -- walking ------------------------------------------------------------------------------
    def walk(self, part: Message, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            self.notes.append("nesting too deep")
            return
        ctype, params = self.content_type(part)
        disposition, disp_params = self.disposition(part)
        payload = part.get_payload()
        if ctype.startswith("message/"):
            self.add_message_part(part, ctype, params, disp_params, depth)
            return
        if isinstance(payload, list):
            self.walk_multipart(ctype, payload, depth)
            return
        if ctype.startswith("multipart/"):
            self.recover_multipart(part, params, depth)
            return
        filename = disp_params.get("filename") or params.get("name")
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            text = self.part_text(part, params)
            if ctype == "text/html":
                self.html.append(text)
            else:
                self.plain.append(self.extract_uuencoded(text))
            return
        self.add_attachment(part, ctype, params, disposition, disp_params)

    def walk_multipart(self, ctype: str, children: list[Message], depth: int) -> None:
        subtype = ctype.split("/", 1)[1] if "/" in ctype else "mixed"
        if subtype == "alternative":
            self.walk_alternative(children, depth)
        elif subtype == "signed" and children:
            self.walk(children[0], depth + 1)
            for child in children[1:]:
                self.walk_as_attachment(child, default_name=self.signature_name(child))
        elif subtype == "encrypted":
            for child in children:
                self.walk_as_attachment(child)
        else:
            for child in children:
                self.walk(child, depth + 1)

    def walk_alternative(self, children: list[Message], depth: int) -> None:
        saved_plain, saved_html = self.plain, self.html
        best_plain: list[str] = []
        best_html: list[str] = []
        for child in children:
            self.plain, self.html = [], []
            self.walk(child, depth + 1)
            if any(text.strip() for text in self.plain):
                best_plain = self.plain
            if any(text.strip() for text in self.html):
                best_html = self.html
        self.plain, self.html = saved_plain + best_plain, saved_html + best_html

    def recover_multipart(self, part: Message, params: dict[str, str], depth: int) -> None:
        """A multipart whose boundary never appears: find the real one or keep the text."""
        data = self.payload_bytes(part)
        found = _BOUNDARY_LINE.search(data)
        if found:
            boundary = found.group(1)
            wrapped = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n' + data
            try:
                recovered = self.parser.parsebytes(wrapped)
                children = recovered.get_payload()
            except Exception:
                children = None
            if isinstance(children, list) and children:
                self.notes.append("recovered multipart boundary")
                for child in children:
                    self.walk(child, depth + 1)
                return
        self.notes.append("multipart without boundary read as text")
        text = _decode_bytes(data, params.get("charset"), self.hints)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if re.search(r"<(html|body|div|p|br)\b", text, re.IGNORECASE):
            self.html.append(text)
        else:
            self.plain.append(self.extract_uuencoded(text))

    def walk_as_attachment(self, part: Message, default_name: str = "") -> None:
        ctype, params = self.content_type(part)
        disposition, disp_params = self.disposition(part)
        if isinstance(part.get_payload(), list):
            self.add_message_part(part, ctype, params, disp_params, _MAX_DEPTH)
            return
        self.add_attachment(part, ctype, params, "attachment", disp_params, default_name)

    @staticmethod
    def signature_name(part: Message) -> str:
        ctype = part.get_content_type()
        if "pgp" in ctype:
            return "signature.asc"
        if "pkcs7" in ctype:
            return "smime.p7s"
        return ""

    def add_message_part(
        self,
        part: Message,
        ctype: str,
        params: dict[str, str],
        disp_params: dict[str, str],
        depth: int,
    ) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if ctype in ("message/rfc822", "message/global") and isinstance(inner, Message):
            data = _flatten(inner)
            subject = _collapse(_decode_header_bytes(_raw_header(inner, "subject") or b""))
            name = disp_params.get("filename") or params.get("name") or ""
            name = _safe_filename(name) or (_safe_filename(subject)[:150] + ".eml")
            if name == ".eml":
                name = "forwarded.eml"
            if depth < _MAX_DEPTH:
                nested = _Collector(self.parser, self.max_attachment_bytes, self.hints)
                nested.walk(inner, depth + 1)
                text = nested.full_text()
                if text:
                    self.forwarded_texts.append(text)
            self.store(name, "message/rfc822", data, "", inline=False)
            return
        if isinstance(payload, list):
            data = b"".join(_flatten(sub) for sub in payload if isinstance(sub, Message))
        else:
            data = self.payload_bytes(part)
        default = {
            "message/delivery-status": "delivery-status.txt",
            "message/disposition-notification": "disposition-notification.txt",
        }.get(ctype, "")
        name = _safe_filename(disp_params.get("filename") or params.get("name") or "") or default
        self.store(name, ctype, data, "", inline=False)

    def add_attachment(
        self,
        part: Message,
        ctype: str,
        params: dict[str, str],
        disposition: str,
        disp_params: dict[str, str],
        default_name: str = "",
    ) -> None:
        data = self.payload_bytes(part)
        name = _safe_filename(disp_params.get("filename") or params.get("name") or "")
        if not name and ctype == "text/rfc822-headers":
            name = "rfc822-headers.txt"
        content_id = (_raw_header(part, "content-id") or b"").decode("ascii", "replace")
        content_id = content_id.strip().strip("<>").strip()
        inline = disposition == "inline" or (disposition != "attachment" and bool(content_id))
        self.store(name or default_name, ctype, data, content_id, inline=inline)

    def store(self, name: str, ctype: str, data: bytes, content_id: str, *, inline: bool) -> None:
        if not name:
            extension = mimetypes.guess_extension(ctype, strict=False) or ".bin"
            name = f"attachment-{len(self.attachments) + len(self.skipped) + 1}{extension}"
        if len(data) > self.max_attachment_bytes:
            self.skipped.append({"filename": name, "size": len(data), "content_type": ctype})
            return
        self.attachments.append(
            InboundAttachment(
                filename=name,
                content_type=_sniff(data, ctype),
                content=data,
                content_id=content_id,
                inline=inline,
            )
        )

    def extract_uuencoded(self, text: str) -> str:
        """Pull `begin 644 name` blocks out of a plain-text body into attachments."""
        if "begin " not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            data = _uudecode(match.group(2))
            if data is None:
                return match.group(0)
            name = _safe_filename(match.group(1)) or ""
            guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.store(name, guessed, data, "", inline=False)
            return ""

        return _UUENCODED.sub(replace, text)

    # -- results ------------------------------------------------------------------------------
    def full_text(self) -> str:
        body = self.body_text()
        if self.preamble:
            return f"{self.preamble}\n{body}".strip()
        return body

    def body_text(self) -> str:
        plain = "\n\n".join(text.strip("\n") for text in self.plain if text.strip())
        if plain.strip():
            return plain.strip()
        from_html = "\n\n".join(html_to_text(text) for text in self.html if text.strip())
        if from_html.strip():
            return from_html.strip()
        return "\n\n".join(self.forwarded_texts).strip()


def _flatten(msg: Message) -> bytes:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=email_policy.compat32).flatten(msg)
    except Exception:  # an unserialisable part is kept as whatever text it has
        try:
            return msg.as_string(policy=email_policy.compat32).encode("utf-8", "surrogateescape")
        except Exception:
            return b""
    return buffer.getvalue()


def _sniff(data: bytes, declared: str) -> str:
    try:
        kind = filetype.guess(data) if data else None
    except Exception:  # sniffing is a hint, never a reason to lose the file
        kind = None
    if kind is not None:
        return kind.mime
    if declared and "/" in declared:
        return declared
    return "application/octet-stream"


# ---------------------------------------------------------------------------------------------
# Automated mail
# ---------------------------------------------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[\s_-]*(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz"
    r"|自动回复|自動回覆|自動回复|undelivered mail returned to sender|delivery status notification"
    r"|mail delivery failed|undeliverable|returned mail|delivery failure|failure notice"
    r"|系统退信|退信)",
    re.IGNORECASE,
)


def _automated_reason(headers: dict[str, str], ctype: str, sender: str) -> str:
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"auto-submitted: {auto_submitted}"
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"):
        value = headers.get(name, "")
        if value and (
            name != "x-auto-response-suppress" or re.search(r"all|oof|autoreply", value, re.I)
        ):
            return f"{name}: {value.strip()}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"precedence: {precedence}"
    if headers.get("list-id") or headers.get("list-unsubscribe"):
        return "mailing list"
    local_part = sender.split("@", 1)[0].lower()
    if local_part in {"mailer-daemon", "postmaster"}:
        return "bounce"
    if headers.get("return-path", "x").strip() in {"<>", ""}:
        return "bounce (null return path)"
    if ctype == "multipart/report":
        return "delivery status report"
    if headers.get("x-failed-recipients"):
        return "bounce"
    subject = headers.get("subject", "").strip()
    subject = re.sub(r"^((re|aw|fw|fwd|wg)\s*:\s*)+", "", subject, flags=re.IGNORECASE)
    if _AUTO_SUBJECT.match(subject):
        return f"subject: {subject[:80]}"
    return ""


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

# A payload is mail if its header block has at least one of these; JSON or prose has none.
_KEY_HEADERS = {
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "received",
    "return-path",
    "delivered-to",
}
_AUTOMATION_HEADERS = (
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "return-path",
    "x-failed-recipients",
)


def parse_mail(
    raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> InboundMessage:
    """Parse raw mail bytes into an InboundMessage; raise only AdapterError, permanent if not mail."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise AdapterError("mail must be given as bytes", permanent=True)
    raw = bytes(raw)
    if not raw.strip():
        raise AdapterError("empty mail", permanent=True)
    last_error: Exception | None = None
    for policy in (email_policy.default, email_policy.compat32):
        try:
            return _parse(raw, BytesParser(policy=policy), max_attachment_bytes)
        except AdapterError:
            raise
        except Exception as error:  # policy.default has bugs on hostile headers; retry compat32
            last_error = error
    raise AdapterError(f"unparsable mail: {last_error!r}", permanent=True)


def _parse(raw: bytes, parser: BytesParser, max_attachment_bytes: int) -> InboundMessage:
    msg = parser.parsebytes(raw)
    present = {key.lower() for key, _ in msg.raw_items()}
    if not present & _KEY_HEADERS:
        raise AdapterError("not a mail message: no mail header block", permanent=True)

    body_root, stray_prefix = _embedded_header_block(msg, parser)
    hints = _declared_charsets(body_root)

    def header(name: str) -> str:
        value = _raw_header(msg, name)
        if value is None or not value.strip():
            value = _raw_header(body_root, name)
        return _decode_header_bytes(value, hints) if value is not None else ""

    sender_name, sender = "", ""
    for raw_from in _raw_headers(msg, "from") or [b""]:
        sender_name, sender = _parse_from(_decode_header_bytes(raw_from, hints))
        if _valid_address(sender):
            break
    if not _valid_address(sender):
        for fallback in ("sender", "reply-to", "return-path"):
            _, candidate = _parse_from(header(fallback))
            if _valid_address(candidate):
                sender_name = sender_name or ""
                sender = candidate
                break
    sender = sender.strip().lower()

    message_ids = _message_ids(_raw_header(msg, "message-id"))
    message_id = message_ids[0] if message_ids else ""
    external_id = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()

    reply_to_ids: list[str] = []
    references = _message_ids(b" ".join(_raw_headers(msg, "references")))
    for value in _message_ids(_raw_header(msg, "in-reply-to")) + references[::-1]:
        if value not in reply_to_ids:
            reply_to_ids.append(value)

    recipients: list[str] = []
    for name in ("to", "cc"):
        raw_values = [value.decode("utf-8", "surrogateescape") for value in _raw_headers(msg, name)]
        for _, address in getaddresses(raw_values):
            address = _decode_bytes(address.encode("utf-8", "surrogateescape"), None, hints)
            address = address.strip().lower()
            if "@" in address and address not in recipients:
                recipients.append(address)

    collector = _Collector(parser, max_attachment_bytes, hints)
    collector.walk(body_root)
    if stray_prefix.strip():
        collector.preamble = _decode_bytes(stray_prefix, None, hints).strip()
        collector.notes.append("header block continued inside the body")
    full_text = collector.full_text()
    html = "\n".join(text for text in collector.html if text.strip())

    subject = _collapse(header("subject"))
    ctype = collector.content_type(body_root)[0]
    automation = {name: header(name) for name in _AUTOMATION_HEADERS if name in present}
    automation["subject"] = subject
    reason = _automated_reason(automation, ctype, sender)

    defects = sorted({type(defect).__name__ for part in msg.walk() for defect in part.defects})
    metadata: dict[str, object] = {"message_id": message_id}
    if defects or collector.notes:
        metadata["defects"] = defects + collector.notes
    if collector.skipped:
        metadata["skipped_attachments"] = collector.skipped

    return InboundMessage(
        channel="email",
        external_id=external_id,
        sender_kind="email",
        sender_value=sender,
        sender_name=_collapse(sender_name),
        subject=subject,
        text=trim_quoted(full_text) if full_text else "",
        full_text=full_text,
        html=sanitise_html(html),
        attachments=collector.attachments,
        reply_to_ids=reply_to_ids,
        sent_at=_parse_date(header("date")),
        automated=bool(reason),
        automated_reason=reason,
        recipients=recipients,
        metadata=metadata,
    )


_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")


def _embedded_header_block(msg: Message, parser: BytesParser) -> tuple[Message, bytes]:
    """Find MIME headers pushed into the body by a stray line; return (root to walk, stray text).

    Some bulk mailers emit a junk line between two halves of the header block, so the parser
    ends the headers early and the real Content-Type and boundary land in the body.
    """
    if _raw_header(msg, "content-type") is not None or msg.is_multipart():
        return msg, b""
    body = msg.get_payload(decode=True)
    if not isinstance(body, bytes):
        return msg, b""
    lines = body[:20_000].split(b"\n")
    offset = 0
    for start, line in enumerate(lines[:4]):
        block = []
        for following in lines[start:]:
            if not following.strip():
                break
            block.append(following)
        header_lines = [item for item in block if _HEADER_LINE.match(item)]
        if (
            len(header_lines) >= 3
            and _HEADER_LINE.match(line)
            and any(item.lower().startswith(b"content-type:") for item in header_lines)
        ):
            try:
                inner = parser.parsebytes(body[offset:])
            except Exception:
                return msg, b""
            return inner, body[:offset]
        offset += len(line) + 1
    return msg, b""


def _declared_charsets(msg: Message) -> list[str]:
    found: list[str] = []
    try:
        parts = list(msg.walk())
    except Exception:
        parts = [msg]
    for part in parts:
        _, params = _parse_params(_raw_header(part, "content-type"))
        codec = _resolve_charset(params.get("charset"))
        if codec and codec not in found and codec != "utf-7":
            found.append(codec)
    for name in ("subject", "from", "to"):
        for match in _ENCODED_WORD.finditer(_raw_header(msg, name) or b""):
            codec = _resolve_charset(match.group(1).split(b"*")[0])
            if codec and codec not in found and codec != "utf-7":
                found.append(codec)
    return found


def _parse_date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
