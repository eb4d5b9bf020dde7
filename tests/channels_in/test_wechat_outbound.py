"""Agents answer WeChat customers through the Customer Service Message API, checked against a
local server speaking WeChat's documented JSON (tests/channels_in/wechat_server.py): the access
token is cached and renewed when WeChat says it expired, images are uploaded first, and the
48-hour window is told to the agent with the customer's other channels."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from channels_in import outbound
from channels_in.models import ChannelAccount
from channels_in.tasks import deliver_message
from helpdesk import tenancy
from helpdesk.errors import BadInput
from tests.channels_in import wechat_server
from tests.channels_in.wechat_server import post_push, text_xml
from tests.conftest import acting, login
from tickets.models import CustomerIdentity, IdentityKind, Message, Ticket
from tickets.services import reply_to_customer

pytestmark = pytest.mark.django_db(transaction=True)

# Fixtures of the WeChat tests.
acme_wechat = wechat_server.acme_wechat
wechat_api = wechat_server.wechat_api

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def wechat_ticket(account: ChannelAccount, *, hours_ago: float = 0) -> Ticket:
    created = int(time.time() - hours_ago * 3600)
    assert post_push(account, text_xml(create_time=created)).status_code == 200
    with tenancy.activate(account.tenant):
        return Ticket.objects.get()


def reply(account: ChannelAccount, ticket: Ticket, user, text: str, **extra) -> Message:
    with tenancy.activate(account.tenant):
        message = reply_to_customer(acting_agent=acting(user), ticket=ticket, text=text, **extra)
        message.refresh_from_db()
        return message


def test_an_agents_reply_goes_to_the_customers_openid_as_a_text_message(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat)
    sent = reply(acme_wechat, ticket, supervisor_wang, "您好，订单今天发货。")
    assert sent.delivery_state == Message.Delivery.SENT
    assert wechat_api.sent == [
        {"touser": "oCustomer0001", "msgtype": "text", "text": {"content": "您好，订单今天发货。"}}
    ]
    assert sent.metadata["to"] == "oCustomer0001"
    assert sent.channel_account_id == acme_wechat.pk


def test_the_access_token_is_cached_and_renewed_when_wechat_says_it_expired(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat)
    reply(acme_wechat, ticket, supervisor_wang, "第一条")
    reply(acme_wechat, ticket, supervisor_wang, "第二条")
    assert wechat_api.tokens_issued == 1  # the second reply used the cached token

    wechat_api.expire_tokens()  # WeChat now answers 42001 to the cached token
    third = reply(acme_wechat, ticket, supervisor_wang, "第三条")
    assert third.delivery_state == Message.Delivery.SENT
    assert wechat_api.tokens_issued == 2
    assert [m["text"]["content"] for m in wechat_api.sent] == ["第一条", "第二条", "第三条"]


def test_a_token_wechat_does_not_know_is_renewed_too(acme_wechat, wechat_api, supervisor_wang):
    from django.core.cache import cache

    ticket = wechat_ticket(acme_wechat)
    with tenancy.activate(acme_wechat.tenant):
        cache.set(f"wechat:token:{acme_wechat.pk}:{wechat_server.APP_ID}", "FORGED")
    assert reply(acme_wechat, ticket, supervisor_wang, "好的").delivery_state == "sent"
    assert wechat_api.tokens_issued == 1 and len(wechat_api.sent) == 1


def test_an_attached_image_is_uploaded_and_sent_after_the_text(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat)
    photo = SimpleUploadedFile("物流单.png", PNG, content_type="image/png")
    sent = reply(acme_wechat, ticket, supervisor_wang, "这是物流单", attachments=[photo])
    assert sent.delivery_state == Message.Delivery.SENT
    text, image = wechat_api.sent
    assert text["msgtype"] == "text"
    assert image == {
        "touser": "oCustomer0001",
        "msgtype": "image",
        "image": {"media_id": "UPLOADED_1"},
    }
    assert wechat_api.uploads["UPLOADED_1"] == PNG


def test_a_file_wechat_cannot_carry_fails_the_reply_with_the_reason_and_sends_nothing(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat)
    pdf = SimpleUploadedFile("invoice.pdf", b"%PDF-1.4 invoice", content_type="application/pdf")
    sent = reply(acme_wechat, ticket, supervisor_wang, "发票见附件", attachments=[pdf])
    assert sent.delivery_state == Message.Delivery.FAILED
    assert "images" in sent.delivery_error and "invoice.pdf" in sent.delivery_error
    assert wechat_api.sent == []


def test_a_reply_cut_short_by_a_busy_wechat_sends_only_the_rest_on_retry(
    acme_wechat, wechat_api, supervisor_wang, monkeypatch
):
    ticket = wechat_ticket(acme_wechat)
    photo = SimpleUploadedFile("photo.png", PNG, content_type="image/png")
    with tenancy.activate(acme_wechat.tenant):
        with monkeypatch.context() as queue_only:  # the test plays the worker
            queue_only.setattr(deliver_message, "delay", lambda *args, **kwargs: None)
            message = reply_to_customer(
                acting_agent=acting(supervisor_wang),
                ticket=ticket,
                text="照片如下",
                attachments=[photo],
            )
        wechat_api.busy["image"] = 1  # the text goes out, then WeChat is busy
        with pytest.raises(outbound.DeliveryDeferred):
            outbound.deliver(message_id=message.pk, retry_in=30)
        message.refresh_from_db()
        assert message.delivery_state == Message.Delivery.QUEUED and message.is_retrying
        assert "-1" in message.delivery_error
        assert outbound.deliver(message_id=message.pk, after_attempt=1) == Message.Delivery.SENT
    assert [m["msgtype"] for m in wechat_api.sent] == ["text", "image"]  # the text once


def test_outside_the_48_hours_the_agent_is_told_before_writing_with_the_other_channels(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat, hours_ago=50)
    with tenancy.activate(acme_wechat.tenant):
        CustomerIdentity.objects.create(
            customer=ticket.customer, kind=IdentityKind.EMAIL, value="li.wei@example.cn"
        )
        with pytest.raises(BadInput) as refused:
            reply_to_customer(acting_agent=acting(supervisor_wang), ticket=ticket, text="您好")
        assert Message.objects.filter(direction="outbound").count() == 0
    reason = refused.value.message
    assert "48 hours" in reason and "li.wei@example.cn" in reason
    assert f"/tickets/new/?customer={ticket.customer_id}" in reason
    page = login(supervisor_wang).get(f"/tickets/{ticket.number}/").content.decode()
    assert "No reply can be sent from here" in page and "li.wei@example.cn" in page
    assert wechat_api.sent == []


def test_wechats_own_45015_refusal_fails_the_reply_with_the_window_explained(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat)
    wechat_api.out_of_window.add("oCustomer0001")  # e.g. the customer unfollowed meanwhile
    sent = reply(acme_wechat, ticket, supervisor_wang, "您好")
    assert sent.delivery_state == Message.Delivery.FAILED
    assert "48 hours" in sent.delivery_error and "45015" in sent.delivery_error
    assert "no other channel" in sent.delivery_error
    page = login(supervisor_wang).get(f"/tickets/{ticket.number}/").content.decode()
    assert "45015" in page


def test_a_wrong_appsecret_fails_the_reply_and_pauses_the_channel_with_why(
    acme_wechat, wechat_api, supervisor_wang
):
    ticket = wechat_ticket(acme_wechat)
    wechat_api.app_secret = "ffffffffffffffffffffffffffffffff"  # changed in WeChat meanwhile
    sent = reply(acme_wechat, ticket, supervisor_wang, "您好")
    assert sent.delivery_state == Message.Delivery.FAILED
    assert "40125" in sent.delivery_error and "channel paused" in sent.delivery_error
    with tenancy.activate(acme_wechat.tenant):
        acme_wechat.refresh_from_db()
    assert acme_wechat.paused and "AppSecret" in acme_wechat.last_error
