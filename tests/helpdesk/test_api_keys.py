"""API keys: refused when revoked, expired, or their person is deactivated or gone; scopes;
the revoke command and the settings page, both audited."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from helpdesk import tenancy
from helpdesk.models import ApiKey, Role
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db


def api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def audit_actions(tenant) -> list[tuple[str, str]]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.order_by("pk").values_list("action", "actor_label"))


@pytest.fixture
def owner_zhang(tenant_acme):
    user = UserFactory(username="zhang.acme")
    MembershipFactory(tenant=tenant_acme, user=user, role=Role.OWNER)
    return user


# --- refusals -------------------------------------------------------------------------------


def test_an_expired_key_is_refused(tenant_acme, agent_li):
    key, token = ApiKey.issue(
        tenant=tenant_acme,
        acting_user=agent_li,
        name="old",
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    assert api(token).get("/api/v1/tickets/").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api(token).get("/api/v1/tickets/")
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_a_key_of_a_deactivated_person_is_refused(tenant_acme, agent_li):
    _, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="sync")
    agent_li.is_active = False
    agent_li.save()
    response = api(token).get("/api/v1/tickets/")
    assert response.status_code == 401
    assert "deactivated" in response.json()["message"]


def test_a_key_of_a_person_who_left_the_merchant_is_refused_though_they_work_elsewhere(
    tenant_acme, tenant_globex, agent_li
):
    MembershipFactory(tenant=tenant_globex, user=agent_li, role=Role.ADMIN)
    _, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="sync")
    agent_li.memberships.filter(tenant=tenant_acme).delete()
    response = api(token).get("/api/v1/tickets/")
    assert response.status_code == 401
    assert "no longer works for this merchant" in response.json()["message"]


# --- scopes ---------------------------------------------------------------------------------


def test_a_read_only_key_reads_but_cannot_write(tenant_acme, agent_li):
    _, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="reports")
    assert api(token).get("/api/v1/tickets/").status_code == 200
    response = api(token).post("/api/v1/tickets/", {"subject": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["message"] == "This API key lacks the write scope"


def test_a_write_key_gets_past_the_scope_check(tenant_acme, agent_li):
    _, token = ApiKey.issue(
        tenant=tenant_acme, acting_user=agent_li, name="sync", scopes=["read", "write"]
    )
    # Past the scope check, an empty ticket is refused for what it lacks, no longer "no scope".
    response = api(token).post("/api/v1/tickets/", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_a_write_only_key_cannot_read(tenant_acme, agent_li):
    _, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="push", scopes=["write"])
    response = api(token).get("/api/v1/tickets/")
    assert response.status_code == 403
    assert "lacks the read scope" in response.json()["message"]


# --- commands -------------------------------------------------------------------------------


def test_issue_api_key_takes_scopes_and_an_expiry_and_is_audited(tenant_acme, agent_li):
    out = StringIO()
    call_command(
        "issue_api_key",
        "--tenant=acme",
        "--user=li.acme",
        "--scopes=read,write",
        "--expires=2099-01-31",
        stdout=out,
    )
    token = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.objects.get()
    assert key.scopes == ["read", "write"]
    assert key.expires_at.isoformat() == "2099-02-01T00:00:00+00:00"  # through the 31st
    assert api(token).post("/api/v1/tickets/", {}, format="json").status_code == 400
    assert audit_actions(tenant_acme) == [("api_key.created", "manage.py issue_api_key")]


def test_issue_api_key_refuses_an_unknown_scope_or_a_past_expiry(tenant_acme, agent_li):
    with pytest.raises(CommandError, match="--scopes"):
        call_command("issue_api_key", "--tenant=acme", "--user=li.acme", "--scopes=delete")
    with pytest.raises(CommandError, match="future"):
        call_command("issue_api_key", "--tenant=acme", "--user=li.acme", "--expires=2001-01-01")
    assert not ApiKey.objects.exists()


def test_the_revoke_command_stops_the_key_and_is_audited(tenant_acme, agent_li):
    key, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="sync")
    out = StringIO()
    call_command("revoke_api_key", "--tenant=acme", key.prefix, stdout=out)
    assert f"Revoked API key {key.prefix}" in out.getvalue()
    assert api(token).get("/api/v1/tickets/").status_code == 401
    assert audit_actions(tenant_acme) == [("api_key.revoked", "manage.py revoke_api_key")]

    call_command("revoke_api_key", "--tenant=acme", key.prefix, stdout=StringIO())
    assert len(audit_actions(tenant_acme)) == 1  # revoking twice changes nothing


def test_the_revoke_command_does_not_reach_another_merchants_key(
    tenant_acme, tenant_globex, agent_li
):
    key, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="sync")
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_api_key", "--tenant=globex", key.prefix)
    assert api(token).get("/api/v1/tickets/").status_code == 200


# --- the settings page ----------------------------------------------------------------------


def test_an_admin_creates_a_key_sees_its_token_once_and_it_works(tenant_acme, admin_zhao):
    client = login(admin_zhao)
    page = client.post(
        "/settings/api-keys/",
        {"name": "Shop sync", "scopes": ["read", "write"], "expires_in_days": "30"},
    )
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    html = page.content.decode()
    token = html.split('id="new-api-token">')[1].split("<")[0]
    assert token.startswith("hd_") and "shown only this once" in html

    key = ApiKey.objects.get()
    assert (key.name, key.scopes, key.acting_user) == ("Shop sync", ["read", "write"], admin_zhao)
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)
    assert api(token).get("/api/v1/tickets/").status_code == 200
    assert token not in client.get("/settings/api-keys/").content.decode()  # never again
    assert audit_actions(tenant_acme) == [("api_key.created", "zhao.acme")]


def test_an_admin_revokes_a_key_from_the_page_and_it_is_audited(tenant_acme, admin_zhao, agent_li):
    key, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="Old sync")
    client = login(admin_zhao)
    assert "Old sync" in client.get("/settings/api-keys/").content.decode()
    response = client.post(f"/settings/api-keys/{key.pk}/revoke/")
    assert response.status_code == 302
    assert api(token).get("/api/v1/tickets/").status_code == 401
    assert "Revoked" in client.get("/settings/api-keys/").content.decode()
    assert audit_actions(tenant_acme) == [("api_key.revoked", "zhao.acme")]


def test_an_agent_cannot_see_create_or_revoke_keys_and_nothing_is_written(
    tenant_acme, agent_li, owner_zhang
):
    key, token = ApiKey.issue(tenant=tenant_acme, acting_user=owner_zhang, name="sync")
    client = login(agent_li)
    assert client.get("/settings/api-keys/").status_code == 403
    response = client.post("/settings/api-keys/", {"name": "mine", "scopes": ["read"]})
    assert response.status_code == 403
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 403
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().revoked_at is None
    assert audit_actions(tenant_acme) == []


def test_an_admin_cannot_see_or_revoke_another_merchants_keys(
    tenant_acme, tenant_globex, admin_zhao, globex_agent_li
):
    key, token = ApiKey.issue(tenant=tenant_globex, acting_user=globex_agent_li, name="Globex")
    client = login(admin_zhao)
    assert "Globex" not in client.get("/settings/api-keys/").content.decode()
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404
    assert api(token).get("/api/v1/tickets/").status_code == 200


def test_a_key_needs_a_name_and_a_scope(tenant_acme, admin_zhao):
    page = login(admin_zhao).post("/settings/api-keys/", {"name": "", "scopes": []})
    assert page.status_code == 200
    assert "This field is required" in page.content.decode()
    assert not ApiKey.objects.exists()
