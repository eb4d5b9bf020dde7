"""Mail that used to trip the parser (issue 12): what an agent sees of each hard case.

The mails live in `hard_mail/`, one file per kind of trouble, written for these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from channels_in import pipeline
from channels_in.base import AdapterError, Envelope
from channels_in.email import delivery_id_of_mail
from channels_in.mail import parse_mail
from channels_in.models import RawInbound
from tickets.models import Ticket

HARD_MAIL = Path(__file__).resolve().parent / "hard_mail"


def hard_mail(name: str) -> bytes:
    return (HARD_MAIL / name).read_bytes()


# -- lines before the header block ---------------------------------------------------------------


def test_forwarding_banner_before_the_headers_is_skipped() -> None:
    message = parse_mail(hard_mail("banner_before_headers.eml"))

    assert (message.sender_value, message.sender_name) == ("ana.garcia@example.es", "Ana Garcia")
    assert message.subject == "Order 1042 has not arrived"
    assert message.text == "Hello, my order 1042 has still not arrived. Can you check?"
    assert (message.attachments, message.automated) == ([], False)


def test_mbox_from_line_before_the_headers_is_skipped() -> None:
    message = parse_mail(hard_mail("mbox_from_line.eml"))

    assert (message.sender_value, message.sender_name) == ("tom.baker@example.co.uk", "Tom Baker")
    assert message.subject == "Refund for the blue kettle"
    assert message.text == "Please refund the blue kettle, it leaks."
    assert (message.attachments, message.automated) == ([], False)


@pytest.mark.parametrize(
    ("name", "message_id"),
    [
        ("banner_before_headers.eml", "banner-1042@example.es"),
        ("mbox_from_line.eml", "mbox-77@example.co.uk"),
    ],
)
def test_endpoint_accepts_lines_before_the_headers_and_keys_on_their_message_id(
    name: str, message_id: str
) -> None:
    raw = hard_mail(name)

    assert delivery_id_of_mail(raw) == message_id
    assert parse_mail(raw).external_id == message_id


@pytest.mark.parametrize(
    "payload",
    [
        b'{"event": "message", "From": "x@y"}',
        b'{\n  "From": "li.wei@example.cn",\n  "Subject": "refund"\n}\n',
        b"hello world, not a mail",
        hard_mail("prose_mentioning_a_header.txt"),
    ],
    ids=["json", "json-on-lines", "prose", "prose-mentioning-a-header"],
)
def test_bytes_without_a_header_block_are_still_refused_by_parser_and_endpoint(
    payload: bytes,
) -> None:
    with pytest.raises(AdapterError) as parsed:
        parse_mail(payload)
    with pytest.raises(AdapterError) as checked:
        delivery_id_of_mail(payload)

    assert parsed.value.permanent and checked.value.permanent
    assert "not an email message" in checked.value.message


# -- the header block itself ---------------------------------------------------------------------


def test_header_wrapped_without_indent_keeps_the_rest_of_the_header_block() -> None:
    raw = hard_mail("unindented_header_continuation.eml")
    message = parse_mail(raw)

    assert (message.sender_value, message.sender_name) == ("jan.novak@example.cz", "Jan Novak")
    assert message.subject == (
        "Complaint about order 2231: the box arrived damaged and the manual is missing"
    )
    assert message.recipients == ["support@shop.example", "sales@shop.example"]
    assert message.text == "The box was crushed. Photo attached."
    assert [a.filename for a in message.attachments] == ["box.png"]
    assert message.automated is False
    assert message.external_id == delivery_id_of_mail(raw) == "wrap-2231@example.cz"


def test_mail_without_a_blank_line_after_its_headers_keeps_its_body_as_text() -> None:
    message = parse_mail(hard_mail("missing_blank_line_after_headers.eml"))

    assert message.subject == "Kettle"
    assert message.text == "The kettle leaks from the bottom.\nPlease send a new one."


def test_first_of_several_from_addresses_is_the_author() -> None:
    message = parse_mail(hard_mail("several_from_addresses.eml"))

    assert (message.sender_value, message.sender_name) == ("li.wei@example.cn", "Li Wei")
    assert message.subject == "Our joint order"
    assert message.text == "We both ordered, please ship together."
    assert (message.attachments, message.automated) == ([], False)


@pytest.mark.parametrize(
    ("name", "address", "display_name"),
    [
        ("display_name_with_comma.eml", "hans.mueller@example.de", "Müller, Hans"),
        ("encoded_display_name_with_comma.eml", "amelie.dubois@example.fr", "Dubois, Amélie"),
    ],
)
def test_display_name_with_a_comma_stays_whole_with_the_right_address(
    name: str, address: str, display_name: str
) -> None:
    message = parse_mail(hard_mail(name))

    assert (message.sender_value, message.sender_name) == (address, display_name)
    assert message.automated is False


# -- parts and attachments -----------------------------------------------------------------------


def test_attachments_named_only_by_content_type_keep_their_names() -> None:
    message = parse_mail(hard_mail("attachment_named_by_content_type.eml"))

    assert message.text == "Invoice and return label attached."
    assert [(a.filename, a.content_type) for a in message.attachments] == [
        ("invoice 2026-11.pdf", "application/pdf"),
        ("return-label.txt", "text/plain"),
        ("damaged lid.png", "image/png"),
    ]


def test_unnamed_text_parts_after_the_body_are_kept_as_attachments() -> None:
    message = parse_mail(hard_mail("unnamed_extra_text_parts.eml"))

    assert message.text == "The app crashes at checkout. The log and the page are below."
    assert message.html == ""
    log, page = message.attachments
    assert (log.filename, log.content) == (
        "part-2.txt",
        b"2026-11-05 09:00:01 ERROR checkout failed: timeout",
    )
    assert page.filename == "part-3.html"
    assert b"<p>Checkout page</p>" in page.content


def test_text_on_both_sides_of_an_inline_image_stays_the_body() -> None:
    message = parse_mail(hard_mail("text_around_inline_image.eml"))

    assert message.text == "The lid has a scratch here:\n\nand the hinge is loose."
    assert [a.filename for a in message.attachments] == ["lid.png"]


# -- charsets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "utf8_with_one_bad_byte.eml",
            "Hallo, die Größe der Jacke passt nicht. \ufffdBitte tauschen Sie sie um, "
            "Bestellung 订单 2231. Danke, Li Wei",
        ),
        (
            "utf8_with_one_bad_byte_unlabelled.eml",
            "Dobrý den, objednávka č. 2231 ještě nedorazila. \ufffd Děkuji, Jan Novák",
        ),
    ],
    ids=["labelled-utf-8", "unlabelled"],
)
def test_utf8_with_one_bad_byte_reads_as_utf8_with_one_replacement_character(
    name: str, text: str
) -> None:
    message = parse_mail(hard_mail(name))

    assert message.text == text
    assert message.automated is False


SPANISH = (
    "Estimados señores:\n\nQuisiera saber cuando llegara mi pedido numero 1042. Lo hice el 3 de "
    "octubre y el seguimiento no se actualiza desde hace diez dias. Si no llega esta semana, les "
    "pido que me devuelvan el importe completo a la misma tarjeta.\n\nUn saludo cordial,\n"
    "José Muñoz Ibáñez\nCalle Mayor 12, Logroño"
)
GERMAN = (
    "bitte stornieren Sie meine Bestellung 4711.\nDie Jacke ist zu klein.\nDer Preis wurde "
    "falsch berechnet.\nIch schicke die Ware heute zurück.\nBitte senden Sie die Gutschrift an "
    "Herrn Müller.\nDie Lieferung kam erst nach zwei Wochen an.\nIch warte auf Ihre Antwort."
)
FRENCH = (
    "Bonjour,\n\nJ'ai bien recu le colis aujourd'hui, mais la theiere est cassee. Je vous joins "
    "une photo du carton. Pourriez-vous m'envoyer une nouvelle theiere ou me rembourser la "
    "commande 3318 ? C'etait un cadeau, alors une reponse rapide serait vraiment appreciee.\n\n"
    "Merci et bonne journée,\nHélène à Besançon"
)
CZECH = (
    "Dobrý den, objednávka č. 2231 ještě nedorazila, přestože jsem ji zaplatil před třemi týdny. "
    "Sledování zásilky ukazuje, že balík je stále ve skladu. Prosím o vrácení peněz nebo o "
    "okamžité odeslání.\n\nDěkuji, Jiří Dvořák, Žďár nad Sázavou"
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("spanish_unlabelled_cp1252.eml", SPANISH),
        ("german_unlabelled_latin1.eml", GERMAN),
        ("french_latin1_labelled_utf8.eml", FRENCH),
        ("czech_utf8_labelled_iso_8859_2.eml", CZECH),
    ],
)
def test_unlabelled_or_mislabelled_western_text_reads_as_written(name: str, text: str) -> None:
    # Statistical detection called these Central European or Baltic ("seńores", "M³ller").
    assert parse_mail(hard_mail(name)).full_text == text


@pytest.mark.parametrize("name", ["czech_windows_1250.eml", "czech_iso_8859_2.eml"])
def test_czech_labelled_with_its_charset_reads_as_written(name: str) -> None:
    assert parse_mail(hard_mail(name)).full_text == CZECH


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        (
            "您好，我的订单已经付款三个星期了，还没有收到货。物流信息一直没有更新，请帮我查一下。"
            * 4,
            "gbk",
        ),
        (
            "您好，我的訂單已經付款三個星期了，還沒有收到貨。物流資訊一直沒有更新，請幫我查一下。"
            * 4,
            "big5",
        ),
    ],
    ids=["gbk", "big5"],
)
def test_unlabelled_chinese_is_still_detected(text: str, codec: str) -> None:
    raw = b"From: li.wei@example.cn\r\nSubject: x\r\n\r\n" + text.encode(codec)
    assert parse_mail(raw).full_text == text


# -- who sent it ---------------------------------------------------------------------------------


def test_trailing_dot_is_dropped_from_addresses() -> None:
    message = parse_mail(hard_mail("address_with_trailing_dot.eml"))

    assert (message.sender_value, message.sender_name) == ("ana.garcia@example.com", "Ana Garcia")
    assert message.recipients == ["support@shop.example"]


def test_sender_without_a_domain_is_automated_and_kept_as_written() -> None:
    message = parse_mail(hard_mail("sender_without_domain.eml"))

    assert (message.sender_value, message.sender_name) == ("root", "Cron Daemon")
    assert message.subject == "Cron <root@backup1> /usr/local/bin/nightly-backup"
    assert message.text == "backup finished: 0 errors"
    assert message.automated is True
    assert message.automated_reason == "sender has no domain (a local system account)"


@pytest.mark.parametrize(
    ("name", "sender"),
    [("null_return_path.eml", "notify@shop-partner.example"), ("null_from.eml", "")],
)
def test_null_sender_is_automated(name: str, sender: str) -> None:
    message = parse_mail(hard_mail(name))

    assert message.sender_value == sender
    assert message.automated is True
    assert message.automated_reason == "null sender (bounce or notification)"


@pytest.mark.parametrize(
    ("name", "sender", "display_name"),
    [
        ("sender_from_reply_to.eml", "li.wei@example.cn", "Li Wei (home)"),
        ("sender_from_sender_header.eml", "wang.fang@example.cn", "Wang Fang"),
        ("sender_from_return_path.eml", "li.wei@example.cn", ""),
    ],
    ids=["reply-to-before-sender", "sender-before-return-path", "return-path"],
)
def test_sender_without_a_usable_from_comes_from_reply_to_then_sender_then_return_path(
    name: str, sender: str, display_name: str
) -> None:
    message = parse_mail(hard_mail(name))

    assert (message.sender_value, message.sender_name) == (sender, display_name)
    assert message.automated is False


def test_mail_with_no_sender_anywhere_has_an_empty_sender_and_is_not_automated() -> None:
    message = parse_mail(hard_mail("no_sender_at_all.eml"))

    assert (message.sender_value, message.sender_name) == ("", "")
    assert message.subject == "Broken kettle"
    assert message.text == "The kettle leaks."
    assert (message.automated, message.automated_reason) == (False, "")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["sender_without_domain.eml", "null_from.eml"])
def test_mail_from_a_machine_is_stored_as_ignored_and_opens_no_ticket(
    name: str, acme_email, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        raw, created = pipeline.receive(
            account=acme_email, envelope=Envelope.of(hard_mail(name)), source="webhook"
        )
    raw.refresh_from_db()

    assert created and raw.state == RawInbound.State.IGNORED
    assert Ticket.objects.count() == 0
