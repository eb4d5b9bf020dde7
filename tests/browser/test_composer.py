"""In a real browser: an agent replies with a file (larger than an ordinary form may be) and
sees it listed under their reply."""

from __future__ import annotations

import os

import pytest

from helpdesk import tenancy
from tests.browser.test_drafts import mailed_ticket, sign_in_on_ticket  # noqa: F401
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tickets.models import Message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

# Past Django's 2.5 MB for ordinary forms, within the merchant's 20 MB attachment limit.
MANUAL = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)


@pytest.fixture(autouse=True)
def _plain_cookies_and_media(
    settings,
    tmp_path,
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path)


def test_an_agent_replies_with_a_file_and_sees_it_under_the_reply(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    acme_email,
    mailed_ticket,  # noqa: F811
    tenant_acme,
):
    page = browser_page
    sign_in_on_ticket(page, live_asgi_server, "li.acme", mailed_ticket)
    page.locator("form.reply textarea[name=text]").fill("您好，安装说明书见附件。")
    page.locator("form.reply input[name=attachments]").set_input_files(
        [{"name": "安装说明书.pdf", "mimeType": "application/pdf", "buffer": MANUAL}]
    )
    # Not wait_for_url(...?sent=reply): drafts.js takes the marker off the address once read.
    with page.expect_navigation(timeout=60_000):
        page.locator("form.reply button[type=submit]").click()

    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
        attachment = reply.attachments.get()
    assert (attachment.filename, attachment.size) == ("安装说明书.pdf", len(MANUAL))
    listed = page.locator(f"#m{reply.pk} ul.attachments li")
    assert listed.count() == 1
    assert "安装说明书.pdf" in listed.inner_text()
    assert "application/pdf" in listed.inner_text()
    link = listed.locator("a")
    assert link.get_attribute("href") == f"/tickets/attachments/{attachment.pk}/"
