"""Owners and admins connect and edit JSON API channels under /settings/channels/: a name, a
callback URL the egress guard allows, the endpoint and the signing secret to copy; nobody else
can, and another merchant's channel is 404."""

from __future__ import annotations

import pytest

from channels_in import api_channels
from channels_in.models import ApiChannel, ChannelAccount
from helpdesk import tenancy
from helpdesk.errors import EgressRefused, PermissionDenied
from helpdesk.permissions import acting_agent_for
from tests.conftest import login
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db

CALLBACK = "https://127.0.0.1:8443/helpdesk/replies"


@pytest.fixture
def callback_allowed(allow_egress) -> str:
    """The callback host let through the egress guard, as an operator would for a test."""
    allow_egress("127.0.0.1", 8443)
    return CALLBACK


def audit_rows(tenant, action: str) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=action))


def only_api_channel(tenant) -> ApiChannel:
    with tenancy.activate(tenant):
        return ApiChannel.objects.select_related("account").get()


def test_admin_connects_an_api_channel_and_sees_its_endpoint_and_secret(
    admin_zhao, tenant_acme, callback_allowed
):
    client = login(admin_zhao)
    assert "Connect an API channel" in client.get("/settings/channels/").content.decode()
    response = client.post(
        "/settings/channels/new/api/", {"name": "Acme 商城", "callback_url": callback_allowed}
    )
    api = only_api_channel(tenant_acme)
    assert response.status_code == 302
    assert response.url == f"/settings/channels/{api.account_id}/"
    assert api.account.kind == "api" and api.callback_url == CALLBACK
    page = client.get(response.url).content.decode()
    assert f"http://testserver/inbound/acme/api/{api.account_id}/" in page
    assert api.account.inbound_secret in page
    assert 'href="/settings/webhooks/"' in page
    listing = client.get("/settings/channels/").content.decode()
    assert f'href="/settings/channels/{api.account_id}/"' in listing and CALLBACK in listing
    [created] = audit_rows(tenant_acme, "channel.created")
    assert created.changes == {
        "name": [None, "Acme 商城"],
        "callback_url": [None, CALLBACK],
        "details": {"channel": "api"},
    }


def test_a_channel_without_a_callback_url_only_receives(admin_zhao, tenant_acme):
    response = login(admin_zhao).post(
        "/settings/channels/new/api/", {"name": "Inbound only", "callback_url": ""}
    )
    assert response.status_code == 302
    assert only_api_channel(tenant_acme).callback_url == ""


@pytest.mark.parametrize(
    ("callback_url", "reason"),
    [
        ("http://10.0.0.7/hooks", "is not a public internet address"),
        ("http://127.0.0.1:8080/hooks", "is not a public internet address"),
        ("ftp://files.acme.example/hooks", "Only http:// and https:// addresses"),
        ("https://user:pw@hooks.acme.example/", "must not contain a user name or password"),
    ],
)
def test_a_callback_url_the_platform_must_not_post_to_is_refused_with_the_reason(
    owner_chen, tenant_acme, callback_url, reason
):
    response = login(owner_chen).post(
        "/settings/channels/new/api/", {"name": "Acme 商城", "callback_url": callback_url}
    )
    assert response.status_code == 400
    assert reason in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not ChannelAccount.objects.exists()
        assert not AuditEvent.objects.exists()


def test_admin_edits_the_name_and_callback_url_audited_old_and_new(
    admin_zhao, tenant_acme, callback_allowed, allow_egress
):
    client = login(admin_zhao)
    client.post("/settings/channels/new/api/", {"name": "Shop", "callback_url": callback_allowed})
    api = only_api_channel(tenant_acme)
    url = f"/settings/channels/{api.account_id}/"
    assert 'value="Shop"' in client.get(url).content.decode()

    refused = client.post(url, {"name": "Shop", "callback_url": "http://192.168.1.5/"})
    assert refused.status_code == 400
    assert "is not a public internet address" in refused.content.decode()
    assert only_api_channel(tenant_acme).callback_url == CALLBACK

    allow_egress("127.0.0.1", 9443)
    new_callback = "https://127.0.0.1:9443/v2/replies"
    response = client.post(url, {"name": "Shop 2", "callback_url": new_callback})
    assert response.status_code == 302
    api = only_api_channel(tenant_acme)
    assert (api.account.name, api.callback_url) == ("Shop 2", new_callback)
    [updated] = audit_rows(tenant_acme, "channel.updated")
    assert updated.changes == {
        "name": ["Shop", "Shop 2"],
        "callback_url": [CALLBACK, new_callback],
    }
    client.post(url, {"name": "Shop 2", "callback_url": new_callback})
    assert len(audit_rows(tenant_acme, "channel.updated")) == 1  # nothing changed: no row


def test_admin_rotates_the_signing_secret_and_pauses_the_channel(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    client.post("/settings/channels/new/api/", {"name": "Shop", "callback_url": ""})
    api = only_api_channel(tenant_acme)
    old_secret = api.account.inbound_secret
    url = f"/settings/channels/{api.account_id}/"
    page = client.post(url + "rotate-secret/", follow=True).content.decode()
    new_secret = only_api_channel(tenant_acme).account.inbound_secret
    assert new_secret != old_secret
    assert new_secret in page and old_secret not in page
    assert "The old one works until" in page and "The previous secret is accepted until" in page
    client.post(url + "pause/")
    assert only_api_channel(tenant_acme).account.paused
    assert "Paused by zhao.acme" in client.get(url).content.decode()


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_connect_or_edit_api_channels(person, request, tenant_acme):
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.create(kind="api", name="Shop")
        ApiChannel.objects.create(account=account)
    client = login(request.getfixturevalue(person))
    assert client.get("/settings/channels/new/api/").status_code == 403
    form = {"name": "Hijacked", "callback_url": ""}
    assert client.post("/settings/channels/new/api/", form).status_code == 403
    assert client.get(f"/settings/channels/{account.pk}/").status_code == 403
    assert client.post(f"/settings/channels/{account.pk}/", form).status_code == 403
    with tenancy.activate(tenant_acme):
        assert ChannelAccount.objects.get().name == "Shop"
        assert not AuditEvent.objects.exists()


def test_the_services_refuse_a_supervisor_before_writing(supervisor_wang, tenant_acme):
    with tenancy.activate(tenant_acme):
        acting = acting_agent_for(supervisor_wang, tenant_acme)
        with pytest.raises(PermissionDenied):
            api_channels.create_api_channel(acting_agent=acting, name="Sneaky")
        assert not ChannelAccount.objects.exists()


def test_the_service_names_the_field_the_egress_guard_refused(admin_zhao, tenant_acme):
    with tenancy.activate(tenant_acme):
        acting = acting_agent_for(admin_zhao, tenant_acme)
        with pytest.raises(EgressRefused) as refused:
            api_channels.create_api_channel(
                acting_agent=acting, name="Shop", callback_url="http://169.254.169.254/latest"
            )
        assert refused.value.extra["field"] == "callback_url"
        assert not ChannelAccount.objects.exists()


def test_another_merchants_api_channel_answers_404_and_stays_untouched(
    admin_zhao, tenant_globex, tenant_acme
):
    with tenancy.activate(tenant_globex):
        globex = ChannelAccount.objects.create(kind="api", name="Globex app")
        ApiChannel.objects.create(account=globex)
    secret = globex.inbound_secret
    client = login(admin_zhao)
    url = f"/settings/channels/{globex.pk}/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Mine now", "callback_url": ""}).status_code == 404
    for action in ("rotate-secret", "pause", "resume"):
        assert client.post(f"{url}{action}/").status_code == 404
    with tenancy.activate(tenant_globex):
        globex.refresh_from_db()
        assert (globex.name, globex.inbound_secret, globex.paused) == ("Globex app", secret, False)
