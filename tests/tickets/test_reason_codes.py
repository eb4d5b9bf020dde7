"""Merchants' admins keep the reason codes tickets are filed under at /settings/reason-codes/ and
say which are complaints; agents file a ticket under one of their own merchant's active codes
from the ticket page. Agents cannot change the list, a code is unique within a merchant, and
another merchant's codes and pages are out of reach."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from helpdesk import realtime, tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets import reasons
from tickets.models import AuditEvent, ReasonCode, Ticket
from tickets.services import open_ticket

pytestmark = pytest.mark.django_db

PAGE = "/settings/reason-codes/"
DAMAGED = {
    "code": "damaged",
    "label": "Arrived damaged 到货破损",
    "is_complaint": "on",
    "active": "on",
    "position": "10",
}


def audit_rows(tenant, action: str) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def codes_of(tenant) -> list[ReasonCode]:
    with tenancy.activate(tenant):
        return list(ReasonCode.objects.order_by("position", "pk"))


@pytest.fixture
def globex_admin(tenant_globex):
    return MembershipFactory(
        tenant=tenant_globex, user=UserFactory(username="grace.globex"), role=Role.ADMIN
    ).user


@pytest.fixture
def acme_codes(tenant_acme):
    """Acme's codes: two complaints, one not, and one retired."""
    with tenancy.activate(tenant_acme):
        return {
            code: ReasonCode.objects.create(
                code=code, label=label, is_complaint=complaint, active=active, position=index
            )
            for index, (code, label, complaint, active) in enumerate(
                [
                    ("damaged", "Arrived damaged 到货破损", True, True),
                    ("wrong_item", "Wrong item 发错货", True, True),
                    ("pre_sales", "Pre-sales question 售前咨询", False, True),
                    ("lost_parcel", "Parcel lost 丢件", True, False),
                ]
            )
        }


@pytest.fixture
def globex_code(tenant_globex):
    with tenancy.activate(tenant_globex):
        return ReasonCode.objects.create(code="opened_as_new", label="Used sold as new")


@pytest.fixture
def acme_ticket(tenant_acme) -> Ticket:
    with tenancy.activate(tenant_acme):
        return open_ticket(
            acting_agent=SYSTEM,
            customer=CustomerFactory(name="张敏"),
            subject="音箱支架断裂",
            channel="email",
        )


def ticket_now(tenant, ticket: Ticket) -> Ticket:
    with tenancy.activate(tenant):
        return Ticket.objects.get(pk=ticket.pk)


# --- the settings page -------------------------------------------------------------------------


def test_admin_adds_a_complaint_code_and_sees_it_listed_and_audited(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    assert f'href="{PAGE}"' in client.get("/settings/members/").content.decode()
    assert "No reason codes yet" in client.get(PAGE).content.decode()

    response = client.post(PAGE, DAMAGED)

    assert response.status_code == 302 and response.url == PAGE
    [code] = codes_of(tenant_acme)
    assert (code.code, code.label, code.is_complaint, code.active, code.position) == (
        "damaged",
        "Arrived damaged 到货破损",
        True,
        True,
        10,
    )
    page = client.get(PAGE).content.decode()
    row = re.search(r'<tr data-code="damaged".*?</tr>', page, re.S).group(0)
    assert "Arrived damaged 到货破损" in row and "Complaint" in row
    [saved] = audit_rows(tenant_acme, "reason_code.saved")
    assert saved.actor == admin_zhao
    assert saved.changes == {
        "label": [None, "Arrived damaged 到货破损"],
        "is_complaint": [None, True],
        "active": [None, True],
        "position": [None, 10],
        "details": {"code": "damaged"},
    }


def test_a_code_without_position_goes_after_the_last(admin_zhao, tenant_acme, acme_codes):
    login(admin_zhao).post(PAGE, {"code": "late_delivery", "label": "物流延迟", "active": "on"})
    assert [c.code for c in codes_of(tenant_acme)][-1] == "late_delivery"
    added = codes_of(tenant_acme)[-1]
    assert added.position > acme_codes["lost_parcel"].position
    assert added.is_complaint is False


def test_admin_edits_the_complaint_flag_and_retires_a_code_old_to_new(
    admin_zhao, tenant_acme, acme_codes
):
    client = login(admin_zhao)
    url = f"{PAGE}{acme_codes['wrong_item'].pk}/"
    form = client.get(url).content.decode()
    assert 'value="Wrong item 发错货"' in form and 'name="code"' not in form

    response = client.post(url, {"label": "Wrong item sent 发错货", "position": "1"})

    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        edited = ReasonCode.objects.get(code="wrong_item")
    assert (edited.label, edited.is_complaint, edited.active) == (
        "Wrong item sent 发错货",
        False,
        False,
    )
    [saved] = audit_rows(tenant_acme, "reason_code.saved")
    assert saved.changes == {
        "label": ["Wrong item 发错货", "Wrong item sent 发错货"],
        "is_complaint": [True, False],
        "active": [True, False],
        "details": {"code": "wrong_item"},
    }
    row = re.search(r'<tr data-code="wrong_item".*?</tr>', client.get(PAGE).content.decode(), re.S)
    assert "Retired" in row.group(0)
    # Saving the same again changes nothing and writes nothing.
    client.post(url, {"label": "Wrong item sent 发错货", "position": "1"})
    assert len(audit_rows(tenant_acme, "reason_code.saved")) == 1


def test_a_code_is_unique_within_a_merchant_but_another_merchant_may_use_it(
    admin_zhao, globex_admin, tenant_acme, tenant_globex, acme_codes
):
    response = login(admin_zhao).post(PAGE, {**DAMAGED, "code": " Damaged ", "label": "Again"})

    assert response.status_code == 400
    assert "There is already a reason code damaged" in response.content.decode()
    assert [c.label for c in codes_of(tenant_acme) if c.code == "damaged"] == [
        "Arrived damaged 到货破损"
    ]
    assert login(globex_admin).post(PAGE, DAMAGED).status_code == 302
    assert [c.code for c in codes_of(tenant_globex)] == ["damaged"]


@pytest.mark.parametrize(
    ("code", "label", "message"),
    [
        ("wrong item", "发错货", "A code is one word"),
        ("x" * 61, "发错货", "at most 60 characters"),
        ("wrong_item", "   ", "This field is required."),
    ],
)
def test_a_code_that_is_not_a_slug_or_has_no_label_is_refused(
    admin_zhao, tenant_acme, code, label, message
):
    response = login(admin_zhao).post(PAGE, {"code": code, "label": label, "active": "on"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert codes_of(tenant_acme) == []


def test_the_code_of_an_existing_reason_cannot_change(admin_zhao, tenant_acme, acme_codes):
    with tenancy.activate(tenant_acme), pytest.raises(BadInput, match="cannot change"):
        reasons.save_reason_code(
            acting_agent=acting(admin_zhao),
            reason_code=acme_codes["damaged"],
            code="broken",
            label="Broken",
        )


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_open_or_change_the_reason_codes(
    request, person, tenant_acme, acme_codes
):
    user = request.getfixturevalue(person)
    client = login(user)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {**DAMAGED, "code": "new_code"}).status_code == 403
    url = f"{PAGE}{acme_codes['damaged'].pk}/"
    assert client.post(url, {"label": "Changed"}).status_code == 403
    assert f'href="{PAGE}"' not in client.get("/tickets/").content.decode()
    assert {c.code for c in codes_of(tenant_acme)} == set(acme_codes)
    assert codes_of(tenant_acme)[0].label == "Arrived damaged 到货破损"
    assert audit_rows(tenant_acme, "reason_code.saved") == []
    with tenancy.activate(tenant_acme), pytest.raises(PermissionDenied):
        reasons.save_reason_code(acting_agent=acting(user), code="sneaky", label="Sneaky")


def test_another_merchants_reason_code_page_is_404(admin_zhao, tenant_globex, globex_code):
    client = login(admin_zhao)
    url = f"{PAGE}{globex_code.pk}/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"label": "Taken over", "active": "on"}).status_code == 404
    assert codes_of(tenant_globex)[0].label == "Used sold as new"
    assert "opened_as_new" not in client.get(PAGE).content.decode()


def test_the_list_counts_the_tickets_filed_under_each_code(
    admin_zhao, agent_li, tenant_acme, acme_codes, acme_ticket
):
    with tenancy.activate(tenant_acme):
        reasons.change_ticket_reason(
            acting_agent=acting(agent_li), ticket=acme_ticket, code="damaged"
        )
    page = login(admin_zhao).get(PAGE).content.decode()
    row = re.search(r'<tr data-code="damaged".*?</tr>', page, re.S).group(0)
    assert "<td>1</td>" in row


# --- a ticket's reason -------------------------------------------------------------------------


def test_agent_files_a_ticket_under_a_reason_from_the_ticket_page(
    agent_li, tenant_acme, acme_codes, acme_ticket, monkeypatch
):
    pushed = []
    monkeypatch.setattr(
        realtime,
        "publish_after_commit",
        lambda tenant_id, event, payload, ticket=None: pushed.append((tenant_id, event, payload)),
    )
    client = login(agent_li)
    detail = f"/tickets/{acme_ticket.number}/"
    page = client.get(detail).content.decode()
    select = re.search(r'<form[^>]*id="ticket-reason".*?</form>', page, re.S).group(0)
    assert "Arrived damaged 到货破损" in select and "Pre-sales question 售前咨询" in select
    assert "Parcel lost 丢件" not in select  # retired: no longer offered

    response = client.post(f"{detail}reason/", {"reason_code": "damaged"}, follow=True)

    assert response.redirect_chain[-1] == (detail, 302)
    page = response.content.decode()
    assert "is filed under Arrived damaged 到货破损" in page
    assert '<option value="damaged" selected>' in page
    assert ticket_now(tenant_acme, acme_ticket).reason_code == "damaged"
    [changed] = audit_rows(tenant_acme, "ticket.reason_changed")
    assert changed.actor == agent_li
    assert changed.changes == {"reason_code": ["", "damaged"]}
    assert (tenant_acme.pk, "ticket.updated") in [(t, e) for t, e, _p in pushed]
    assert {"ticket": acme_ticket.number, "reason_code": "damaged"} in [p for _t, _e, p in pushed]

    client.post(f"{detail}reason/", {"reason_code": ""})

    assert ticket_now(tenant_acme, acme_ticket).reason_code == ""
    _first, cleared = audit_rows(tenant_acme, "ticket.reason_changed")
    assert cleared.changes == {"reason_code": ["damaged", ""]}


def test_another_merchants_code_or_a_retired_one_is_refused_and_nothing_changes(
    agent_li, tenant_acme, acme_codes, globex_code, acme_ticket
):
    client = login(agent_li)
    detail = f"/tickets/{acme_ticket.number}/"
    for code in ("opened_as_new", "lost_parcel", "no_such_code"):
        response = client.post(f"{detail}reason/", {"reason_code": code})
        assert response.status_code == 400
        assert "is not a reason code agents may choose here" in response.content.decode()
    assert ticket_now(tenant_acme, acme_ticket).reason_code == ""
    assert audit_rows(tenant_acme, "ticket.reason_changed") == []
    with tenancy.activate(tenant_acme), pytest.raises(BadInput):
        reasons.change_ticket_reason(
            acting_agent=acting(agent_li), ticket=acme_ticket, code="opened_as_new"
        )


def test_a_ticket_keeps_its_retired_code_and_the_page_still_shows_it(
    agent_li, tenant_acme, acme_codes, acme_ticket
):
    with tenancy.activate(tenant_acme):
        Ticket.objects.filter(pk=acme_ticket.pk).update(reason_code="lost_parcel")
    page = login(agent_li).get(f"/tickets/{acme_ticket.number}/").content.decode()
    assert '<option value="lost_parcel" selected>Parcel lost 丢件</option>' in page


def test_another_merchants_ticket_is_404_and_keeps_its_reason(agent_li, tenant_globex, globex_code):
    with tenancy.activate(tenant_globex):
        globex_ticket = open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject="Tent", channel="email"
        )
    response = login(agent_li).post(
        f"/tickets/{globex_ticket.number}/reason/", {"reason_code": "opened_as_new"}
    )
    assert response.status_code == 404
    assert ticket_now(tenant_globex, globex_ticket).reason_code == ""


# --- the demo merchants ------------------------------------------------------------------------


def test_the_demo_merchant_has_reason_codes_and_a_month_of_history_seeded_once(db):
    from django.core.management import call_command

    from escalation import metrics
    from escalation.models import Escalation, Remedy
    from helpdesk.models import Tenant

    def totals(tenant) -> tuple[int, ...]:
        with tenancy.activate(tenant):
            return (
                ReasonCode.objects.count(),
                Ticket.objects.count(),
                Escalation.objects.count(),
                Remedy.objects.count(),
                AuditEvent.objects.count(),
            )

    call_command("seed_demo", stdout=io.StringIO())
    acme = Tenant.objects.get(slug="acme")
    first = totals(acme)
    call_command("seed_demo", stdout=io.StringIO())
    assert totals(acme) == first

    with tenancy.activate(acme):
        complaints = set(
            ReasonCode.objects.filter(is_complaint=True).values_list("code", flat=True)
        )
        assert {"damaged", "wrong_item", "late_delivery", "not_as_described"} <= complaints
        assert ReasonCode.objects.get(code="pre_sales").is_complaint is False
        assert ReasonCode.objects.get(code="damaged").label == "Arrived damaged 到货破损"
        assert not Ticket.objects.filter(reason_code="").exists()
        month = metrics.escalation_rate(days=30)
        assert month.complaints >= 150 and 5 <= month.escalated <= 10
        assert metrics.escalation_rate(days=7).complaints >= 30
        oldest = Ticket.objects.order_by("created_at").first().created_at
        assert timezone.now() - oldest > timedelta(days=25)
        assert len(set(Escalation.objects.values_list("trigger", flat=True))) == 6
        assert not Ticket.objects.filter(escalations__isnull=False, escalated_at=None).exists()
        assert set(Remedy.objects.values_list("currency", flat=True)) == {"CNY"}
        policy = metrics.policy()
        assert (policy.monthly_budget_amount, policy.budget_currency) == (Decimal("20000"), "CNY")
        flagged = [row for row in metrics.defect_rates(days=30) if row["above"]]
        assert {row["key"] for row in flagged} == {
            "AC-SPK-BT5",
            "Dongguan Sound Parts 东莞声学配件",
        }
        assert Ticket.objects.filter(subject__contains="音箱支架断裂").count() >= 10
