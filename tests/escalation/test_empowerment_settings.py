"""Owners and admins decide what their people may give under /settings/empowerment/: limits per
role and per person, shown in the merchant's money; the customer period; the execution URL the
egress guard allows and its signing secret. Agents and supervisors cannot, and another
merchant's limit is 404."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from escalation import policies
from escalation.models import EmpowermentPolicy, RemedyKind, RemedyLimit
from escalation.services import grant_remedy
from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Role
from helpdesk.money import format_money
from tests.conftest import acting, login
from tests.helpdesk.test_http_client import Receiver
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db

PAGE = "/settings/empowerment/"
NEW_LIMIT = "/settings/empowerment/limits/new/"
POLICY = "/settings/empowerment/policy/"

AGENTS_REFUND = {
    "who": "role:agent",
    "kind": "refund",
    "currency": "CNY",
    "per_grant_max_amount": "300",
    "order_share_max_percent": "50",
    "per_agent_day_max_amount": "2000",
    "per_customer_period_max_amount": "500",
}


def audit_rows(tenant, action: str) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def limits_of(tenant) -> list[RemedyLimit]:
    with tenancy.activate(tenant):
        return list(RemedyLimit.objects.all())


def policy_of(tenant) -> EmpowermentPolicy:
    with tenancy.activate(tenant):
        return EmpowermentPolicy.objects.get()


def money(amount: str, currency: str = "CNY") -> str:
    return format_money(Decimal(amount), currency, "en")


def test_admin_sets_the_agents_refund_limit_and_sees_it_in_the_merchants_money(
    admin_zhao, tenant_acme
):
    client = login(admin_zhao)
    assert 'href="/settings/empowerment/"' in client.get("/settings/members/").content.decode()
    assert "No role may give anything without approval yet." in client.get(PAGE).content.decode()

    response = client.post(NEW_LIMIT, AGENTS_REFUND)

    assert response.status_code == 302 and response.url == PAGE
    page = client.get(PAGE).content.decode()
    row = re.search(r'<tr data-limit="\d+" data-kind="refund".*?</tr>', page, re.S).group(0)
    assert "Agent" in row and "Refund" in row
    for shown in (money("300"), "50%", money("2000"), money("500")):
        assert shown in row
    assert "2,000.00" in row  # grouped and with the currency's two places
    [created] = audit_rows(tenant_acme, "empowerment.limit_set")
    assert created.changes == {
        "per_grant_max_amount": [None, "300.00"],
        "order_share_max_percent": [None, "50.00%"],
        "per_agent_day_max_amount": [None, "2000.00"],
        "per_customer_period_max_amount": [None, "500.00"],
        "details": {"role": "agent", "kind": "refund", "currency": "CNY"},
    }


def test_editing_a_limit_is_audited_old_to_new_and_the_audit_log_shows_it(owner_chen, tenant_acme):
    client = login(owner_chen)
    client.post(NEW_LIMIT, AGENTS_REFUND)
    [limit] = limits_of(tenant_acme)
    url = f"/settings/empowerment/limits/{limit.pk}/"
    form = client.get(url).content.decode()
    assert 'value="300.00"' in form and 'value="50"' in form

    response = client.post(
        url,
        {
            "per_grant_max_amount": "450",
            "order_share_max_percent": "50",
            "per_agent_day_max_amount": "",  # no daily cap any more
            "per_customer_period_max_amount": "500",
        },
    )

    assert response.status_code == 302
    [limit] = limits_of(tenant_acme)
    assert (limit.per_grant_max_amount, limit.per_agent_day_max_amount) == (Decimal("450"), None)
    _created, edited = audit_rows(tenant_acme, "empowerment.limit_set")
    assert edited.changes == {
        "per_grant_max_amount": ["300.00", "450.00"],
        "per_agent_day_max_amount": ["2000.00", None],
        "details": {"role": "agent", "kind": "refund", "currency": "CNY"},
    }
    audit_page = client.get("/settings/audit/?kind=empowerment.limit_set").content.decode()
    assert "300.00 → 450.00" in audit_page and "2000.00 → —" in audit_page
    # Saving the same caps again changes nothing and writes nothing.
    client.post(
        url, {**AGENTS_REFUND, "per_grant_max_amount": "450.00", "per_agent_day_max_amount": ""}
    )
    assert len(audit_rows(tenant_acme, "empowerment.limit_set")) == 2


def test_a_jpy_limit_with_decimals_is_refused_with_the_reason_and_nothing_is_saved(
    admin_zhao, tenant_acme
):
    response = login(admin_zhao).post(
        NEW_LIMIT, {**AGENTS_REFUND, "currency": "JPY", "per_grant_max_amount": "1500.50"}
    )

    assert response.status_code == 400
    assert "JPY amounts have at most 0 decimal places" in response.content.decode()
    assert limits_of(tenant_acme) == []
    assert audit_rows(tenant_acme, "empowerment.limit_set") == []


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("order_share_max_percent", "120", "a percentage from 0 to 100"),
        ("per_agent_day_max_amount", "-5", "-5 is not an amount"),
        ("currency", "RMB", "RMB is not a currency code"),
    ],
)
def test_other_impossible_caps_are_refused_with_the_reason(
    admin_zhao, tenant_acme, field, value, reason
):
    response = login(admin_zhao).post(NEW_LIMIT, {**AGENTS_REFUND, field: value})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert limits_of(tenant_acme) == []


def test_a_free_order_limit_caps_the_order_value_and_takes_no_share(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    free_order = {**AGENTS_REFUND, "who": "role:supervisor", "kind": "free_order"}
    refused = client.post(NEW_LIMIT, free_order)
    assert refused.status_code == 400
    assert "A free order gives back the whole order" in refused.content.decode()

    client.post(
        NEW_LIMIT, {**free_order, "per_grant_max_amount": "200", "order_share_max_percent": ""}
    )
    row = re.search(
        r'<tr [^>]*data-kind="free_order".*?</tr>', client.get(PAGE).content.decode(), re.S
    )
    assert money("200") in row.group(0) and "order value" in row.group(0)


def test_a_person_gets_a_limit_of_their_own_but_only_a_member(
    admin_zhao, agent_li, tenant_acme, globex_agent_li
):
    client = login(admin_zhao)
    response = client.post(NEW_LIMIT, {**AGENTS_REFUND, "who": f"user:{agent_li.pk}"})
    assert response.status_code == 302
    personal = client.get(PAGE).content.decode().split('id="personal-limits"')[1]
    assert "li.acme" in personal and money("300") in personal
    # Someone of another merchant is not offered, and the service refuses them too.
    assert (
        client.post(NEW_LIMIT, {**AGENTS_REFUND, "who": f"user:{globex_agent_li.pk}"}).status_code
        == 400
    )
    with tenancy.activate(tenant_acme), pytest.raises(BadInput, match="not a member"):
        policies.set_limit(
            acting_agent=acting(admin_zhao),
            kind=RemedyKind.GIFT,
            currency="CNY",
            user=globex_agent_li,
            per_grant_max_amount="50",
        )
    assert [(row.user_id, row.kind) for row in limits_of(tenant_acme)] == [(agent_li.pk, "refund")]


def test_removing_a_limit_takes_the_power_away_audited_with_what_it_was(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    client.post(NEW_LIMIT, AGENTS_REFUND)
    [limit] = limits_of(tenant_acme)

    response = client.post(f"/settings/empowerment/limits/{limit.pk}/remove/")

    assert response.status_code == 302
    assert limits_of(tenant_acme) == []
    [removed] = audit_rows(tenant_acme, "empowerment.limit_removed")
    assert removed.changes["per_grant_max_amount"] == ["300.00", None]
    assert removed.changes["details"] == {"role": "agent", "kind": "refund", "currency": "CNY"}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.7/remedies", "is not a public internet address"),
        ("http://127.0.0.1:8080/remedies", "is not a public internet address"),
        ("ftp://orders.acme.example/remedies", "Only http:// and https:// addresses"),
    ],
)
def test_an_execution_url_the_platform_must_not_post_to_is_refused_with_the_reason(
    admin_zhao, tenant_acme, url, reason
):
    response = login(admin_zhao).post(POLICY, {"customer_period_days": "14", "execution_url": url})
    assert response.status_code == 400
    assert reason in response.content.decode()
    policy = policy_of(tenant_acme)
    assert (policy.customer_period_days, policy.execution_url) == (30, "")
    assert audit_rows(tenant_acme, "empowerment.policy_changed") == []


def test_admin_changes_the_period_and_execution_url_audited_old_to_new(
    admin_zhao, tenant_acme, allow_egress
):
    allow_egress("127.0.0.1", 8443)
    url = "https://127.0.0.1:8443/remedies"
    client = login(admin_zhao)

    response = client.post(POLICY, {"customer_period_days": "14", "execution_url": url})

    assert response.status_code == 302
    page = client.get(PAGE).content.decode()
    assert "Per customer in 14 days" in page and f"<code>{url}</code>" in page
    [changed] = audit_rows(tenant_acme, "empowerment.policy_changed")
    assert changed.changes == {"customer_period_days": [30, 14], "execution_url": ["", url]}


def test_rotating_the_execution_secret_shows_the_new_one_and_logs_no_secret(
    owner_chen, tenant_acme
):
    client = login(owner_chen)
    page = client.get(PAGE).content.decode()
    old = policy_of(tenant_acme).execution_secret
    assert f'<code id="execution-secret">{old}</code>' in page
    assert 'data-copy="#execution-secret"' in page and "X-Helpdesk-Signature" in page
    assert "Idempotency-Key" in page and "docs/remedies.md" in page

    assert client.post("/settings/empowerment/rotate-secret/").status_code == 302

    new = policy_of(tenant_acme).execution_secret
    page = client.get(PAGE).content.decode()
    assert new != old and new in page and old not in page
    [rotated] = audit_rows(tenant_acme, "empowerment.policy_changed")
    assert rotated.changes == {"details": {"execution_secret": "rotated"}}
    assert old not in json.dumps(rotated.changes) and new not in json.dumps(rotated.changes)


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_open_or_change_the_limits(
    request, person, tenant_acme, admin_zhao
):
    login(admin_zhao).post(NEW_LIMIT, AGENTS_REFUND)
    [limit] = limits_of(tenant_acme)
    user = request.getfixturevalue(person)
    client = login(user)

    assert client.get(PAGE).status_code == 403
    assert (
        client.post(NEW_LIMIT, {**AGENTS_REFUND, "per_grant_max_amount": "99999"}).status_code
        == 403
    )
    assert client.get(f"/settings/empowerment/limits/{limit.pk}/").status_code == 403
    assert client.post(f"/settings/empowerment/limits/{limit.pk}/remove/").status_code == 403
    assert (
        client.post(POLICY, {"customer_period_days": "1", "execution_url": ""}).status_code == 403
    )
    assert client.post("/settings/empowerment/rotate-secret/").status_code == 403
    assert [row.per_grant_max_amount for row in limits_of(tenant_acme)] == [Decimal("300")]
    with tenancy.activate(tenant_acme), pytest.raises(PermissionDenied):
        policies.update_policy(acting_agent=acting(user), customer_period_days=1)


def test_another_merchants_limit_is_404(admin_zhao, tenant_acme, tenant_globex):
    with tenancy.activate(tenant_globex):
        theirs = RemedyLimit.objects.create(
            role=Role.AGENT, kind=RemedyKind.REFUND, currency="USD", per_grant_max_amount=50
        )
    client = login(admin_zhao)

    assert client.get(f"/settings/empowerment/limits/{theirs.pk}/").status_code == 404
    assert (
        client.post(f"/settings/empowerment/limits/{theirs.pk}/", AGENTS_REFUND).status_code == 404
    )
    assert client.post(f"/settings/empowerment/limits/{theirs.pk}/remove/").status_code == 404
    assert [row.pk for row in limits_of(tenant_globex)] == [theirs.pk]
    assert "USD" not in client.get(PAGE).content.decode().split("<table")[1]


def test_the_demo_merchants_come_with_limits_and_seeding_again_keeps_the_merchants_own(db):
    call_command("seed_demo", stdout=io.StringIO())
    from helpdesk.models import Tenant

    acme = Tenant.objects.get(slug="acme")
    with tenancy.activate(acme):
        agents_refund = RemedyLimit.objects.get(role=Role.AGENT, kind="refund", currency="CNY")
        assert agents_refund.per_grant_max_amount == Decimal("300")
        assert agents_refund.order_share_max_percent == Decimal("50")
        assert RemedyLimit.objects.filter(kind="free_order").get().role == Role.SUPERVISOR
        agents_refund.per_grant_max_amount = Decimal("250")
        agents_refund.save()
        count = RemedyLimit.objects.count()
    call_command("seed_demo", stdout=io.StringIO())
    with tenancy.activate(acme):
        assert RemedyLimit.objects.count() == count
        assert RemedyLimit.objects.get(pk=agents_refund.pk).per_grant_max_amount == Decimal("250")


# --- the documented execution webhook, checked against a real one (docs/remedies.md) ----------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "remedies.md"


def documented(name: str) -> str:
    found = re.search(
        rf"<!-- example: {re.escape(name)} -->\n```\w*\n(?P<code>.*?)\n```", DOCS.read_text(), re.S
    )
    assert found, f"docs/remedies.md no longer has the example {name!r}"
    return found.group("code")


def test_the_documented_verifier_accepts_a_real_execution_webhook_and_its_body_is_as_documented(
    admin_zhao, agent_li, tenant_acme, acme_ticket, allow_egress, django_capture_on_commit_callbacks
):
    client = login(admin_zhao)
    client.post(NEW_LIMIT, AGENTS_REFUND)
    with Receiver() as order_system:
        allow_egress("127.0.0.1", order_system.port)
        client.post(POLICY, {"customer_period_days": "30", "execution_url": order_system.url()})
        secret = policy_of(tenant_acme).execution_secret
        with tenancy.activate(tenant_acme), django_capture_on_commit_callbacks(execute=True):
            grant_remedy(
                acting_agent=acting(agent_li), ticket=acme_ticket, kind="refund", amount="80"
            )
    [seen] = order_system.received
    namespace: dict[str, Any] = {}
    code = documented("python-verify").replace("your-execution-secret", secret)
    exec(compile(code, "docs/remedies.md", "exec"), namespace)

    remedy = namespace["verified_remedy"](seen.headers, seen.body)

    assert remedy["remedy"]["amount"] == "80.00" and remedy["remedy"]["kind"] == "refund"
    assert remedy["idempotency_key"] == seen.headers["Idempotency-Key"]
    example = json.loads(documented("execution body"))
    assert set(remedy) == set(example) and set(remedy["remedy"]) == set(example["remedy"])
    with pytest.raises(ValueError, match="bad signature"):
        namespace["verified_remedy"](seen.headers, seen.body.replace(b"80.00", b"800.00"))
