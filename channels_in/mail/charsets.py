"""Charset labels and aliases, byte decoding with detection, and ISO-2022-JP as cp932."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

import charset_normalizer

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
# Python codec names of multi-byte East Asian encodings (after resolve_charset's aliases).
_CJK_CODEC_PREFIXES = ("gb", "big5", "cp93", "cp94", "cp95", "euc_", "shift_jis", "hz", "johab")
# Marks Spanish, French and German text carries besides letters.
_WESTERN_PUNCTUATION = frozenset("¡¿«»‹›°ºª§€£–—‘’‚“”„…•·\xa0")


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves five bytes undefined; Latin-1 maps them to C1 controls instead of failing.
    assert isinstance(error, UnicodeDecodeError)
    chunk = error.object[error.start : error.end]
    return bytes(chunk).decode("latin-1"), error.end


codecs.register_error("helpdesk-latin1", _latin1_fallback)


def resolve_charset(label: str | bytes | None) -> str | None:
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


def decode_bytes(data: bytes, label: str | bytes | None = None, hints: Iterable[str] = ()) -> str:
    """Decode text bytes: UTF-8, the declared charset, hints, then windows-1252 unless CJK.

    Statistical detection is asked last and only where the bytes do not look like Western text:
    on a long mostly-ASCII mail it calls Spanish or German Central European, Baltic or Greek.
    """
    if not data:
        return ""
    codec = resolve_charset(label)
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
    # Latin labels are often slapped on UTF-8, and 8-bit text that decodes as UTF-8 almost
    # always is UTF-8. Short GBK or Big5 text (a two-character name) can be valid UTF-8 by
    # chance, though, so a CJK label is trusted first.
    declared = [codec, "utf-8"] if codec and _is_cjk(codec) else ["utf-8", codec]
    for candidate in declared:
        if candidate == "windows-1252":
            return data.decode("cp1252", errors="helpdesk-latin1")
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                continue
    # One bad byte must not hand mostly valid text to a codec that reads any byte pair as a
    # character: GB18030 turns UTF-8 "Größe" into Chinese. UTF-8 checks itself, so a few valid
    # sequences are proof; the declared codec has to read nearly every character.
    for candidate, good_per_error in (("utf-8", 2), (codec, 20)):
        text = _mostly_decoded(data, candidate, good_per_error) if candidate else None
        if text is not None:
            return text
    resolved_hints: list[str | None] = []
    for hint in [codec, *hints]:
        resolved = resolve_charset(hint)
        resolved_hints.append(resolved)
        if resolved and resolved.startswith("iso2022_jp"):
            # 8-bit bytes in a mail that claims ISO-2022-JP are Shift_JIS in practice.
            resolved_hints += ["cp932", "euc_jp"]
    tried = set(declared)
    for hint in resolved_hints:
        if hint and hint not in tried and hint not in _LATIN_LABELS:
            tried.add(hint)
            try:
                return data.decode(hint)
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
    elif _plausible_latin(latin) and _mostly_isolated_high_bytes(data):
        # Accented letters between ASCII ones: Western text. CJK text has runs of 8-bit bytes.
        return latin
    detected = _detect(data)
    return detected if detected is not None else latin


def _is_cjk(codec: str) -> bool:
    return codec.startswith(_CJK_CODEC_PREFIXES)


def _mostly_decoded(data: bytes, codec: str, good_per_error: int) -> str | None:
    try:
        text = data.decode(codec, errors="replace")
    except LookupError:
        return None
    errors = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return text if non_ascii - errors >= good_per_error * errors else None


_HIGH_BYTE_RUN = re.compile(rb"[\x80-\xff]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _mostly_isolated_high_bytes(data: bytes) -> bool:
    runs = [len(run) for run in _HIGH_BYTE_RUN.findall(data)]
    return 2 * runs.count(1) >= sum(runs)


def _plausible_latin(text: str) -> bool:
    high = _NON_ASCII.findall(text)
    letters = sum(1 for char in high if char.isalpha() or char in _WESTERN_PUNCTUATION)
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
    codec = resolve_charset(best.encoding) or best.encoding
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None
