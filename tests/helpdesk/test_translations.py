"""The Chinese interface is complete, and the compiled catalog matches its source."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

LOCALE = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES"


def source_entries() -> dict[str, str]:
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    assert "#, fuzzy" not in text.split("\n\n", 1)[1], "fuzzy translations are not shown"
    pairs = re.findall(r'^msgid "(.+)"\nmsgstr "(.*)"$', text, flags=re.MULTILINE)
    return dict(pairs)


def test_every_string_has_a_chinese_translation():
    entries = source_entries()
    assert len(entries) > 80
    assert [msgid for msgid, msgstr in entries.items() if not msgstr] == []


def test_the_compiled_catalog_is_up_to_date_with_the_source():
    with (LOCALE / "django.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)
    stale = [
        msgid
        for msgid, msgstr in source_entries().items()
        if "\\" not in msgid and catalog.gettext(msgid) != msgstr
    ]
    assert stale == [], "run: manage.py compilemessages -l zh_Hans"
