"""Owners and admins connect a live chat under Settings → Channels: its store origins, pre-chat
form and service styles, the script tag to paste, and key rotation with a grace period."""

from __future__ import annotations

from html import unescape

import pytest
from django.test import Client

from channels_in.chat_widget import ChatRefused, widget_for_key
from channels_in.models import ChannelAccount, WebChat
from helpdesk import tenancy
from tests.conftest import login
from tickets.models import AuditEvent, Group

pytestmark = pytest.mark.django_db


def connect(client: Client, **fields: object):
    data = {
        "name": "Store chat",
        "allowed_origins": "https://shop.acme.example/\nhttp://localhost:8080",
    }
    data.update(fields)
    return client.post("/settings/channels/new/chat/", data)


def test_an_admin_connects_a_chat_and_gets_the_script_tag_to_paste(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    with tenancy.activate(tenant_acme):
        expert = Group.objects.create(name="Experts", persona="expert")
    response = connect(
        client,
        prechat_fields=["name", "email"],
        prechat_required=["email"],
        persona_groups=[expert.pk],
    )
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        webchat = WebChat.objects.select_related("account").get()
        assert webchat.allowed_origins == ["https://shop.acme.example", "http://localhost:8080"]
        assert webchat.prechat_fields == ["name", "email"]
        assert webchat.prechat_required == ["email"]
        assert webchat.persona_group_ids == [expert.pk]
        assert webchat.public_key.startswith("acme.")
        assert AuditEvent.objects.filter(action="channel.created").count() == 1
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = unescape(page.content.decode())  # the tag is shown as text, to copy
    assert f'data-key="{webchat.public_key}"' in html
    assert "/static/chat/widget.js" in html
    listing = client.get("/settings/channels/").content.decode()
    assert "Store chat" in listing and "https://shop.acme.example" in listing


def test_an_origin_that_is_not_one_is_refused_with_the_reason(admin_zhao, tenant_acme):
    response = connect(login(admin_zhao), allowed_origins="https://shop.acme.example/checkout")
    assert response.status_code == 400
    assert "is not a store origin" in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not WebChat.objects.exists()


def test_rotating_the_key_keeps_the_old_one_working_for_the_grace_period(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    connect(client)
    with tenancy.activate(tenant_acme):
        webchat = WebChat.objects.get()
    old_key = webchat.public_key
    response = client.post(f"/settings/channels/{webchat.account_id}/rotate-key/")
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        webchat.refresh_from_db()
    assert webchat.public_key != old_key
    assert widget_for_key(old_key).webchat.pk == webchat.pk
    assert widget_for_key(webchat.public_key).webchat.pk == webchat.pk
    with tenancy.activate(tenant_acme):
        WebChat.objects.filter(pk=webchat.pk).update(previous_key_valid_until="2020-01-01T00:00Z")
    with pytest.raises(ChatRefused):
        widget_for_key(old_key)


def test_agents_may_not_and_another_merchants_chat_is_not_found(
    agent_li, admin_zhao, tenant_acme, tenant_globex
):
    assert login(agent_li).get("/settings/channels/new/chat/").status_code == 403
    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="chat", name="Globex chat")
        WebChat.objects.create(account=account, public_key="globex.k", allowed_origins=[])
    admin = login(admin_zhao)
    assert admin.get(f"/settings/channels/{account.pk}/").status_code == 404
    assert admin.post(f"/settings/channels/{account.pk}/rotate-key/").status_code == 404
    with tenancy.activate(tenant_globex):
        assert WebChat.objects.get().public_key == "globex.k"


def test_a_paused_chat_tells_the_store_so_until_it_is_resumed(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    connect(client)
    with tenancy.activate(tenant_acme):
        webchat = WebChat.objects.get()
    config = f"/inbound/chat/{webchat.public_key}/config/"
    store = Client()
    assert store.get(config, HTTP_ORIGIN="https://shop.acme.example").status_code == 200
    client.post(f"/settings/channels/{webchat.account_id}/pause/")
    paused = store.get(config, HTTP_ORIGIN="https://shop.acme.example")
    assert paused.status_code == 403
    assert paused.json()["code"] == "paused"
    client.post(f"/settings/channels/{webchat.account_id}/resume/")
    assert store.get(config, HTTP_ORIGIN="https://shop.acme.example").status_code == 200


def test_a_visitor_token_is_good_only_on_the_channel_that_signed_it(
    admin_zhao, tenant_acme, tenant_globex
):
    from channels_in.chat_widget import token_for, visitor_of_token

    connect(login(admin_zhao))
    with tenancy.activate(tenant_acme):
        acme_chat = WebChat.objects.get()
    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="chat", name="Globex chat")
        globex_chat = WebChat.objects.create(account=account, public_key="globex.k")
    token = token_for(acme_chat, "a" * 32)
    assert visitor_of_token(acme_chat, token) == "a" * 32
    assert visitor_of_token(globex_chat, token) is None
    assert visitor_of_token(acme_chat, token[:-1] + ("x" if token[-1] != "x" else "y")) is None
