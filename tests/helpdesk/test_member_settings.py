"""Owners and admins see who belongs under /settings/members/, change roles and remove people;
only owners touch owners, and a merchant never loses its last owner."""

from __future__ import annotations

import pytest
from django.db import transaction

from helpdesk import tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.members import change_role
from helpdesk.models import Membership, Role
from helpdesk.permissions import SYSTEM, acting_agent_for
from tests.conftest import login
from tests.factories import CustomerFactory, MembershipFactory
from tickets.models import AuditEvent, Group, GroupMember, Ticket
from tickets.services import draft_ticket, number_ticket

pytestmark = pytest.mark.django_db


def membership(user, tenant) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant)


def role_of(user, tenant) -> str | None:
    found = Membership.objects.filter(user=user, tenant=tenant).first()
    return found.role if found else None


def actions(tenant) -> list[str]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


def test_admin_sees_every_member_with_their_role(admin_zhao, agent_li, owner_chen, globex_agent_li):
    page = login(admin_zhao).get("/settings/members/").content.decode()
    for username in ("zhao.acme", "li.acme", "chen.acme"):
        assert f'data-person="{username}"' in page
    assert "li.globex" not in page


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_list_members_or_change_roles(
    person, request, admin_zhao, tenant_acme
):
    user = request.getfixturevalue(person)
    client = login(user)
    assert client.get("/settings/members/").status_code == 403
    target = membership(admin_zhao, tenant_acme)
    assert client.post(f"/settings/members/{target.pk}/role/", {"role": "agent"}).status_code == 403
    assert client.post(f"/settings/members/{target.pk}/remove/").status_code == 403
    assert role_of(admin_zhao, tenant_acme) == Role.ADMIN
    assert actions(tenant_acme) == []


def test_admin_promotes_an_agent_to_supervisor_and_it_is_audited(admin_zhao, agent_li, tenant_acme):
    target = membership(agent_li, tenant_acme)
    response = login(admin_zhao).post(
        f"/settings/members/{target.pk}/role/", {"role": "supervisor"}, follow=True
    )
    assert "li.acme is now Supervisor." in response.content.decode()
    assert role_of(agent_li, tenant_acme) == Role.SUPERVISOR
    with tenancy.activate(tenant_acme):
        [event] = AuditEvent.objects.filter(action="member.role_changed")
    assert event.changes == {"role": ["agent", "supervisor"], "details": {"person": "li.acme"}}
    assert event.actor == admin_zhao


def test_a_role_change_in_one_merchant_leaves_the_persons_other_merchant_alone(
    owner_chen, agent_li, tenant_acme, tenant_globex
):
    MembershipFactory(tenant=tenant_globex, user=agent_li, role=Role.ADMIN)
    target = membership(agent_li, tenant_acme)
    login(owner_chen).post(f"/settings/members/{target.pk}/role/", {"role": "supervisor"})
    assert role_of(agent_li, tenant_acme) == Role.SUPERVISOR
    assert role_of(agent_li, tenant_globex) == Role.ADMIN


def test_an_admin_cannot_make_an_owner_or_demote_one(admin_zhao, agent_li, owner_chen, tenant_acme):
    MembershipFactory(tenant=tenant_acme, user__username="sun.acme", role=Role.OWNER)
    client = login(admin_zhao)
    agent = membership(agent_li, tenant_acme)
    owner = membership(owner_chen, tenant_acme)
    response = client.post(f"/settings/members/{agent.pk}/role/", {"role": "owner"})
    assert response.status_code == 403
    assert client.post(f"/settings/members/{owner.pk}/role/", {"role": "agent"}).status_code == 403
    assert client.post(f"/settings/members/{owner.pk}/remove/").status_code == 403
    assert role_of(agent_li, tenant_acme) == Role.AGENT
    assert role_of(owner_chen, tenant_acme) == Role.OWNER
    offered = [value for value, _label in client.get("/settings/members/").context["roles"]]
    assert offered == ["admin", "supervisor", "agent"]


def test_an_owner_makes_another_owner_and_then_may_step_down(owner_chen, admin_zhao, tenant_acme):
    client = login(owner_chen)
    zhao = membership(admin_zhao, tenant_acme)
    chen = membership(owner_chen, tenant_acme)
    client.post(f"/settings/members/{zhao.pk}/role/", {"role": "owner"})
    assert role_of(admin_zhao, tenant_acme) == Role.OWNER
    client.post(f"/settings/members/{chen.pk}/role/", {"role": "admin"})
    assert role_of(owner_chen, tenant_acme) == Role.ADMIN


def test_the_last_owner_can_be_neither_demoted_nor_removed(owner_chen, tenant_acme):
    client = login(owner_chen)
    chen = membership(owner_chen, tenant_acme)
    response = client.post(f"/settings/members/{chen.pk}/role/", {"role": "admin"})
    assert response.status_code == 403
    assert "last owner" in response.json()["message"]
    assert client.post(f"/settings/members/{chen.pk}/remove/").status_code == 403
    assert role_of(owner_chen, tenant_acme) == Role.OWNER
    assert actions(tenant_acme) == []


def test_an_unknown_role_is_refused(admin_zhao, agent_li, tenant_acme):
    target = membership(agent_li, tenant_acme)
    response = login(admin_zhao).post(f"/settings/members/{target.pk}/role/", {"role": "god"})
    assert response.status_code == 400
    assert role_of(agent_li, tenant_acme) == Role.AGENT


def test_removing_a_member_ends_their_access_here_only(
    admin_zhao, agent_li, tenant_acme, tenant_globex
):
    MembershipFactory(tenant=tenant_globex, user=agent_li, role=Role.AGENT)
    with tenancy.activate(tenant_acme):
        vip = Group.objects.create(name="VIP")
        GroupMember.objects.create(group=vip, user=agent_li)
        customer = CustomerFactory()
        with transaction.atomic():
            ticket = draft_ticket(customer=customer, subject="退款", channel="email")
            number_ticket(acting_agent=SYSTEM, ticket=ticket)
        Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li, status="open")
    target = membership(agent_li, tenant_acme)
    client = login(admin_zhao)
    response = client.post(f"/settings/members/{target.pk}/remove/", follow=True)
    assert "li.acme no longer belongs to this merchant." in response.content.decode()
    assert role_of(agent_li, tenant_acme) is None
    assert role_of(agent_li, tenant_globex) == Role.AGENT  # their other merchant stays
    agent_li.refresh_from_db()
    assert agent_li.is_active  # the account stays
    with tenancy.activate(tenant_acme):
        assert not GroupMember.objects.exists()
        assert Ticket.objects.get(pk=ticket.pk).assignee is None  # back to the group's queue
        [event] = AuditEvent.objects.filter(action="member.removed")
    assert event.changes == {
        "role": ["agent", None],
        "details": {"person": "li.acme", "open_tickets_unassigned": 1},
    }


def test_another_merchants_membership_ids_answer_404(admin_zhao, globex_agent_li, tenant_globex):
    theirs = membership(globex_agent_li, tenant_globex)
    client = login(admin_zhao)
    assert client.post(f"/settings/members/{theirs.pk}/role/", {"role": "admin"}).status_code == 404
    assert client.post(f"/settings/members/{theirs.pk}/remove/").status_code == 404
    assert role_of(globex_agent_li, tenant_globex) == Role.AGENT


def test_the_service_refuses_a_supervisor_before_writing(supervisor_wang, agent_li, tenant_acme):
    with tenancy.activate(tenant_acme):
        acting = acting_agent_for(supervisor_wang, tenant_acme)
        with pytest.raises(PermissionDenied):
            change_role(
                acting_agent=acting,
                membership=membership(agent_li, tenant_acme),
                role=Role.ADMIN,
            )
    assert role_of(agent_li, tenant_acme) == Role.AGENT
    assert actions(tenant_acme) == []
