"""Inviting people: the email with its link, joining with a new account or an existing one,
and links that no longer work."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.models import Invitation, Membership, Role
from tests.conftest import PASSWORD, login
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db

User = get_user_model()


def invite(client: Client, email: str = "xu@acme.example", role: str = "agent", **extra):
    return client.post("/settings/members/invite/", {"email": email, "role": role}, **extra)


def link_of(message: mail.EmailMessage) -> str:
    return re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", message.body).group(1)


def audit_actions(tenant) -> list[str]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


@pytest.fixture
def invited_xu(admin_zhao) -> str:
    """The link of an agent invitation to xu@acme.example, sent by admin Zhao."""
    assert invite(login(admin_zhao)).status_code == 302
    return link_of(mail.outbox[-1])


def test_an_admin_invites_by_email_and_the_invitation_waits_on_the_members_page(
    admin_zhao, tenant_acme
):
    admin = login(admin_zhao)
    response = invite(admin)
    assert response.status_code == 302 and response["Location"] == "/settings/members/"

    [message] = mail.outbox
    assert message.to == ["xu@acme.example"]
    assert "Acme 家电" in message.subject
    token = link_of(message).split("/")[2]
    invitation = Invitation.objects.get(tenant=tenant_acme)
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "xu@acme.example",
        Role.AGENT,
        admin_zhao,
    )
    # Only a hash of the token is kept.
    assert token not in str(Invitation.objects.filter(pk=invitation.pk).values().get())
    assert invitation.expires_at - invitation.sent_at == timedelta(days=7)
    page = admin.get("/settings/members/").content.decode()
    assert 'data-invitation="xu@acme.example"' in page
    assert "invitation.sent" in audit_actions(tenant_acme)


def test_a_new_person_sets_a_name_and_password_and_lands_signed_in_on_the_tickets(
    invited_xu, tenant_acme
):
    client = Client()
    form = client.get(invited_xu)
    assert form.status_code == 200 and "xu@acme.example" in form.content.decode()

    response = client.post(invited_xu, {"name": "Xu Ming", "password1": "tea-and-dumplings-77"})

    assert response.status_code == 302 and response["Location"] == "/tickets/"
    xu = User.objects.get(email="xu@acme.example")
    assert xu.first_name == "Xu Ming" and xu.check_password("tea-and-dumplings-77")
    membership = Membership.objects.get(tenant=tenant_acme, user=xu)
    assert membership.role == Role.AGENT and membership.display_name == "Xu Ming"
    assert EmailAddress.objects.get(user=xu).verified
    assert client.get("/tickets/").status_code == 200
    assert "invitation.accepted" in audit_actions(tenant_acme)
    # The new account signs in with the email.
    fresh = Client()
    fresh.post("/login/", {"username": "xu@acme.example", "password": "tea-and-dumplings-77"})
    assert fresh.get("/tickets/").status_code == 200


def test_a_new_persons_password_must_pass_the_validators(invited_xu):
    response = Client().post(invited_xu, {"name": "Xu", "password1": "12345678"})
    assert response.status_code == 400 and response.context["form"].errors["password1"]
    assert not User.objects.filter(email="xu@acme.example").exists()


def test_someone_with_an_account_signs_in_and_the_merchant_is_added_to_it(
    owner_chen, tenant_globex, globex_agent_li
):
    users = User.objects.count()
    invite(login(owner_chen), email="LI.GLOBEX@example.com", role="supervisor")
    link = link_of(mail.outbox[-1])

    signed_out = Client().get(link).content.decode()
    assert "already has a helpdesk account" in signed_out
    assert "/login/?next=" in signed_out

    li = Client()
    signed_in = li.post(
        f"/login/?next={link}", {"username": "li.globex", "password": PASSWORD, "next": link}
    )
    assert signed_in["Location"] == link
    assert li.get(link).status_code == 200
    joined = li.post(link)

    assert joined.status_code == 302 and joined["Location"] == "/tickets/"
    assert User.objects.count() == users
    acme = owner_chen.memberships.get().tenant
    assert Membership.objects.get(tenant=acme, user=globex_agent_li).role == Role.SUPERVISOR
    assert Membership.objects.get(tenant=tenant_globex, user=globex_agent_li).role == Role.AGENT
    # The new merchant is the one they now act for.
    assert li.get("/tickets/").context["tenant"] == acme


def test_a_known_email_cannot_get_a_second_account_through_the_link(owner_chen, globex_agent_li):
    invite(login(owner_chen), email="li.globex@example.com")
    link = link_of(mail.outbox[-1])
    users = User.objects.count()
    Client().post(link, {"name": "Li", "password1": "a-second-account-99"})
    assert User.objects.count() == users
    assert (
        not Membership.objects.filter(user=globex_agent_li, role=Role.AGENT)
        .exclude(tenant__slug="globex")
        .exists()
    )


def test_signed_in_as_someone_else_the_link_says_whose_it_is_and_adds_nothing(
    invited_xu, globex_agent_li
):
    other = login(globex_agent_li)
    page = other.get(invited_xu)
    assert page.status_code == 403
    assert "This invitation is for xu@acme.example" in page.content.decode()
    assert other.post(invited_xu).status_code == 403
    assert globex_agent_li.memberships.count() == 1
    assert Invitation.objects.get().accepted_at is None


def test_a_used_link_is_refused(invited_xu):
    Client().post(invited_xu, {"name": "Xu", "password1": "tea-and-dumplings-77"})
    again = Client().get(invited_xu)
    assert again.status_code == 410
    assert "This invitation was already used" in again.content.decode()
    assert User.objects.filter(email="xu@acme.example").count() == 1


def test_an_expired_link_is_refused(invited_xu):
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = Client().post(invited_xu, {"name": "Xu", "password1": "tea-and-dumplings-77"})
    assert response.status_code == 410
    assert "This invitation has expired" in response.content.decode()
    assert not User.objects.filter(email="xu@acme.example").exists()


def test_a_revoked_link_is_refused_and_the_revocation_is_audited(
    invited_xu, admin_zhao, tenant_acme
):
    invitation = Invitation.objects.get()
    response = login(admin_zhao).post(f"/settings/invitations/{invitation.pk}/revoke/")
    assert response.status_code == 302
    refused = Client().get(invited_xu)
    assert refused.status_code == 410 and "withdrawn" in refused.content.decode()
    assert "invitation.revoked" in audit_actions(tenant_acme)
    log = login(admin_zhao).get("/settings/audit/").content.decode()
    assert "Invitation revoked" in log and "xu@acme.example" in log


def test_an_unknown_link_is_a_404():
    assert Client().get("/invitations/not-a-real-token/").status_code == 404


def test_sending_again_makes_a_new_link_and_the_old_one_stops_working(invited_xu, admin_zhao):
    invitation = Invitation.objects.get()
    login(admin_zhao).post(f"/settings/invitations/{invitation.pk}/resend/")
    new_link = link_of(mail.outbox[-1])
    assert new_link != invited_xu
    assert Client().get(invited_xu).status_code == 404
    assert Client().get(new_link).status_code == 200


def test_only_owners_invite_owners(admin_zhao, owner_chen):
    refused = invite(login(admin_zhao), role="owner", HTTP_ACCEPT="text/html")
    assert refused.status_code == 400  # "owner" is not among the roles an admin may hand out
    assert not Invitation.objects.exists()
    assert "owner" not in [
        value for value, _label in login(admin_zhao).get("/settings/members/").context["roles"]
    ]

    assert invite(login(owner_chen), role="owner").status_code == 302
    assert Invitation.objects.get().role == Role.OWNER


def test_agents_and_supervisors_cannot_invite(agent_li, supervisor_wang):
    for person in (agent_li, supervisor_wang):
        assert invite(login(person), HTTP_ACCEPT="text/html").status_code == 403
    assert not Invitation.objects.exists()


def test_inviting_a_member_or_someone_already_invited_is_a_form_error(
    invited_xu, admin_zhao, agent_li
):
    admin = login(admin_zhao)
    member = invite(admin, email="li.acme@example.com")
    again = invite(admin, email="Xu@Acme.example")
    assert "already belongs to this merchant" in member.context["invite_form"].errors["email"][0]
    assert "already invited" in again.context["invite_form"].errors["email"][0]
    assert Invitation.objects.count() == 1


def test_another_merchants_invitation_ids_are_404(invited_xu, tenant_globex):
    from tests.factories import MembershipFactory, UserFactory

    globex_admin = MembershipFactory(
        tenant=tenant_globex, user=UserFactory(username="grace.globex"), role=Role.ADMIN
    ).user
    invitation = Invitation.objects.get()
    client = login(globex_admin)
    assert client.post(f"/settings/invitations/{invitation.pk}/revoke/").status_code == 404
    assert client.post(f"/settings/invitations/{invitation.pk}/resend/").status_code == 404
    invitation.refresh_from_db()
    assert invitation.revoked_at is None
