"""Parsing inbound mail: every real-world message in the corpus, plus the cases customers send."""

from __future__ import annotations

import base64
import binascii
import contextlib
import random
from datetime import datetime

import pytest

from channels_in.base import AdapterError
from channels_in.mail import html_to_text, parse_mail, sanitise_html
from tests.corpus import CorpusMail, collapse, corpus_mails, first_line

MAILS = corpus_mails()


def _mail(headers: str, body: bytes, *, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        "From: Li Wei <li.wei@example.cn>\r\n"
        "To: support@shop.example\r\n"
        "Date: Sun, 01 Nov 2026 10:00:00 +0800\r\n"
        "Message-ID: <m1@example.cn>\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n"
    )
    return (head + headers).encode("ascii") + b"\r\n" + body


# -- the corpus ----------------------------------------------------------------------------------


def test_corpus_is_present_and_complete() -> None:
    assert len(MAILS) >= 100, "corpus missing: set HELPDESK_CORPUS_DIR"
    assert sum(mail.expected is not None for mail in MAILS) == len(MAILS)


@pytest.mark.parametrize("mail", MAILS, ids=[mail.id for mail in MAILS])
def test_it_parses_corpus_mail_as_expected(mail: CorpusMail) -> None:
    expected = mail.expected
    if expected is not None and expected.rejected:
        with pytest.raises(AdapterError) as caught:
            parse_mail(mail.raw)
        assert caught.value.permanent
        return

    message = parse_mail(mail.raw)

    assert message.channel == "email"
    assert message.external_id
    assert message.sent_at is None or message.sent_at.tzinfo is not None
    assert "\ufffd" not in message.subject
    if expected is None:
        return
    if expected.from_email is not None:
        assert message.sender_value == expected.from_email.lower()
    if expected.subject is not None:
        assert message.subject == collapse(expected.subject)
    if expected.subject_prefix is not None:
        assert message.subject.startswith(expected.subject_prefix)
    if expected.first_body_line is not None:
        assert first_line(message.text) == expected.first_body_line
    if expected.body_contains is not None:
        assert collapse(expected.body_contains) in collapse(message.full_text)
    if expected.text_excludes is not None:
        assert expected.text_excludes not in message.text
        assert expected.text_excludes in message.full_text
    if expected.html_contains is not None:
        assert expected.html_contains in message.html
    if expected.automated is not None:
        assert message.automated is expected.automated, message.automated_reason


def test_corpus_bounces_are_recognised_as_automated() -> None:
    bounces = {"zammad/mail053.box", "zammad/mail055.box", "zammad/mail063.box"}
    for mail in MAILS:
        if mail.id in bounces:
            message = parse_mail(mail.raw)
            assert message.automated, mail.id
            assert message.subject == "Undelivered Mail Returned to Sender"
            assert any(a.content_type == "message/delivery-status" for a in message.attachments)


def test_corpus_never_raises_anything_but_adapter_error_on_truncated_mail() -> None:
    rng = random.Random(2026)
    for mail in MAILS:
        for cut in {0, 1, len(mail.raw) // 3, len(mail.raw) // 2, len(mail.raw) - 7}:
            chunk = mail.raw[: max(cut, 0)]
            garbled = bytearray(chunk)
            for _ in range(min(20, len(garbled))):
                garbled[rng.randrange(len(garbled))] = rng.randrange(256)
            for payload in (chunk, bytes(garbled)):
                # Anything but AdapterError escapes and fails the test.
                with contextlib.suppress(AdapterError):
                    parse_mail(payload)


def test_pgp_signed_mail_keeps_signed_text_and_signature_as_attachment() -> None:
    mail = next(m for m in MAILS if m.id == "django-helpdesk/pgp.eml")
    message = parse_mail(mail.raw)
    assert first_line(message.text) == "hi, thanks for looking into this :)"
    assert [a.filename for a in message.attachments] == ["signature.asc"]


def test_forwarded_bounce_keeps_the_original_as_eml() -> None:
    mail = next(m for m in MAILS if m.id == "zammad/mail063.box")
    message = parse_mail(mail.raw)
    assert "hello 123 äöüß.eml" in [a.filename for a in message.attachments]


def test_uuencoded_corpus_report_becomes_an_attachment() -> None:
    mail = next(m for m in MAILS if m.id == "zammad/mail025.box")
    (report,) = parse_mail(mail.raw).attachments
    assert report.filename == "rulesets-report.csv"
    assert report.content.startswith(b"RULESET_ID;NAME;")


def test_rfc2231_filename_is_decoded() -> None:
    mail = next(m for m in MAILS if m.id == "zammad/mail081.box")
    message = parse_mail(mail.raw)
    assert [a.filename for a in message.attachments] == ["Erklärung.txt"]


def test_raw_8bit_latin1_filename_is_decoded_not_mojibake() -> None:
    mail = next(m for m in MAILS if m.id == "zammad/mail073.box")
    names = [a.filename for a in parse_mail(mail.raw).attachments]
    # Zammad's yml shows "Forex Platte ohne W\ufffdlbung.jpg" for this raw ISO-8859-1 name.
    assert "Forex Platte ohne Wölbung.jpg" in names


# -- charsets ------------------------------------------------------------------------------------


def test_gb2312_label_on_gbk_bytes_decodes_every_character() -> None:
    text = "朱镕基来信：昇腾订单何时发货？"  # 镕 and 昇 are GBK, not GB2312
    raw = _mail("Subject: test\r\n", text.encode("gbk"), content_type="text/plain; charset=gb2312")
    with pytest.raises(UnicodeDecodeError):
        text.encode("gbk").decode("gb2312")  # what a naive parser would meet
    message = parse_mail(raw)
    assert message.full_text == text
    assert "\ufffd" not in message.text


def test_raw_8bit_gbk_subject_header_is_decoded() -> None:
    subject = "退款申请：订单号 20261101"
    raw = (
        b"From: =?gb2312?B?wO7OsA==?= <li.wei@example.cn>\r\n"
        b"Subject: " + subject.encode("gbk") + b"\r\n"
        b"Date: Sun, 01 Nov 2026 10:00:00 +0800\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\n\r\n" + "你好".encode("gbk")
    )
    message = parse_mail(raw)
    assert message.subject == subject
    assert message.sender_name == "李伟"
    assert message.sender_value == "li.wei@example.cn"


def test_raw_8bit_gbk_subject_without_any_declared_charset() -> None:
    raw = b"From: li.wei@example.cn\r\nSubject: " + "机房环境法规".encode("gbk") + b"\r\n\r\nhi"
    assert parse_mail(raw).subject == "机房环境法规"


def test_encoded_words_split_inside_a_multibyte_character_are_joined() -> None:
    data = "订单问题".encode()  # 12 bytes, split mid-character at byte 4
    first = base64.b64encode(data[:4]).decode()
    second = base64.b64encode(data[4:]).decode()
    raw = _mail(f"Subject: =?utf-8?B?{first}?=\r\n =?utf-8?B?{second}?=\r\n", b"x")
    assert parse_mail(raw).subject == "订单问题"


def test_big5_body_is_decoded() -> None:
    text = "您好，請問我的包裹何時寄出？"
    raw = _mail(
        "Subject: =?big5?B?" + base64.b64encode("查詢".encode("big5")).decode() + "?=\r\n",
        text.encode("big5"),
        content_type="text/plain; charset=big5",
    )
    message = parse_mail(raw)
    assert message.full_text == text
    assert message.subject == "查詢"


def test_iso_2022_jp_mail_is_decoded() -> None:
    body = "注文の件でご連絡します。"
    subject = base64.b64encode("ご注文".encode("iso2022_jp")).decode()
    raw = _mail(
        f"Subject: =?ISO-2022-JP?B?{subject}?=\r\n",
        body.encode("iso2022_jp"),
        content_type="text/plain; charset=ISO-2022-JP",
    )
    message = parse_mail(raw)
    assert message.subject == "ご注文"
    assert message.full_text == body


def test_utf7_body_is_decoded() -> None:
    text = "Grüße, 你好"
    raw = _mail("Subject: utf7\r\n", text.encode("utf-7"), content_type="text/plain; charset=utf-7")
    assert parse_mail(raw).full_text == text


def test_latin1_label_on_utf8_bytes_is_read_as_utf8() -> None:
    raw = _mail("Subject: x\r\n", "Grüße".encode(), content_type="text/plain; charset=iso-8859-1")
    assert parse_mail(raw).full_text == "Grüße"


def test_unknown_charset_label_falls_back_without_losing_text() -> None:
    raw = _mail(
        "Subject: x\r\n", "Zürich".encode("latin-1"), content_type="text/plain; charset=x-made-up"
    )
    assert parse_mail(raw).full_text == "Zürich"


# -- structure -----------------------------------------------------------------------------------


def test_html_only_mail_is_sanitised_and_rendered_as_text() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<p>Hello&nbsp;agent,</p><script>alert('x')</script>"
        '<p>My order<br>is late. <a href="https://shop.example/o/1">order</a></p>'
        '<img src="https://tracker.example/pixel.gif">'
        '<img src="cid:photo1@example.cn" alt="photo">'
        '<a href="javascript:alert(1)">bad</a></body></html>'
    )
    raw = _mail("Subject: html\r\n", html.encode(), content_type="text/html; charset=utf-8")
    message = parse_mail(raw)
    assert "<script" not in message.html and "alert('x')" not in message.html
    assert "tracker.example" not in message.html
    assert 'src="cid:photo1@example.cn"' in message.html
    assert 'rel="noopener noreferrer nofollow"' in message.html
    assert "javascript:" not in message.html
    assert message.full_text.splitlines()[:4] == ["Hello agent,", "", "My order", "is late. order"]
    assert "alert" not in message.full_text and "color:red" not in message.full_text


def test_html_to_text_and_sanitise_html_are_usable_alone() -> None:
    assert html_to_text("<div>a</div><div>b &amp; c</div>") == "a\nb & c"
    assert sanitise_html(
        '<img src="data:image/png;base64,AAAA"><a href="data:text/html,x">x</a>'
    ) == ('<img src="data:image/png;base64,AAAA"><a rel="noopener noreferrer nofollow">x</a>')


def test_plain_text_is_preferred_over_html_in_alternative() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain version\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html version</p>\r\n--b--\r\n"
    )
    message = parse_mail(
        _mail("Subject: alt\r\n", body, content_type='multipart/alternative; boundary="b"')
    )
    assert message.full_text == "plain version"
    assert message.html == "<p>html version</p>"


def test_inline_image_and_attachments_are_collected() -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    body = (
        b'--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>see <img src="cid:img1"></p>\r\n'
        b"--r\r\nContent-Type: application/octet-stream\r\nContent-ID: <img1>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(png) + b"\r\n"
        b"--r\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''%E5%8F%91%E7%A5%A8.pdf\r\n\r\n%PDF-1.4\r\n"
        b"--r--\r\n"
    )
    message = parse_mail(
        _mail("Subject: img\r\n", body, content_type='multipart/related; boundary="r"')
    )
    image, pdf = message.attachments
    assert (image.content_id, image.inline, image.content_type) == ("img1", True, "image/png")
    assert image.filename == "attachment-1.bin"
    assert (pdf.filename, pdf.content_type, pdf.inline) == ("发票.pdf", "application/pdf", False)


def test_oversized_attachment_is_skipped_and_listed() -> None:
    body = (
        b"--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--m\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=big.zip\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\0" * 3000)
        + b"--m--\r\n"
    )
    message = parse_mail(
        _mail("Subject: big\r\n", body, content_type='multipart/mixed; boundary="m"'),
        max_attachment_bytes=1000,
    )
    assert message.attachments == []
    assert message.metadata["skipped_attachments"] == [
        {"filename": "big.zip", "size": 3000, "content_type": "application/zip"}
    ]
    assert message.text == "see attached"


def test_forwarded_message_without_own_text_uses_the_forwarded_text() -> None:
    inner = b"From: a@b.example\r\nSubject: Broken kettle\r\n\r\nThe kettle leaks.\r\n"
    body = b"--f\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--f--\r\n"
    message = parse_mail(
        _mail("Subject: Fwd\r\n", body, content_type='multipart/mixed; boundary="f"')
    )
    assert message.full_text == "The kettle leaks."
    assert [a.filename for a in message.attachments] == ["Broken kettle.eml"]
    assert b"The kettle leaks." in message.attachments[0].content


def test_missing_boundary_keeps_the_payload_as_text() -> None:
    raw = _mail(
        "Subject: x\r\n",
        b"Please call me back.\r\n",
        content_type='multipart/mixed; boundary="nope"',
    )
    assert parse_mail(raw).text == "Please call me back."


def test_uuencoded_block_becomes_an_attachment() -> None:
    line = binascii.b2a_uu(b"order,qty\n1,2\n").decode()
    body = f"Report attached.\n\nbegin 644 report.csv\n{line}`\nend\n".encode()
    message = parse_mail(_mail("Subject: uu\r\n", body))
    assert message.text == "Report attached."
    assert [(a.filename, a.content) for a in message.attachments] == [
        ("report.csv", b"order,qty\n1,2\n")
    ]


def test_base64_with_bad_padding_is_decoded() -> None:
    encoded = base64.b64encode("退货地址".encode()).rstrip(b"=")
    raw = _mail("Content-Transfer-Encoding: base64\r\nSubject: b64\r\n", encoded)
    assert parse_mail(raw).full_text == "退货地址"


# -- identity, threading, dates ------------------------------------------------------------------


def test_threading_ids_and_metadata() -> None:
    raw = _mail(
        "Subject: Re: order\r\nIn-Reply-To: <c@x>\r\nReferences: <a@x> <b@x>\r\n\t<c@x>\r\n"
        'Cc: "Wang" <Wang@Example.cn>\r\n',
        b"ok",
    )
    message = parse_mail(raw)
    assert message.external_id == "m1@example.cn"
    assert message.reply_to_ids == ["c@x", "b@x", "a@x"]
    assert message.recipients == ["support@shop.example", "wang@example.cn"]
    assert message.sent_at == datetime.fromisoformat("2026-11-01T10:00:00+08:00")
    assert message.sender_name == "Li Wei"


def test_mail_without_message_id_gets_a_content_hash() -> None:
    raw = b"From: a@b.example\r\nSubject: hi\r\nDate: not a date\r\n\r\nbody"
    message = parse_mail(raw)
    assert message.external_id.startswith("sha256:") and len(message.external_id) == 71
    assert message.sent_at is None


def test_garbled_from_header_falls_back_to_reply_to() -> None:
    raw = b'From: "\xce\xd2" <>\r\nReply-To: Vip@126.com\r\nSubject: x\r\n\r\nbody'
    assert parse_mail(raw).sender_value == "vip@126.com"


# -- trimming ------------------------------------------------------------------------------------


def test_chinese_quote_is_trimmed_but_kept_in_full_text() -> None:
    body = (
        "好的，谢谢！\n\n在 2026年11月1日 星期日 10:00，客服 <support@shop.example> 写道：\n"
        "> 您的订单已发货。\n"
    ).encode()
    message = parse_mail(_mail("Subject: Re\r\n", body))
    assert message.text == "好的，谢谢！"
    assert "您的订单已发货" in message.full_text


def test_english_quote_split_over_two_lines_is_trimmed() -> None:
    body = (
        b"Thanks, that works.\n\n-- \nLi Wei\n\nOn Sun, Nov 1, 2026 at 10:00 AM Support\n"
        b"<support@shop.example> wrote:\n> Try restarting.\n"
    )
    message = parse_mail(_mail("Subject: Re\r\n", body))
    assert message.text == "Thanks, that works."
    assert "Try restarting." in message.full_text


@pytest.mark.parametrize(
    "history",
    [
        "On Sun, 1 Nov 2026 at 10:00, Support <s@x> wrote:\n> old",
        "Am 01.11.2026 um 10:00 schrieb Support <s@x>:\n> alt",
        "Le dim. 1 nov. 2026 à 10:00, Support <s@x> a écrit :\n> vieux",
        "在 2026年11月1日 10:00，客服 写道：\n> 旧",
        "於 2026年11月1日 10:00，客服 寫道：\n> 舊",
        "-----Original Message-----\nFrom: Support\nSent: Sunday\n\nold",
        "------------------ 原始邮件 ------------------\n发件人: 客服\n发送时间: 2026年11月1日\n旧",
        "-----原始邮件-----\n发件人: 客服\n旧",
        "________________________________\nFrom: Support <s@x>\nSent: Sunday\nold",
        "发件人: 客服 <s@x>\n发送时间: 2026年11月1日 10:00\n收件人: 我\n主题: 订单\n旧",
        "From: Support <s@x>\nSent: Sunday, November 1, 2026\nTo: me\nold",
        "Sent from my iPhone",
        "发自我的iPhone",
        "-- \nLi Wei, Shop Owner",
        "> old quoted\n> lines",
    ],
)
def test_quoted_history_markers_are_trimmed(history: str) -> None:
    message = parse_mail(_mail("Subject: Re\r\n", f"New reply here.\n\n{history}\n".encode()))
    assert message.text == "New reply here."
    assert history.splitlines()[-1] in message.full_text


def test_trimming_never_leaves_nothing() -> None:
    body = b"On Sun, 1 Nov 2026, Support <s@x> wrote:\n> only a quote\n"
    message = parse_mail(_mail("Subject: Re\r\n", body))
    assert message.text == message.full_text == body.decode().strip()


# -- refusing non-mail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"   \r\n",
        b"hello world",
        b'{"event": "message", "From": "x@y"}',
        b"\x00\xff\x10garbage",
    ],
    ids=["empty", "blank", "prose", "json", "binary"],
)
def test_non_mail_payload_is_refused_permanently(payload: bytes) -> None:
    with pytest.raises(AdapterError) as caught:
        parse_mail(payload)
    assert caught.value.permanent


# -- automated mail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason_part"),
    [
        ("Auto-Submitted: auto-replied\r\n", "auto-submitted"),
        ("X-Autoreply: yes\r\n", "x-autoreply"),
        ("X-Autorespond: yes\r\n", "x-autorespond"),
        ("X-Auto-Response-Suppress: OOF, AutoReply\r\n", "x-auto-response-suppress"),
        ("Precedence: bulk\r\n", "precedence"),
        ("List-Id: <news.shop.example>\r\n", "mailing list"),
        ("List-Unsubscribe: <mailto:u@x>\r\n", "mailing list"),
        ("Return-Path: <>\r\n", "null sender"),
        ("X-Failed-Recipients: a@b\r\n", "bounce"),
        ("Subject: Automatic reply: order\r\n", "subject"),
        ("Subject: =?utf-8?B?6Ieq5Yqo5Zue5aSNOiDmgqjlpb0=?=\r\n", "subject"),
        ("Subject: Out of Office\r\n", "subject"),
        ("Subject: Mail delivery failed: returning message\r\n", "subject"),
    ],
)
def test_automated_mail_is_recognised(header: str, reason_part: str) -> None:
    message = parse_mail(_mail(header, b"body"))
    assert message.automated
    assert reason_part in message.automated_reason.lower()


def test_mail_from_mailer_daemon_is_automated() -> None:
    raw = b"From: MAILER-DAEMON@mx.example\r\nSubject: failure\r\n\r\nbounced"
    assert parse_mail(raw).automated_reason == "bounce"


def test_a_customer_mail_is_not_automated() -> None:
    message = parse_mail(_mail("Auto-Submitted: no\r\nSubject: Where is my order?\r\n", b"Hi"))
    assert (message.automated, message.automated_reason) == (False, "")
