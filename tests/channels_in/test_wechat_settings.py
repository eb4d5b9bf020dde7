"""Owners and admins connect a WeChat Official Account under /settings/channels/: token,
EncodingAESKey, AppID and AppSecret (the last two secrets stored encrypted, never shown), the
server URL to paste into WeChat, and a button that asks WeChat for an access token."""

from __future__ import annotations

import pytest

from channels_in.crypto import decrypt_secret
from channels_in.models import ChannelAccount, WeChatAccount
from helpdesk import tenancy
from tests.channels_in import wechat_server
from tests.channels_in.wechat_server import AES_KEY, APP_ID, APP_SECRET, TOKEN, connect_wechat
from tests.conftest import login
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

# Fixtures of the WeChat tests.
wechat_api = wechat_server.wechat_api

FORM = {
    "name": "Acme 公众号",
    "app_id": APP_ID,
    "app_secret": APP_SECRET,
    "token": TOKEN,
    "encoding_aes_key": AES_KEY,
}


def only_wechat(tenant) -> WeChatAccount:
    with tenancy.activate(tenant):
        return WeChatAccount.objects.select_related("account").get()


def audit_rows(tenant, action: str) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def test_admin_connects_a_wechat_account_and_sees_the_server_url_to_paste(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    listing = client.get("/settings/channels/").content.decode()
    assert 'href="/settings/channels/new/wechat/"' in listing
    response = client.post("/settings/channels/new/wechat/", FORM)
    wechat = only_wechat(tenant_acme)
    assert response.status_code == 302
    assert response.url == f"/settings/channels/{wechat.account_id}/"
    assert wechat.account.kind == "wechat"
    assert (wechat.app_id, wechat.token) == (APP_ID, TOKEN)
    # Stored encrypted: neither secret appears as typed, both decrypt to it.
    assert APP_SECRET not in wechat.app_secret_encrypted
    assert AES_KEY not in wechat.encoding_aes_key_encrypted
    assert decrypt_secret(wechat.app_secret_encrypted) == APP_SECRET
    assert decrypt_secret(wechat.encoding_aes_key_encrypted) == AES_KEY

    page = client.get(response.url).content.decode()
    assert f"http://testserver/inbound/acme/wechat/{wechat.account_id}/" in page
    assert TOKEN in page and "safe mode" in page
    assert APP_SECRET not in page and AES_KEY not in page
    assert "WeChat has not verified the server URL yet" in page
    listing = client.get("/settings/channels/").content.decode()
    assert f'href="/settings/channels/{wechat.account_id}/"' in listing and APP_ID in listing
    [created] = audit_rows(tenant_acme, "channel.created")
    assert created.changes["details"] == {
        "channel": "wechat",
        "safe_mode": True,
        "app_secret": True,
    }
    assert APP_SECRET not in str(created.changes)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("app_id", "wx123", "An AppID is wx followed by 16"),
        ("token", "有空格 的token", "The token is 3 to 32 letters and digits"),
        ("encoding_aes_key", "tooshort", "The EncodingAESKey is 43 letters and digits"),
        ("app_secret", "secret with spaces!", "The AppSecret is 32 letters and digits"),
    ],
)
def test_settings_wechat_would_refuse_are_refused_with_the_reason(
    owner_chen, tenant_acme, field, value, reason
):
    response = login(owner_chen).post("/settings/channels/new/wechat/", {**FORM, field: value})
    assert response.status_code == 400
    assert reason in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not ChannelAccount.objects.exists()
        assert not AuditEvent.objects.exists()


def test_editing_keeps_the_saved_secrets_unless_new_ones_are_typed(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    client.post("/settings/channels/new/wechat/", FORM)
    wechat = only_wechat(tenant_acme)
    url = f"/settings/channels/{wechat.account_id}/"
    page = client.get(url).content.decode()
    assert 'value="Acme 公众号"' in page and "An AppSecret is saved" in page

    edited = {
        **FORM,
        "name": "Acme 服务号",
        "token": "newToken42",
        "app_secret": "",
        "encoding_aes_key": "",
    }
    assert client.post(url, edited).status_code == 302
    wechat = only_wechat(tenant_acme)
    assert (wechat.account.name, wechat.token) == ("Acme 服务号", "newToken42")
    assert decrypt_secret(wechat.app_secret_encrypted) == APP_SECRET
    assert decrypt_secret(wechat.encoding_aes_key_encrypted) == AES_KEY

    plain = {**edited, "clear_aes_key": "on"}
    assert client.post(url, plain).status_code == 302
    assert only_wechat(tenant_acme).encoding_aes_key_encrypted == ""
    [*_, renamed, cleared] = audit_rows(tenant_acme, "channel.updated")
    assert renamed.changes["name"] == ["Acme 公众号", "Acme 服务号"]
    assert renamed.changes["token"] == [TOKEN, "newToken42"]
    assert cleared.changes == {"encoding_aes_key": ["set", "removed"]}


def test_the_test_button_fetches_an_access_token_and_says_so(admin_zhao, tenant_acme, wechat_api):
    account = connect_wechat(tenant_acme)
    client = login(admin_zhao)
    page = client.post(f"/settings/channels/{account.pk}/wechat-test/").content.decode()
    assert "WeChat issued an access token" in page and 'class="ok"' in page
    assert wechat_api.tokens_issued == 1
    [tested] = audit_rows(tenant_acme, "channel.connection_tested")
    assert tested.changes["details"] == {"wechat_api": True}


def test_the_test_button_shows_wechats_refusal_of_a_wrong_appsecret(
    admin_zhao, tenant_acme, wechat_api
):
    account = connect_wechat(tenant_acme)
    wechat_api.app_secret = "ffffffffffffffffffffffffffffffff"
    page = login(admin_zhao).post(f"/settings/channels/{account.pk}/wechat-test/").content.decode()
    assert "does not work" in page and "40125" in page and "invalid appsecret" in page


def test_the_test_button_says_when_wechat_cannot_be_reached(admin_zhao, tenant_acme, settings):
    settings.HELPDESK_EGRESS_ALLOW = []
    settings.HELPDESK_WECHAT_API_BASE = "http://127.0.0.1:9"  # refused by the egress guard
    account = connect_wechat(tenant_acme)
    page = login(admin_zhao).post(f"/settings/channels/{account.pk}/wechat-test/").content.decode()
    assert "does not work" in page and "public internet address" in page


def test_the_page_shows_when_wechat_verified_the_server_url(admin_zhao, tenant_acme):
    from django.test import Client

    account = connect_wechat(tenant_acme)
    query = wechat_server.signed_query(echostr="42")
    Client().get(wechat_server.push_url(wechat_server.inbound_path(account), query))
    page = login(admin_zhao).get(f"/settings/channels/{account.pk}/").content.decode()
    assert "WeChat verified the server URL on" in page


def test_agents_and_supervisors_cannot_open_or_test_wechat_settings(
    agent_li, supervisor_wang, tenant_acme
):
    account = connect_wechat(tenant_acme)
    for user in (agent_li, supervisor_wang):
        client = login(user)
        assert client.get("/settings/channels/new/wechat/").status_code == 403
        assert client.post("/settings/channels/new/wechat/", FORM).status_code == 403
        assert client.get(f"/settings/channels/{account.pk}/").status_code == 403
        assert client.post(f"/settings/channels/{account.pk}/wechat-test/").status_code == 403
    with tenancy.activate(tenant_acme):
        assert ChannelAccount.objects.count() == 1


def test_another_merchants_wechat_channel_is_404(admin_zhao, tenant_globex):
    globex = connect_wechat(tenant_globex, name="Globex")
    client = login(admin_zhao)
    assert client.get(f"/settings/channels/{globex.pk}/").status_code == 404
    assert client.post(f"/settings/channels/{globex.pk}/wechat-test/").status_code == 404
    assert client.post(f"/settings/channels/{globex.pk}/", FORM).status_code == 404


def test_the_page_reads_in_chinese_for_a_chinese_admin(admin_zhao, tenant_acme):
    account = connect_wechat(tenant_acme)
    page = login(admin_zhao, language="zh-hans").get(f"/settings/channels/{account.pk}/")
    text = page.content.decode()
    assert "服务器地址" in text and "测试 AppSecret" in text
