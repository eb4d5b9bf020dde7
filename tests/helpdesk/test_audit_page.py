"""Owners and admins read the merchant's audit log at /settings/audit/: newest first, in words,
filtered by kind and person, in pages; nobody else reads it, and no other merchant's rows show."""

from __future__ import annotations

import re

import pytest

from helpdesk import tenancy
from tests.conftest import login
from tickets.models import AuditEvent, Group
from tickets.services import record_audit

pytestmark = pytest.mark.django_db


def audit(tenant, actor, action: str, changes: dict | None = None) -> None:
    with tenancy.activate(tenant):
        group, _created = Group.objects.get_or_create(name="General")
        record_audit(actor=actor, action=action, obj=group, changes=changes)


def kinds_shown(page: str) -> list[str]:
    return re.findall(r'<tr data-kind="([^"]+)">', page)


@pytest.mark.parametrize("person", ["owner_chen", "admin_zhao"])
def test_owners_and_admins_read_the_log_newest_first_in_words(person, request, tenant_acme):
    reader = request.getfixturevalue(person)
    audit(tenant_acme, reader, "group.created", {"new": "General"})
    audit(
        tenant_acme,
        reader,
        "member.role_changed",
        {"person": "li", "old": "agent", "new": "supervisor"},
    )
    response = login(reader).get("/settings/audit/")
    assert response.status_code == 200
    page = response.content.decode()
    assert kinds_shown(page) == ["member.role_changed", "group.created"]
    assert "changed a member&#x27;s role" in page and "created a group" in page
    assert "agent → supervisor; person: li" in page


def test_the_log_reads_in_chinese_for_a_chinese_merchant(owner_chen, tenant_acme):
    audit(tenant_acme, owner_chen, "channel.secret_rotated")
    page = login(owner_chen, language=None).get("/settings/audit/").content.decode()
    assert "轮换了渠道的接收密钥" in page
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
    audit(tenant_globex, globex_agent_li, "group.created", {"new": "Globex secret group"})
    audit(tenant_acme, owner_chen, "group.renamed")
    page = login(owner_chen).get("/settings/audit/").content.decode()
    assert kinds_shown(page) == ["group.renamed"]
    assert "Globex secret group" not in page and "li.globex" not in page
    with tenancy.activate(tenant_globex):
        assert AuditEvent.objects.count() == 1
