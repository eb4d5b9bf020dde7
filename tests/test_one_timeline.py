"""One customer on every channel: 李伟 emails, chats in the store's widget, writes through the
merchant's app (JSON API), on WeChat and calls. Email, chat and the app meet by his address, the
call by the number the app told us, and WeChat (an OpenID says nothing about a person) by the
link a supervisor makes. His page shows one timeline with every channel, and an agent's reply to
each of his messages goes back on the channel it came in on; the call is answered by calling
back, logged on its ticket."""

from __future__ import annotations

import json
import os

import pytest
from asgiref.sync import sync_to_async

from channels_in import phone_calls
from helpdesk import tenancy
from helpdesk.errors import BadInput
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_chat import (
    acme_chat,  # noqa: F401 (fixtures)
    li_online,  # noqa: F401
    next_of,
    run,
    say_hello,
    visitor_socket,
)
from tests.channels_in.test_email_roundtrip import (
    mailbox_on_smtp,  # noqa: F401
    post_mail,
    smtp_server,  # noqa: F401
)
from tests.channels_in.test_json_api import (
    acme_api,  # noqa: F401
    local_server,  # noqa: F401
    message,
    post,
    receiver,  # noqa: F401
)
from tests.channels_in.test_phone import acme_phone, corpus_form, post_twilio  # noqa: F401
from tests.channels_in.wechat_server import acme_wechat, post_push, text_xml, wechat_api  # noqa: F401
from tests.conftest import acting, login
from tests.tickets.test_live_events_redis import redis_channel_layer  # noqa: F401
from tickets import merging, selectors
from tickets.models import Customer, Message, Ticket
from tickets.services import reply_to_customer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]

EMAIL = "li.wei@example.cn"
PHONE = "+8613800138000"


def ticket_on(channel: str) -> Ticket:
    return Ticket.objects.select_related("customer").get(channel=channel)


def test_one_customer_on_five_channels_has_one_timeline_and_is_answered_on_each(
    tenant_acme,
    acme_chat,  # noqa: F811
    li_online,  # noqa: F811
    supervisor_wang,
    mailbox_on_smtp,  # noqa: F811
    smtp_server,  # noqa: F811
    acme_api,  # noqa: F811
    receiver,  # noqa: F811
    acme_wechat,  # noqa: F811
    wechat_api,  # noqa: F811
    acme_phone,  # noqa: F811
):
    agent = li_online
    # 1. Email.
    post_mail(
        mailbox_on_smtp.account,
        customer_mail(sender=f"李伟 <{EMAIL}>", subject="冰箱噪音", message_id="<n1@example.cn>"),
    )
    # 2. The merchant's app, with his address and his number.
    document = message(
        id="app-1",
        text="订单 SO20260001 能改地址吗？",
        customer={"id": "cust-42", "name": "李伟", "email": EMAIL, "phone": PHONE},
    )
    assert post(acme_api, document).status_code == 202
    # 3. A call from that number nobody could take.
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed", CallStatus="busy"))
    # 4. WeChat: an OpenID is nobody we know yet.
    assert post_push(acme_wechat, text_xml("你好，在吗？", openid="oLiWei")).status_code == 200

    # 5. Live chat, giving his address in the pre-chat form; the reply reaches the widget.
    def answer_chat() -> None:
        with tenancy.activate(tenant_acme):
            reply_to_customer(
                acting_agent=acting(agent), ticket=ticket_on("chat"), text="马上为您查询。"
            )

    async def chat() -> dict:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket, lang="zh-hans")
        await socket.send_json_to({"type": "profile", "profile": {"name": "李伟", "email": EMAIL}})
        await next_of(socket, "profile")
        await socket.send_json_to({"type": "message", "id": "c1", "text": "冰箱什么时候送到？"})
        await next_of(socket, "ack")
        await sync_to_async(answer_chat)()
        reply = await next_of(socket, "message")
        await socket.disconnect()
        return reply

    chat_reply = run(chat)
    assert chat_reply["message"]["text"] == "马上为您查询。"

    with tenancy.activate(tenant_acme):
        li_wei = ticket_on("email").customer
        assert {ticket_on(c).customer_id for c in ("email", "api", "phone", "chat")} == {li_wei.pk}
        wechat_customer = ticket_on("wechat").customer
        assert wechat_customer != li_wei
        # The link a supervisor makes: the WeChat follower is 李伟.
        merging.merge_customers(
            acting_agent=acting(supervisor_wang), source=wechat_customer, target=li_wei
        )
        timeline = selectors.customer_timeline(agent=acting(supervisor_wang), customer=li_wei)
        assert {entry.channel for entry in timeline} == {"email", "chat", "api", "wechat", "phone"}
        assert {"call_started", "call_missed"} <= {e.event_kind for e in timeline}
        assert Customer.objects.get(pk=wechat_customer.pk).merged_into == li_wei

        # Each reply goes back on the channel of the message it answers.
        for channel, text in [
            ("email", "噪音问题我们安排上门检查。"),
            ("api", "地址可以修改。"),
            ("wechat", "在的，请问有什么可以帮您？"),
        ]:
            sent = reply_to_customer(
                acting_agent=acting(agent), ticket=ticket_on(channel), text=text
            )
            sent.refresh_from_db()
            assert (sent.channel, sent.delivery_state) == (channel, Message.Delivery.SENT), channel
        # The call has no text channel back: the agent calls and logs the call-back.
        with pytest.raises(BadInput, match="no text channel"):
            reply_to_customer(acting_agent=acting(agent), ticket=ticket_on("phone"), text="您好")
        phone_calls.log_call(
            acting_agent=acting(agent),
            ticket=ticket_on("phone"),
            direction="outbound",
            number=PHONE,
            outcome="answered",
            duration_seconds=180,
            notes="已确认送货时间。",
        )
        outbound = dict(
            Message.objects.filter(direction=Message.Direction.OUTBOUND).values_list(
                "ticket__channel", "channel"
            )
        )
    assert outbound == {
        "email": "email",
        "api": "api",
        "wechat": "wechat",
        "chat": "chat",
        "phone": "phone",
    }

    # Where each reply went: the mail server, the merchant's app, WeChat's API.
    inbox, _port = smtp_server
    assert [rcpt for _from, rcpt, _data in inbox.received] == [[EMAIL]]
    posted = [json.loads(seen.body) for seen in receiver.seen]
    assert [(p["message"]["text"], p["customer"]["id"]) for p in posted] == [
        ("地址可以修改。", "cust-42")
    ]
    assert [m["touser"] for m in wechat_api.sent] == ["oLiWei"]

    # His page: one timeline, every channel.
    page = login(supervisor_wang).get(f"/tickets/customers/{li_wei.pk}/").content.decode()
    for label in ("Email", "Live chat", "API", "WeChat", "Phone"):
        assert label in page, label
