"""Small mails written for tests (the corpus holds the real-world ones)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.utils import timezone


def customer_mail(
    *,
    sender: str = "李伟 <li.wei@example.cn>",
    to: str = "support@acme.example",
    subject: str = "吸油烟机噪音很大",
    body: str = "你好，我的吸油烟机安装后噪音很大。",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
    date: datetime | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or timezone.now())
    message["Message-ID"] = message_id or make_msgid(domain="example.cn")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, charset=charset)
    return message.as_bytes()
