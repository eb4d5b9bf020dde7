"""Owners and admins connect a phone line under Settings → Channels: its number, the Twilio
auth token (kept encrypted), greetings per language, and the URLs to paste into Twilio and the
PBX."""

from __future__ import annotations

import pytest

from channels_in.models import ChannelAccount, PhoneLine
from channels_in.phone_lines import auth_token
from helpdesk import tenancy
from tests.channels_in.test_phone import TOKEN, corpus_form, post_twilio, twiml
from tests.conftest import login
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

FORM = {
    "name": "售后热线",
    "number": "021 5555 0100",
    "auth_token": TOKEN,
    "group": "",
    "ring_seconds": "25",
    "greeting_zh_hans": "您好，欢迎致电 Acme 家电售后。",
    "greeting_en": "Hello, this is Acme after-sales.",
}


def test_an_admin_connects_a_phone_line_and_sees_the_urls_to_paste(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    response = client.post("/settings/channels/new/phone/", FORM)
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.get(kind="phone")
        line = PhoneLine.objects.get(account=account)
        assert line.number == "+862155550100" and line.ring_seconds == 25
        assert line.greetings["zh-hans"] == "您好，欢迎致电 Acme 家电售后。"
        assert TOKEN not in line.auth_token_encrypted and auth_token(line) == TOKEN
        audit = AuditEvent.objects.get(action="channel.created")
        assert audit.changes["number"] == [None, "+862155550100"]
    assert response["Location"] == f"/settings/channels/{account.pk}/"
    page = client.get(response["Location"]).content.decode()
    endpoint = f"http://testserver/inbound/acme/phone/{account.pk}/"
    assert f"{endpoint}?event=voice" in page and f"{endpoint}?event=status" in page
    assert f"{endpoint}?event=pbx" in page and account.inbound_secret in page
    assert TOKEN not in page  # the token never goes back to the browser
    assert "An auth token is saved." in page
    # Pasted into Twilio as shown, the voice URL answers with the merchant's own greeting.
    answer = twiml(post_twilio(account, "voice", corpus_form("01_incoming_call")))
    assert answer.find("Say").text == "您好，欢迎致电 Acme 家电售后。"
    assert "售后热线" in client.get("/settings/channels/").content.decode()


def test_editing_a_line_keeps_the_saved_token_when_the_field_is_empty(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    client.post("/settings/channels/new/phone/", FORM)
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.get(kind="phone")
    response = client.post(
        f"/settings/channels/{account.pk}/",
        {**FORM, "auth_token": "", "greeting_en": "", "ring_seconds": "30"},
    )
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        line = PhoneLine.objects.get(account=account)
        assert auth_token(line) == TOKEN and line.ring_seconds == 30
        assert line.greetings == {"zh-hans": "您好，欢迎致电 Acme 家电售后。"}
        changed = AuditEvent.objects.get(action="channel.updated").changes
        assert changed["ring_seconds"] == [25, 30] and "auth_token" not in changed


def test_a_number_that_is_none_is_refused_beside_its_field(admin_zhao, tenant_acme):
    response = login(admin_zhao).post(
        "/settings/channels/new/phone/", {**FORM, "number": "hotline"}
    )
    assert response.status_code == 400
    assert "hotline is not a phone number" in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not ChannelAccount.objects.filter(kind="phone").exists()


def test_agents_cannot_manage_phone_lines_and_other_merchants_get_404(
    agent_li, admin_zhao, tenant_acme, tenant_globex
):
    assert login(agent_li).get("/settings/channels/new/phone/").status_code == 403
    assert login(agent_li).post("/settings/channels/new/phone/", FORM).status_code == 403
    login(admin_zhao).post("/settings/channels/new/phone/", FORM)
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.get(kind="phone")
    from tests.conftest import _member

    globex_admin = _member(tenant_globex, "zhao.globex", "admin").user
    assert login(globex_admin).get(f"/settings/channels/{account.pk}/").status_code == 404
