"""The remedies REST API: list and grant a ticket's remedies, and what the caller may still
give, with the tickets API's keys, sessions and error format."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from escalation.models import Remedy, RemedyKind, RemedyLimit
from helpdesk import tenancy
from helpdesk.models import ApiKey, ApiScope, Role
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets.models import Order
from tickets.services import open_ticket

pytestmark = pytest.mark.django_db


def key_client(tenant, user, scopes=(ApiScope.READ, ApiScope.WRITE)) -> APIClient:
    _, token = ApiKey.issue(tenant=tenant, acting_user=user, name="test", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def remedies_of(tenant) -> list[Remedy]:
    with tenancy.activate(tenant):
        return list(Remedy.objects.all())


def test_a_grant_within_the_limit_is_201_and_listed(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit
):
    client = key_client(tenant_acme, agent_li)
    url = f"/api/v1/tickets/{acme_ticket.number}/remedies/"
    response = client.post(
        url, {"kind": "refund", "amount": "80.50", "note": "漏油"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "refund"
    assert body["amount"] == "80.50"
    assert body["currency"] == "CNY"
    assert body["order"] == "SO20260815"
    assert body["granted_by"] == "li.acme"
    assert body["execution"] == "manual"  # no order system connected

    listed = client.get(url).json()["results"]
    assert [(r["kind"], r["amount"], r["note"]) for r in listed] == [("refund", "80.50", "漏油")]
    with tenancy.activate(tenant_acme):
        assert Order.objects.get().refunded_amount == Decimal("80.50")


def test_a_grant_past_the_limit_is_202_sent_for_approval_naming_the_limit_and_gives_nothing(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit
):
    response = key_client(tenant_acme, agent_li).post(
        f"/api/v1/tickets/{acme_ticket.number}/remedies/",
        {"kind": "refund", "amount": "100.01"},
        format="json",
    )
    assert response.status_code == 202
    asked = response.json()["approval_request"]
    assert (asked["state"], asked["kind"], asked["currency"]) == ("pending", "refund", "CNY")
    assert asked["amount"] == "100.01"
    assert asked["refusal_limit"] == "per_grant"
    assert "at most CN¥100.00, CN¥0.01 over" in asked["refusal"]
    assert asked["remedy"] is None
    assert remedies_of(tenant_acme) == []
    with tenancy.activate(tenant_acme):
        assert Order.objects.get().refunded_amount == 0


def test_an_amount_must_be_exact(tenant_acme, agent_li, acme_ticket, agents_refund_limit):
    client = key_client(tenant_acme, agent_li)
    url = f"/api/v1/tickets/{acme_ticket.number}/remedies/"
    for amount in (10.5, "10.555", "ten", None, True, [1]):
        response = client.post(url, {"kind": "refund", "amount": amount}, format="json")
        assert response.status_code == 400, amount
        assert response.json()["code"] == "bad_input"
    assert client.post(url, ["refund"], format="json").status_code == 400
    assert remedies_of(tenant_acme) == []


def test_the_allowance_says_per_kind_what_may_still_be_given(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit
):
    client = key_client(tenant_acme, agent_li)
    url = f"/api/v1/tickets/{acme_ticket.number}/allowance/"
    body = client.get(url).json()
    assert body["currency"] == "CNY"
    assert body["order"] == "SO20260815"
    allowances = {a["kind"]: a for a in body["allowances"]}
    assert list(allowances) == list(RemedyKind.values)
    assert allowances["refund"]["empowered"] is True
    assert allowances["refund"]["amount"] == "100.00"
    assert allowances["refund"]["binding_limit"] == "per_grant"
    assert allowances["gift"]["empowered"] is False
    assert allowances["gift"]["amount"] is None

    client.post(
        f"/api/v1/tickets/{acme_ticket.number}/remedies/",
        {"kind": "refund", "amount": "250"},
        format="json",
    )  # refused: past ¥100
    for amount in ("100", "100", "50"):
        client.post(
            f"/api/v1/tickets/{acme_ticket.number}/remedies/",
            {"kind": "refund", "amount": amount},
            format="json",
        )
    # ¥299 paid, ¥250 refunded: the order's rest binds now.
    refund = {a["kind"]: a for a in client.get(url).json()["allowances"]}["refund"]
    assert (refund["amount"], refund["binding_limit"]) == ("49.00", "order_refundable")


def test_a_person_limit_overrides_the_role_in_the_allowance(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            user=agent_li, kind=RemedyKind.REFUND, currency="CNY", per_grant_max_amount=20
        )
    body = login(agent_li).get(f"/api/v1/tickets/{acme_ticket.number}/allowance/").json()
    refund = {a["kind"]: a for a in body["allowances"]}["refund"]
    assert refund["amount"] == "20.00"


def test_a_read_only_key_cannot_grant(tenant_acme, agent_li, acme_ticket, agents_refund_limit):
    client = key_client(tenant_acme, agent_li, scopes=[ApiScope.READ])
    url = f"/api/v1/tickets/{acme_ticket.number}/remedies/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"kind": "refund", "amount": "1"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert remedies_of(tenant_acme) == []


def test_globex_tickets_are_404(tenant_acme, agent_li, acme_ticket, tenant_globex):
    with tenancy.activate(tenant_globex):
        for subject in ("Tent pole", "Lantern"):
            open_ticket(
                acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="chat"
            )
    client = key_client(tenant_acme, agent_li)
    # Globex has a ticket #2, acme does not.
    assert client.get("/api/v1/tickets/2/remedies/").status_code == 404
    assert client.get("/api/v1/tickets/2/allowance/").status_code == 404
    response = client.post(
        "/api/v1/tickets/2/remedies/", {"kind": "gift", "amount": "1"}, format="json"
    )
    assert response.status_code == 404
    assert remedies_of(tenant_globex) == []


def test_a_session_grants_like_a_key(tenant_acme, agent_li, acme_ticket, agents_refund_limit):
    from rest_framework.test import APIClient as Client

    client = Client(enforce_csrf_checks=False)
    client.force_login(agent_li)
    response = client.post(
        f"/api/v1/tickets/{acme_ticket.number}/remedies/",
        {"kind": "refund", "amount": "5"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["granted_by"] == "li.acme"


def test_anonymous_calls_are_refused(acme_ticket):
    assert APIClient().get(f"/api/v1/tickets/{acme_ticket.number}/allowance/").status_code == 401


def test_an_agent_without_a_limit_is_not_empowered(tenant_acme, agent_li, acme_ticket):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.SUPERVISOR, kind=RemedyKind.REFUND, currency="CNY", per_grant_max_amount=1
        )
    body = key_client(tenant_acme, agent_li).get(f"/api/v1/tickets/{acme_ticket.number}/allowance/")
    assert all(not a["empowered"] for a in body.json()["allowances"])
