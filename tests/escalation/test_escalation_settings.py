"""Owners and admins set the escalation rules at /settings/escalation/: the rate they aim to stay
under (explained in words on the page), the triggers, the phrases that ask for a supervisor, the
monthly remedy budget and the defect-rate alert. Bad values are refused beside their field with
nothing saved; agents and supervisors cannot change anything; another merchant's rules stay."""

from __future__ import annotations

from decimal import Decimal

import pytest

from escalation import escalations
from escalation.models import DEFAULT_SUPERVISOR_PHRASES, EscalationPolicy
from escalation.policy_settings import update_escalation_policy
from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from tests.conftest import acting, login
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db

PAGE = "/settings/escalation/"

DEFAULTS = {
    "threshold_percent": "3",
    "min_complaints": "30",
    "on_over_limit": "on",
    "on_customer_request": "on",
    "supervisor_phrases": "\n".join(DEFAULT_SUPERVISOR_PHRASES),
    "on_manual": "on",
    "on_first_response_breach": "on",
    "on_resolution_breach": "on",
    "on_repeat_contact": "on",
    "repeat_contacts": "3",
    "repeat_days": "7",
    "monthly_budget_amount": "",
    "budget_currency": "",
    "defect_rate_percent": "1",
    "defect_min_orders": "20",
}


def policy_of(tenant) -> EscalationPolicy:
    with tenancy.activate(tenant):
        return escalations.policy()


def audit_rows(tenant) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action="escalation.policy_changed").order_by("pk"))


def test_the_page_says_in_words_what_the_threshold_means(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    assert f'href="{PAGE}"' in client.get("/settings/members/").content.decode()

    page = client.get(PAGE).content.decode()

    assert "At most 3 in 100 complaint tickets reach a supervisor" in page
    assert "alerted when the rate goes above 3%" in page
    assert "at least 30 complaint tickets" in page
    assert "once per crossing" in page
    assert "The threshold never blocks an agent" in page
    assert "No monthly remedy budget is set" in page
    assert "主管" in page  # the default phrases, one a line


def test_admin_changes_the_rules_and_each_change_is_audited_old_to_new(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    response = client.post(
        PAGE,
        {
            **DEFAULTS,
            "threshold_percent": "2.5",
            "on_repeat_contact": "",
            "repeat_contacts": "4",
            "monthly_budget_amount": "20000",
            "budget_currency": "cny",
        },
    )

    assert response.status_code == 302 and response.url == PAGE
    policy = policy_of(tenant_acme)
    assert policy.threshold_percent == Decimal("2.50")
    assert (policy.on_repeat_contact, policy.repeat_contacts) == (False, 4)
    assert (policy.monthly_budget_amount, policy.budget_currency) == (Decimal("20000"), "CNY")
    [changed] = audit_rows(tenant_acme)
    assert changed.actor == admin_zhao
    assert changed.changes == {
        "threshold_percent": ["3.00", "2.50"],
        "on_repeat_contact": [True, False],
        "repeat_contacts": [3, 4],
        "monthly_budget_amount": [None, "20000.00"],
        "budget_currency": ["", "CNY"],
    }
    page = client.get(PAGE).content.decode()
    assert "At most 2.5 in 100 complaint tickets" in page
    assert "20,000.00" in page and 'value="20000.00"' in page
    # The same values again change nothing and write nothing.
    client.post(
        PAGE,
        {
            **DEFAULTS,
            "threshold_percent": "2.50",
            "on_repeat_contact": "",
            "repeat_contacts": "4",
            "monthly_budget_amount": "20000.00",
            "budget_currency": "CNY",
        },
    )
    assert len(audit_rows(tenant_acme)) == 1


def test_supervisor_phrases_are_trimmed_and_kept_once(owner_chen, tenant_acme):
    typed = "  找你们老板 \n\nManager\nmanager\n  speak   to your boss  \n主管\n找你们老板"

    response = login(owner_chen).post(PAGE, {**DEFAULTS, "supervisor_phrases": typed})

    assert response.status_code == 302
    assert policy_of(tenant_acme).supervisor_phrases == [
        "找你们老板",
        "Manager",
        "speak to your boss",
        "主管",
    ]
    [changed] = audit_rows(tenant_acme)
    assert changed.changes["supervisor_phrases"] == [
        DEFAULT_SUPERVISOR_PHRASES,
        ["找你们老板", "Manager", "speak to your boss", "主管"],
    ]


@pytest.mark.parametrize(
    ("changed", "field", "message"),
    [
        ({"threshold_percent": "101"}, "threshold_percent", "less than or equal to 100"),
        ({"threshold_percent": "2.555"}, "threshold_percent", "2 decimal places"),
        ({"defect_rate_percent": "-1"}, "defect_rate_percent", "greater than or equal to 0"),
        ({"repeat_contacts": "1"}, "repeat_contacts", "greater than or equal to 2"),
        ({"repeat_days": "0"}, "repeat_days", "greater than or equal to 1"),
        ({"monthly_budget_amount": "20000"}, "budget_currency", "A budget needs its currency"),
        ({"budget_currency": "CNY"}, "monthly_budget_amount", "Write the budget&#x27;s amount"),
        (
            {"monthly_budget_amount": "100.5", "budget_currency": "JPY"},
            "monthly_budget_amount",
            "JPY amounts have at most 0 decimal places",
        ),
        (
            {"monthly_budget_amount": "100", "budget_currency": "XYZ"},
            "budget_currency",
            "XYZ is not a currency code",
        ),
        (
            {"monthly_budget_amount": "0", "budget_currency": "CNY"},
            "monthly_budget_amount",
            "A budget is more than zero",
        ),
        (
            {"supervisor_phrases": "\n".join(f"phrase {n}" for n in range(101))},
            "supervisor_phrases",
            "At most 100 phrases",
        ),
        (
            {"supervisor_phrases": "主管\n" + "请" * 101},
            "supervisor_phrases",
            "A phrase has at most 100 characters",
        ),
    ],
)
def test_bad_values_are_refused_beside_their_field_and_nothing_is_saved(
    admin_zhao, tenant_acme, changed, field, message
):
    response = login(admin_zhao).post(PAGE, {**DEFAULTS, "threshold_percent": "2", **changed})

    assert response.status_code == 400
    beside_field = response.content.decode().split(f'name="{field}"', 1)[1].split("</label>")[0]
    assert 'class="error"' in beside_field and message in beside_field
    policy = policy_of(tenant_acme)
    assert policy.threshold_percent == Decimal("3")
    assert policy.supervisor_phrases == DEFAULT_SUPERVISOR_PHRASES
    assert policy.monthly_budget_amount is None
    assert audit_rows(tenant_acme) == []


def test_a_budget_is_removed_by_emptying_both_fields(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    client.post(PAGE, {**DEFAULTS, "monthly_budget_amount": "20000", "budget_currency": "CNY"})
    client.post(PAGE, DEFAULTS)
    policy = policy_of(tenant_acme)
    assert (policy.monthly_budget_amount, policy.budget_currency) == (None, "")
    _set, removed = audit_rows(tenant_acme)
    assert removed.changes == {
        "monthly_budget_amount": ["20000.00", None],
        "budget_currency": ["CNY", ""],
    }


def test_the_service_keeps_what_it_is_not_given_and_refuses_a_float(admin_zhao, tenant_acme):
    with tenancy.activate(tenant_acme):
        update_escalation_policy(acting_agent=acting(admin_zhao), min_complaints=50)
        policy = escalations.policy()
        assert (policy.min_complaints, policy.threshold_percent) == (50, Decimal("3"))
        with pytest.raises(BadInput) as refused:
            update_escalation_policy(acting_agent=acting(admin_zhao), threshold_percent=2.5)
        assert refused.value.extra["field"] == "threshold_percent"
        with pytest.raises(BadInput) as refused:
            update_escalation_policy(acting_agent=acting(admin_zhao), monthly_budget_amount="9")
        assert refused.value.extra["field"] == "budget_currency"
    assert [row.changes for row in audit_rows(tenant_acme)] == [{"min_complaints": [30, 50]}]


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_open_or_change_the_escalation_settings(
    request, person, tenant_acme
):
    user = request.getfixturevalue(person)
    client = login(user)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {**DEFAULTS, "threshold_percent": "50"}).status_code == 403
    with tenancy.activate(tenant_acme), pytest.raises(PermissionDenied):
        update_escalation_policy(acting_agent=acting(user), threshold_percent="50")
    assert policy_of(tenant_acme).threshold_percent == Decimal("3")
    assert audit_rows(tenant_acme) == []


def test_one_merchants_change_leaves_the_other_merchants_rules_alone(
    admin_zhao, tenant_acme, tenant_globex
):
    globex_before = policy_of(tenant_globex)

    login(admin_zhao).post(PAGE, {**DEFAULTS, "threshold_percent": "7", "on_manual": ""})

    assert policy_of(tenant_acme).threshold_percent == Decimal("7")
    globex = policy_of(tenant_globex)
    assert globex.pk == globex_before.pk
    assert (globex.threshold_percent, globex.on_manual) == (Decimal("3"), True)
    assert audit_rows(tenant_globex) == []
