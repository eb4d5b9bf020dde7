"""The Django admin is for platform operators only, and their support access is audited.

Django's model permissions are global and the admin only filters rows, so a person who is admin
at one merchant and agent at another could otherwise edit the second's mailboxes there, and an
owner holding user permissions could reset another merchant's owner's password.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from channels_in.models import ChannelAccount, Mailbox
from helpdesk import tenancy
from helpdesk.models import Role
from tests.conftest import PASSWORD, login
from tests.factories import MembershipFactory, UserFactory
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db

ADMIN_MODELS = [
    "channels_in/channelaccount",
    "channels_in/rawinbound",
    "tickets/ticket",
    "tickets/message",
    "tickets/customer",
    "auth/user",
    "auth/group",
    "helpdesk/membership",
]


def refused(response) -> bool:  # type: ignore[no-untyped-def]
    """The admin's answer to someone it does not serve: its login page, or 403."""
    if response.status_code == 403:
        return True
    return response.status_code == 302 and "/login/" in response["Location"]


@pytest.fixture
def globex_mailbox(tenant_globex):
    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="email", name="Globex support")
        Mailbox.objects.create(account=account, address="support@globex.example")
    return account


@pytest.fixture
def zhao_admin_at_acme_agent_at_globex(tenant_acme, tenant_globex):
    """One person: admin at acme, agent at globex, a staff account holding every model
    permission (as a merchant's admin might once have been given)."""
    person = UserFactory(username="zhao", is_staff=True)
    MembershipFactory(tenant=tenant_acme, user=person, role=Role.ADMIN)
    MembershipFactory(tenant=tenant_globex, user=person, role=Role.AGENT)
    person.user_permissions.add(*Permission.objects.all())
    return person


@pytest.fixture
def operator():
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


def test_admin_at_one_merchant_and_agent_at_another_gets_nothing_from_the_admin_in_either(
    zhao_admin_at_acme_agent_at_globex, acme_email, globex_mailbox
):
    zhao = login(zhao_admin_at_acme_agent_at_globex)
    for merchant in ["acme", "globex"]:
        assert zhao.post("/switch-tenant/", {"tenant": merchant}).status_code == 302
        index = zhao.get("/admin/")
        assert refused(index)
        page = zhao.get("/admin/", follow=True).content.decode()
        assert "Channel accounts" not in page and "Mailboxes" not in page
        for model in ADMIN_MODELS:
            assert refused(zhao.get(f"/admin/{model}/")), model
    # Not even the globex mailbox, where zhao is an agent, by its change form.
    change_url = f"/admin/channels_in/channelaccount/{globex_mailbox.pk}/change/"
    assert refused(zhao.get(change_url))
    response = zhao.post(
        change_url,
        {
            "name": "Taken over",
            "kind": "email",
            "is_active": "on",
            "mailbox-TOTAL_FORMS": "1",
            "mailbox-INITIAL_FORMS": "1",
            "mailbox-0-address": "attacker@example.com",
        },
    )
    assert refused(response)
    with tenancy.activate(globex_mailbox.tenant):
        globex_mailbox.refresh_from_db()
        assert globex_mailbox.name == "Globex support"
        assert globex_mailbox.mailbox.address == "support@globex.example"


def test_a_staff_account_with_every_auth_permission_gets_nothing_from_user_and_group_admin(
    owner_chen, tenant_globex
):
    globex_owner = UserFactory(username="grace.globex")
    MembershipFactory(tenant=tenant_globex, user=globex_owner, role=Role.OWNER)
    owner_chen.is_staff = True
    owner_chen.save()
    owner_chen.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth"))
    chen = login(owner_chen)

    users = chen.get("/admin/auth/user/", follow=True).content.decode()
    assert "grace.globex" not in users and 'id="result_list"' not in users
    assert refused(chen.get("/admin/auth/group/"))
    password_url = f"/admin/auth/user/{globex_owner.pk}/password/"
    form = chen.get(password_url, follow=True).content.decode()
    assert "password1" not in form and "grace.globex" not in form
    reset = chen.post(password_url, {"password1": "taken-over-123", "password2": "taken-over-123"})
    assert refused(reset)
    globex_owner.refresh_from_db()
    assert globex_owner.check_password(PASSWORD)
    assert not globex_owner.check_password("taken-over-123")


def test_a_platform_operator_uses_the_user_admin(operator, owner_chen):
    client = login(operator)
    users = client.get("/admin/auth/user/")
    assert users.status_code == 200
    assert "chen.acme" in users.content.decode()
    form = client.get(f"/admin/auth/user/{owner_chen.pk}/password/")
    assert form.status_code == 200 and 'name="password1"' in form.content.decode()
    assert client.get("/admin/auth/group/").status_code == 200


def test_an_operator_switching_into_a_merchant_leaves_a_row_its_owner_reads(
    operator, tenant_acme, owner_chen
):
    client = login(operator)
    assert client.post("/switch-tenant/", {"tenant": "acme"}).status_code == 302
    with tenancy.activate(tenant_acme):
        event = AuditEvent.objects.get(action="support.access_started")
        assert event.actor == operator
        assert event.changes == {"details": {"operator": "operator"}}

    audit_page = login(owner_chen).get("/settings/audit/")
    assert audit_page.status_code == 200
    page = audit_page.content.decode()
    assert "Platform support access started" in page
    assert "operator" in page


def test_an_operator_who_lands_in_a_merchant_without_switching_is_audited_once(
    operator, tenant_acme
):
    client = login(operator)
    client.get("/tickets/")
    client.get("/tickets/")
    client.get("/admin/tickets/ticket/")
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action="support.access_started").count() == 1


def test_a_member_switching_between_their_merchants_is_not_support_access(
    zhao_admin_at_acme_agent_at_globex, tenant_acme, tenant_globex
):
    zhao = login(zhao_admin_at_acme_agent_at_globex)
    zhao.post("/switch-tenant/", {"tenant": "globex"})
    zhao.get("/tickets/")
    for tenant in [tenant_acme, tenant_globex]:
        with tenancy.activate(tenant):
            assert not AuditEvent.objects.filter(action="support.access_started").exists()
