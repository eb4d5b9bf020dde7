"""HTML mail is shown formatted, with its inline images, and without anything that could run."""

from __future__ import annotations

import base64
import html
from email.message import EmailMessage

import pytest

from channels_in import pipeline
from channels_in.base import Envelope
from tests.conftest import login
from tickets.models import Attachment, Ticket

pytestmark = pytest.mark.django_db

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def html_mail_with_inline_image() -> bytes:
    message = EmailMessage()
    message["From"] = "王芳 <wangfang@example.cn>"
    message["To"] = "support@acme.example"
    message["Subject"] = "产品照片"
    message["Message-ID"] = "<photo@example.cn>"
    message.set_content("请看照片")
    message.add_alternative(
        '<p>请看<b>照片</b></p><img src="cid:photo1@example.cn">'
        '<script>alert(1)</script><img src="https://tracker.example/pixel.gif">',
        subtype="html",
    )
    message.get_payload()[1].add_related(PNG, "image", "png", cid="<photo1@example.cn>")
    return message.as_bytes()


def test_html_mail_shows_formatted_with_its_inline_image_and_no_script(
    acme_email, agent_li, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.receive(
            account=acme_email,
            envelope=Envelope.of(html_mail_with_inline_image()),
            source="webhook",
        )
    ticket = Ticket.objects.get()
    image = Attachment.objects.get(content_id="photo1@example.cn")
    assert image.content_type == "image/png" and image.inline
    assert image.file.name.startswith(f"attachments/{ticket.tenant_id}/")

    client = login(agent_li)
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    assert 'sandbox="allow-same-origin"' in page
    srcdoc = html.unescape(page.split('srcdoc="', 1)[1].split('"></iframe>', 1)[0])
    assert "<b>照片</b>" in srcdoc
    assert f'src="/tickets/attachments/{image.pk}/?inline=1"' in srcdoc
    assert "<script" not in srcdoc and "tracker.example" not in srcdoc

    served = client.get(f"/tickets/attachments/{image.pk}/?inline=1")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content) == PNG


def test_an_attachment_over_the_merchants_limit_is_not_kept_but_the_agent_is_told(
    acme_email, agent_li, tenant_acme, django_capture_on_commit_callbacks
):
    tenant_acme.max_attachment_bytes = 1024
    tenant_acme.save()
    message = EmailMessage()
    message["From"] = "李伟 <li.wei@example.cn>"
    message["To"] = "support@acme.example"
    message["Subject"] = "发票和视频"
    message.set_content("见附件")
    message.add_attachment(
        b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="发票.pdf"
    )
    message.add_attachment(b"\x00" * 5000, maintype="video", subtype="mp4", filename="unboxing.mp4")
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.receive(
            account=acme_email, envelope=Envelope.of(message.as_bytes()), source="webhook"
        )
    assert list(Attachment.objects.values_list("filename", flat=True)) == ["发票.pdf"]
    page = login(agent_li).get(f"/tickets/{Ticket.objects.get().number}/").content.decode()
    assert "unboxing.mp4 (4.9\xa0KB)" in page
    assert "attachment limit" in page
