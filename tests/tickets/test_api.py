"""The REST API sees exactly one merchant: the one its key or session belongs to."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from helpdesk import tenancy
from helpdesk.models import ApiKey
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def tickets_at_both(tenant_acme, tenant_globex):
    with tenancy.activate(tenant_acme):
        services.open_ticket(
            acting_agent=SYSTEM,
            customer=CustomerFactory(name="李伟"),
            subject="退货",
            channel="email",
        )
    with tenancy.activate(tenant_globex):
        for subject in ("Tent pole", "Lantern"):
            services.open_ticket(
                acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="chat"
            )


def key_client(tenant, user) -> APIClient:
    _, token = ApiKey.issue(tenant=tenant, acting_user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_an_api_key_lists_only_its_merchants_tickets(tickets_at_both, tenant_acme, agent_li):
    response = key_client(tenant_acme, agent_li).get("/api/v1/tickets/")
    assert response.status_code == 200
    assert [t["subject"] for t in response.json()["results"]] == ["退货"]
    assert tenancy.current_tenant() is None  # nothing outlives the request


def test_another_merchants_ticket_number_is_404(tickets_at_both, tenant_acme, agent_li):
    client = key_client(tenant_acme, agent_li)
    assert client.get("/api/v1/tickets/1/").json()["subject"] == "退货"
    assert client.get("/api/v1/tickets/2/").status_code == 404  # globex has #2, acme does not


def test_a_wrong_or_revoked_key_is_401(tickets_at_both, tenant_acme, agent_li):
    from django.utils import timezone

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer hd_nothere_secret")
    assert client.get("/api/v1/tickets/").status_code == 401
    key, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="old")
    key.revoked_at = timezone.now()
    key.save()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/tickets/").status_code == 401


def test_a_key_of_someone_who_left_the_merchant_stops_working(
    tickets_at_both, tenant_acme, agent_li
):
    client = key_client(tenant_acme, agent_li)
    agent_li.memberships.all().delete()
    assert client.get("/api/v1/tickets/").status_code == 401


def test_a_signed_in_agent_uses_the_api_with_their_session(tickets_at_both, globex_agent_li):
    response = login(globex_agent_li).get("/api/v1/tickets/", {"status": "all"})
    assert sorted(t["subject"] for t in response.json()["results"]) == ["Lantern", "Tent pole"]


def test_anonymous_api_calls_are_refused():
    assert APIClient().get("/api/v1/tickets/").status_code == 401
