"""No inline styles: the Content-Security-Policy allows styles from our own files only, so
customer content that got past the sanitiser cannot restyle a page (a fake "pay here" box)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from channels_in.mail.html import sanitise_html
from tests.conftest import login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_pages_allow_styles_and_scripts_only_from_our_own_files(agent_li):
    for response in (Client().get("/login/"), login(agent_li).get("/tickets/")):
        header = response["Content-Security-Policy"]
        assert "unsafe-inline" not in header
        policy = directives(header)
        assert policy["style-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"]


def template_files() -> list[Path]:
    folders = [Path(folder) for engine in settings.TEMPLATES for folder in engine["DIRS"]]
    folders += [
        app / "templates"
        for app in Path(settings.BASE_DIR).iterdir()
        if (app / "templates").is_dir() and app.name != ".venv"
    ]
    return [file for folder in folders for file in folder.rglob("*.html")]


def test_no_template_of_ours_has_an_inline_style():
    files = template_files()
    assert len(files) > 5
    offenders = [
        f"{file.relative_to(settings.BASE_DIR)}:{number}"
        for file in files
        for number, line in enumerate(file.read_text("utf-8").splitlines(), 1)
        if INLINE_STYLE.search(line)
    ]
    assert not offenders, f"move these styles to static/css: {offenders}"


def test_customer_mail_reaches_the_page_without_inline_styles():
    html = sanitise_html(
        '<style>body{display:none}</style><p style="position:fixed;top:0">Pay here</p>'
        '<font color="red">Red text keeps its colour</font>'
    )
    assert not INLINE_STYLE.search(html)
    assert "Pay here" in html
    assert '<font color="red">' in html  # presentational attributes are not CSS: CSP allows them


def test_the_admins_merchant_switcher_is_styled_from_a_stylesheet(tenant_acme, tenant_globex):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    page = login(operator).get("/admin/").content.decode()
    assert 'class="acting-for"' in page
    assert "css/admin.css" in page
