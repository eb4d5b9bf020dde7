"""Trimming quoted history, signatures and mobile footers off a reply (trim_quoted)."""

from __future__ import annotations

import re

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
