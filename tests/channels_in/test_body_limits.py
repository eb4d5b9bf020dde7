"""Body limits: mail up to HELPDESK_INBOUND_MAX_BYTES on the inbound endpoint only; every other
page keeps Django's small limit and answers an oversized form with 400, not a crash."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.conftest import login

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def url(account) -> str:
    return f"/inbound/{account.tenant.slug}/email/{account.pk}/"


def big_mail(size: int) -> bytes:
    """A real mail of about ``size`` bytes: a text body of many lines (as a long mail is)."""
    line = "A long mail with much in it, line after line of it.\n"
    body = line * (size // len(line) + 1)
    return customer_mail(body=body, message_id="<big@example.cn>")


def test_a_30_mb_mail_is_accepted_by_the_inbound_endpoint(acme_email):
    mail = big_mail(30 * MB)
    assert 30 * MB < len(mail) < 31 * MB
    response = Client().post(
        url(acme_email),
        mail,
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202, response.content
    with tenancy.activate(acme_email.tenant):
        assert len(bytes(RawInbound.objects.get().payload)) == len(mail)


def test_a_30_mb_mail_posted_as_a_form_file_is_accepted(acme_email):
    mail = big_mail(30 * MB)
    response = Client().post(
        url(acme_email),
        {"body-mime": SimpleUploadedFile("message.eml", mail, content_type="message/rfc822")},
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202
    with tenancy.activate(acme_email.tenant):
        assert len(bytes(RawInbound.objects.get().payload)) == len(mail)


def test_mail_past_the_inbound_limit_is_refused_with_413_and_not_stored(acme_email, settings):
    settings.HELPDESK_INBOUND_MAX_BYTES = 1 * MB
    response = Client().post(
        url(acme_email),
        big_mail(2 * MB),
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 413
    with tenancy.activate(acme_email.tenant):
        assert not RawInbound.objects.exists()


def test_a_3_mb_form_posted_to_the_sign_in_page_gets_400_not_500(agent_li):
    response = Client().post("/login/", {"username": "li.acme", "password": "x" * (3 * MB)})
    assert response.status_code == 400


def test_a_3_mb_form_posted_by_a_signed_in_admin_gets_400_not_500(admin_zhao):
    response = login(admin_zhao).post(
        "/settings/api-keys/", {"name": "x" * (3 * MB), "scopes": ["read"]}
    )
    assert response.status_code == 400
