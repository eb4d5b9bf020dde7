"""Forwarding addresses on the email channel's page, a new address with a grace period, and the
confirmation mails Gmail, QQ Mail and Tencent Exmail send before they forward anything."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from channels_in import forwarding
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.channels_in.smtp_service import address_of, email_channel, running_smtp_service, send
from tests.conftest import login
from tickets.models import AuditEvent, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).resolve().parent / "forwarding_mail"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture
def smtp_port() -> Iterator[int]:
    with running_smtp_service() as port:
        yield port


@pytest.fixture
def acme_channel(tenant_acme):
    return email_channel(tenant_acme, name="Acme support", address="support@acme.example")


def channel_page(user, account) -> str:
    response = login(user).get(f"/settings/channels/{account.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_each_email_channel_has_its_own_unguessable_forwarding_address(
    acme_channel, tenant_acme, tenant_globex
):
    second = email_channel(tenant_acme, name="Acme sales", address="sales@acme.example")
    globex = email_channel(tenant_globex, name="Globex help", address="help@globex.example")
    addresses = {address_of(acme_channel), address_of(second), address_of(globex)}
    assert len(addresses) == 3
    for address in addresses:
        assert re.fullmatch(r"(acme|globex)\+[0-9a-f]{20}@inbound\.localhost", address)
    found = forwarding.find_channel(address_of(acme_channel).upper())
    assert found is not None and found.pk == acme_channel.pk


def test_admins_see_the_forwarding_address_with_a_copy_button_and_steps_per_mail_host(
    acme_channel, admin_zhao
):
    page = channel_page(admin_zhao, acme_channel)
    address = address_of(acme_channel)
    assert f'<code id="forwarding-email">{address}</code>' in page
    assert 'data-copy="#forwarding-email"' in page
    assert "/static/js/copy-button.js" in page
    for host in ("Gmail", "Tencent Exmail", "QQ Mail", "Outlook"):
        assert host in page
    assert "Forwarding and POP/IMAP" in page


def test_agents_cannot_see_a_channels_forwarding_address_nor_change_it(
    acme_channel, agent_li, tenant_acme
):
    client = login(agent_li)
    response = client.get(f"/settings/channels/{acme_channel.pk}/")
    assert response.status_code == 403
    assert address_of(acme_channel) not in response.content.decode()
    before = address_of(acme_channel)
    response = client.post(f"/settings/channels/{acme_channel.pk}/new-forwarding-address/")
    assert response.status_code == 403
    assert address_of(acme_channel) == before


def test_another_merchants_channel_is_not_found(acme_channel, tenant_globex):
    from helpdesk.models import Role
    from tests.factories import MembershipFactory

    globex_admin = MembershipFactory(tenant=tenant_globex, role=Role.ADMIN).user
    client = login(globex_admin)
    assert client.get(f"/settings/channels/{acme_channel.pk}/").status_code == 404
    response = client.post(f"/settings/channels/{acme_channel.pk}/new-forwarding-address/")
    assert response.status_code == 404


def test_a_new_address_replaces_the_old_which_keeps_working_for_the_grace_period(
    acme_channel, admin_zhao, tenant_acme, settings
):
    old = address_of(acme_channel)
    client = login(admin_zhao)
    response = client.post(
        f"/settings/channels/{acme_channel.pk}/new-forwarding-address/", follow=True
    )
    page = response.content.decode()
    new = address_of(acme_channel)
    assert new != old
    assert "The channel has a new forwarding address" in page
    assert f'<code id="forwarding-email">{new}</code>' in page
    assert f"The previous address {old} still works until" in page
    assert forwarding.find_channel(old).pk == acme_channel.pk
    assert forwarding.find_channel(new).pk == acme_channel.pk
    with tenancy.activate(tenant_acme):
        event = AuditEvent.objects.get(action="channel.secret_rotated")
        assert event.changes["details"]["secret"] == "forwarding_address"
        assert old.split("+")[1] not in str(event.changes)  # it could be used to send mail
        acme_channel.refresh_from_db()
        acme_channel.previous_forwarding_valid_until = timezone.now() - timedelta(seconds=1)
        acme_channel.save(update_fields=["previous_forwarding_valid_until"])
    assert forwarding.find_channel(old) is None
    assert forwarding.find_channel(new).pk == acme_channel.pk


def test_a_gmail_confirmation_opens_no_ticket_and_its_code_and_link_show_on_the_channel_page(
    smtp_port, acme_channel, admin_zhao, tenant_acme
):
    send(smtp_port, [address_of(acme_channel)], sample("gmail_confirmation.eml"), "")
    with tenancy.activate(tenant_acme):
        assert not Ticket.objects.exists()
        raw = RawInbound.objects.get()
        assert raw.state == "ignored" and raw.note == "forwarding confirmation from Gmail"
    page = channel_page(admin_zhao, acme_channel)
    assert "Gmail sent a forwarding confirmation" in page
    assert f'<code id="forwarding-code-{raw.pk}">573019284</code>' in page
    assert f'data-copy="#forwarding-code-{raw.pk}"' in page
    link = "https://mail-settings.google.com/mail/vf-%5BANGjdJ9Rk2Qm0x7wB1c8ZtVnL4pY%5D-Lw1dQ3rT5xkz9PbH0aC2eF6yGmU"
    assert f'href="{link}" rel="noopener noreferrer"' in page
    assert "/mail/uf-" not in page  # the cancel link is not the one to click
    assert "for shop.acme@gmail.com" in page


def test_the_getting_started_checklist_gives_the_address_and_the_code_to_finish_forwarding(
    smtp_port, acme_channel, owner_chen, tenant_acme
):
    client = login(owner_chen)
    page = client.get("/onboarding/").content.decode()
    assert f'id="forwarding-{acme_channel.pk}">{address_of(acme_channel)}</code>' in page
    assert "573019284" not in page
    send(smtp_port, [address_of(acme_channel)], sample("gmail_confirmation.eml"), "")
    page = client.get("/onboarding/").content.decode()
    assert f'<code id="onboarding-code-{acme_channel.pk}">573019284</code>' in page


def test_qq_mail_and_exmail_confirmations_in_chinese_show_newest_first(
    smtp_port, acme_channel, admin_zhao, tenant_acme
):
    send(smtp_port, [address_of(acme_channel)], sample("qq_mail_confirmation.eml"))
    send(smtp_port, [address_of(acme_channel)], sample("exmail_confirmation.eml"))
    with tenancy.activate(tenant_acme):
        assert not Ticket.objects.exists()
    page = channel_page(admin_zhao, acme_channel)
    exmail = page.index("Tencent Exmail sent a forwarding confirmation")
    qq = page.index("QQ Mail sent a forwarding confirmation")
    assert exmail < qq
    assert ">Q7K2M9</code>" in page and ">836152</code>" in page
    assert 'href="https://exmail.qq.com/cgi-bin/forwardverify?action=confirm&amp;key=' in page
    assert 'href="https://mail.qq.com/cgi-bin/autoforward_confirm?sid=9xJ2kq&amp;code=' in page


def test_a_look_alike_confirmation_from_elsewhere_is_a_customers_mail_and_no_foreign_link_shows(
    smtp_port, acme_channel, admin_zhao, tenant_acme
):
    spoof = customer_mail(
        sender="Gmail Team <forwarding-noreply@gmail-security.example>",
        subject="(#111222333) Gmail Forwarding Confirmation - Receive Mail from x@gmail.com",
        body="Confirm here: https://gmail-security.example/confirm",
    )
    send(smtp_port, [address_of(acme_channel)], spoof)
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.count() == 1  # not Google's: an ordinary message
    lure = customer_mail(
        sender="Gmail Team <forwarding-noreply@google.com>",
        subject="(#444555666) Gmail Forwarding Confirmation - Receive Mail from y@gmail.com",
        body="Click https://evil.example/mail/vf-123 to confirm.",
    )
    send(smtp_port, [address_of(acme_channel)], lure)
    page = channel_page(admin_zhao, acme_channel)
    assert ">444555666</code>" in page
    assert "evil.example" not in page and "gmail-security.example" not in page


def test_the_address_of_another_merchant_never_receives_a_confirmation(
    smtp_port, acme_channel, tenant_globex, admin_zhao
):
    globex = email_channel(tenant_globex, name="Globex help", address="help@globex.example")
    send(smtp_port, [address_of(globex)], sample("gmail_confirmation.eml"))
    assert "sent a forwarding confirmation" not in channel_page(admin_zhao, acme_channel)
    assert "573019284" not in channel_page(admin_zhao, acme_channel)
    send(smtp_port, [address_of(acme_channel)], customer_mail(subject="普通来信"))
    with tenancy.activate(acme_channel.tenant):
        assert list(Ticket.objects.values_list("subject", flat=True)) == ["普通来信"]
