"""Owners and admins read the merchant's audit log at /settings/audit/: newest first, in words,
filtered by kind and person, in pages; nobody else reads it, and no other merchant's rows show."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets import audit as audit_log
from tickets import services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Group

pytestmark = pytest.mark.django_db


def audit(
    tenant, actor, kind: str, changes: dict | None = None, details: dict | None = None
) -> None:
    with tenancy.activate(tenant):
        group, _created = Group.objects.get_or_create(name="General")
        audit_log.record(actor=actor, kind=kind, obj=group, changes=changes, details=details)


def kinds_shown(page: str) -> list[str]:
    return re.findall(r'<tr data-kind="([^"]+)">', page)


@pytest.mark.parametrize("person", ["owner_chen", "admin_zhao"])
def test_owners_and_admins_read_the_log_newest_first_in_words(person, request, tenant_acme):
    reader = request.getfixturevalue(person)
    audit(tenant_acme, reader, AuditKind.GROUP_CREATED, {"name": (None, "General")})
    audit(
        tenant_acme,
        reader,
        AuditKind.MEMBER_ROLE_CHANGED,
        {"role": ("agent", "supervisor")},
        {"person": "li"},
    )
    response = login(reader).get("/settings/audit/")
    assert response.status_code == 200
    page = response.content.decode()
    assert kinds_shown(page) == ["member.role_changed", "group.created"]
    assert "Member role changed" in page and "Group created" in page
    assert "Role: Agent → Supervisor; Person: li" in page
    assert "Name: — → General" in page


def test_the_log_reads_in_chinese_for_a_chinese_merchant(owner_chen, tenant_acme):
    audit(tenant_acme, owner_chen, AuditKind.CHANNEL_SECRET_ROTATED)
    page = login(owner_chen, language=None).get("/settings/audit/").content.decode()
    assert "渠道接收密钥已轮换" in page
    assert "审计日志" in page


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_read_the_audit_log(person, request, tenant_acme, owner_chen):
    audit(tenant_acme, owner_chen, "group.created")
    response = login(request.getfixturevalue(person)).get("/settings/audit/")
    assert response.status_code == 403
    assert "group.created" not in response.content.decode()


def test_the_log_filters_by_kind_and_by_person(owner_chen, admin_zhao, tenant_acme):
    audit(tenant_acme, owner_chen, "group.created")
    audit(tenant_acme, admin_zhao, "group.renamed")
    audit(tenant_acme, admin_zhao, "group.created")
    audit(tenant_acme, None, "ticket.opened")
    client = login(owner_chen)
    by_kind = client.get("/settings/audit/", {"kind": "group.created"}).content.decode()
    assert kinds_shown(by_kind) == ["group.created", "group.created"]
    by_person = client.get("/settings/audit/", {"person": admin_zhao.pk}).content.decode()
    assert kinds_shown(by_person) == ["group.created", "group.renamed"]
    both = client.get(
        "/settings/audit/", {"kind": "group.created", "person": admin_zhao.pk}
    ).content.decode()
    assert kinds_shown(both) == ["group.created"]
    system = client.get("/settings/audit/", {"person": "system"}).content.decode()
    assert kinds_shown(system) == ["ticket.opened"]


def test_the_log_comes_in_pages_that_keep_the_filter(owner_chen, tenant_acme):
    for _ in range(52):
        audit(tenant_acme, owner_chen, "group.renamed")
    audit(tenant_acme, owner_chen, "group.created")
    client = login(owner_chen)
    first = client.get("/settings/audit/", {"kind": "group.renamed"}).content.decode()
    assert len(kinds_shown(first)) == 50
    assert "?page=2&kind=group.renamed" in first
    second = client.get("/settings/audit/", {"kind": "group.renamed", "page": 2}).content.decode()
    assert kinds_shown(second) == ["group.renamed", "group.renamed"]


def test_another_merchants_audit_rows_never_show(
    owner_chen, tenant_acme, tenant_globex, globex_agent_li
):
    audit(
        tenant_globex,
        globex_agent_li,
        AuditKind.GROUP_CREATED,
        {"name": (None, "Globex secret group")},
    )
    audit(tenant_acme, owner_chen, "group.renamed")
    page = login(owner_chen).get("/settings/audit/").content.decode()
    assert kinds_shown(page) == ["group.renamed"]
    assert "Globex secret group" not in page and "li.globex" not in page
    with tenancy.activate(tenant_globex):
        assert AuditEvent.objects.count() == 1


def open_tickets(tenant, count: int) -> list:
    with tenancy.activate(tenant):
        customer = CustomerFactory(name="李伟")
        return [
            services.open_ticket(
                acting_agent=SYSTEM, customer=customer, subject=f"问题 {n}", channel="email"
            )
            for n in range(count)
        ]


def test_a_ticket_is_named_by_its_number_and_links_to_it(owner_chen, tenant_acme, tenant_globex):
    open_tickets(tenant_globex, 3)  # so acme's row ids and ticket numbers differ
    [ticket] = open_tickets(tenant_acme, 1)
    assert ticket.pk != ticket.number
    with tenancy.activate(tenant_acme):
        audit_log.record(
            actor=owner_chen,
            kind=AuditKind.TICKET_STATUS_CHANGED,
            obj=ticket,
            changes={"status": ("new", "pending")},
        )
    page = login(owner_chen).get("/settings/audit/").content.decode()
    assert f'<a href="/tickets/{ticket.number}/">#{ticket.number}</a>' in page
    assert "Ticket status changed" in page
    assert "Status: New → Pending" in page
    assert f"ticket {ticket.pk}<" not in page


def test_an_assignee_reads_as_a_username(owner_chen, supervisor_wang, agent_li, tenant_acme):
    [ticket] = open_tickets(tenant_acme, 1)
    with tenancy.activate(tenant_acme):
        services.assign_ticket(
            acting_agent=acting(supervisor_wang), ticket=ticket, assignee=agent_li
        )
    page = login(owner_chen, language=None).get("/settings/audit/").content.decode()
    assert "— → li.acme" in page


def test_groups_and_channels_are_named(owner_chen, tenant_acme, acme_mailbox):
    audit(tenant_acme, owner_chen, AuditKind.GROUP_RENAMED, {"name": ("Sales", "General")})
    with tenancy.activate(tenant_acme):
        audit_log.record(
            actor=owner_chen,
            kind=AuditKind.CHANNEL_TEST_MAIL_SENT,
            obj=acme_mailbox.account,
            details={"to": "support@acme.example"},
        )
    page = login(owner_chen).get("/settings/audit/").content.decode()
    account = acme_mailbox.account
    assert f'<a href="/settings/channels/{account.pk}/">{account.name}</a>' in page
    assert "Group</span> General" in page
    assert "Name: Sales → General" in page
    assert "To: support@acme.example" in page


def test_naming_objects_takes_one_query_per_kind_of_object_not_per_row(owner_chen, tenant_acme):
    client = login(owner_chen)
    # The first page of a session also notes, once, whether the person's email is verified.
    assert client.get("/settings/audit/").status_code == 200

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/settings/audit/").status_code == 200
        return len(queries)

    open_tickets(tenant_acme, 2)
    audit(tenant_acme, owner_chen, AuditKind.GROUP_CREATED, {"name": (None, "General")})
    few = queries_for_page()
    open_tickets(tenant_acme, 10)
    audit(tenant_acme, owner_chen, AuditKind.GROUP_RENAMED, {"name": ("General", "VIP")})
    assert queries_for_page() == few


def test_rows_written_before_the_kinds_still_read(owner_chen, tenant_acme):
    with tenancy.activate(tenant_acme):
        AuditEvent.objects.create(
            actor_label="chen.acme",
            action="ticket.merged_by_hand",
            object_type="ticket",
            object_id="999999",
            changes={"old": "agent", "new": "supervisor", "person": "li"},
        )
    page = login(owner_chen).get("/settings/audit/").content.decode()
    assert kinds_shown(page) == ["ticket.merged_by_hand"]
    assert "<td>ticket.merged_by_hand</td>" in page
    assert "agent → supervisor; Person: li" in page
