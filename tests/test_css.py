"""The stylesheet every page loads shows Chinese in a proper CJK face on macOS, Windows and Linux."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.staticfiles import finders

# Where no listed face is installed the browser falls back to whatever it finds, often a bitmap
# or a Japanese face with the wrong glyph shapes for Simplified Chinese.
CJK_FACES = [
    "PingFang SC",  # macOS, iOS
    "Microsoft YaHei",  # Windows
    "Noto Sans CJK SC",  # Debian, Ubuntu, Fedora (fonts-noto-cjk)
    "Source Han Sans SC",  # the same design under Adobe's name (Arch, some distributions)
    "WenQuanYi Micro Hei",  # older Linux desktops
]


def body_font_families() -> list[str]:
    """The font families of the `body` rule, in order, without quotes."""
    path = finders.find("css/helpdesk.css")
    assert path, "css/helpdesk.css is not among the static files"
    css = re.sub(r"/\*.*?\*/", "", Path(path).read_text("utf-8"), flags=re.S)
    body = re.search(r"(?:^|\})\s*body\s*\{([^}]*)\}", css)
    assert body, "no body rule"
    declaration = re.search(r"\bfont(-family)?\s*:\s*([^;]+)", body.group(1))
    assert declaration, "the body rule sets no font"
    families = declaration.group(2)
    if declaration.group(1) is None:
        # The `font` shorthand puts style, weight and size/line-height before the families.
        families = re.sub(r"^(?:\S+\s+)*?\d[\w.%]*(?:/[\w.%]+)?\s+", "", families.strip())
    return [family.strip().strip("\"'") for family in families.split(",")]


def test_the_font_stack_names_common_cjk_faces_of_every_platform() -> None:
    families = body_font_families()
    missing = [face for face in CJK_FACES if face not in families]
    assert not missing, f"{missing} missing from {families}"
    assert families[-1] == "sans-serif"
