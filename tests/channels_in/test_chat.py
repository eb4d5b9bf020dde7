"""The live chat widget's socket and endpoints, through the real ASGI application on the
production channel layer (channels-redis) and the real pipeline: a visitor on the merchant's
store chats with agents, and every message lands on the customer's ticket once."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.test import Client

from channels_in import chat_channels
from channels_in.chat_channels import ChatSettings
from channels_in.models import ChatVisitor, RawInbound, WebChat
from escalation.models import Escalation
from helpdesk import tenancy
from helpdesk.models import Membership
from tests.conftest import acting
from tests.tickets.test_live_events_redis import agent_socket, redis_channel_layer  # noqa: F401
from tickets import presence
from tickets.models import AgentPresence, Group, GroupMember, IdentityKind, Message, Ticket
from tickets.services import reply_to_customer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]

STORE = "https://shop.acme.example"


@pytest.fixture
def acme_chat(tenant_acme, admin_zhao, redis_channel_layer) -> Iterator[WebChat]:  # noqa: F811
    with tenancy.activate(tenant_acme):
        after_sales = Group.objects.create(name="After-sales", is_default=True)
        webchat = chat_channels.create_chat_channel(
            acting_agent=acting(admin_zhao),
            chat_settings=ChatSettings(
                name="Acme store chat",
                allowed_origins=[STORE, "http://localhost:8080"],
                prechat_fields=["name", "email"],
            ),
        )
    webchat.after_sales = after_sales
    yield webchat


@pytest.fixture
def li_online(tenant_acme, agent_li, acme_chat):
    """李娜 of after-sales is online, so the chat is answered live."""
    with tenancy.activate(tenant_acme):
        GroupMember.objects.create(group=acme_chat.after_sales, user=agent_li)
        Membership.objects.filter(tenant=tenant_acme, user=agent_li).update(display_name="李娜")
        presence.set_presence(acting_agent=acting(agent_li), status=AgentPresence.Status.ONLINE)
    return agent_li


def visitor_socket(public_key: str, origin: str = STORE) -> WebsocketCommunicator:
    from helpdesk.asgi import application

    return WebsocketCommunicator(
        application,
        f"/ws/chat/{public_key}/",
        headers=[(b"host", b"help.example.com"), (b"origin", origin.encode())],
    )


async def say_hello(socket: WebsocketCommunicator, token: str = "", lang: str = "en") -> dict:
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await socket.send_json_to({"type": "hello", "token": token, "lang": lang})
    welcome = await socket.receive_json_from(timeout=10)
    assert welcome["type"] == "welcome", welcome
    return welcome


async def next_of(socket: WebsocketCommunicator, kind: str, timeout: float = 10) -> dict:
    """The next event of ``kind`` the widget hears (typing and the like skipped)."""
    while True:
        event = await socket.receive_json_from(timeout=timeout)
        if event["type"] == kind:
            return event


def run(scenario: Any) -> Any:
    async def with_flush() -> Any:
        try:
            return await scenario()
        finally:
            await get_channel_layer().flush()

    return asyncio.run(with_flush())


def chat_messages(tenant) -> list[Message]:
    with tenancy.activate(tenant):
        return list(
            Message.objects.filter(channel="chat", direction=Message.Direction.INBOUND)
            .select_related("ticket")
            .order_by("pk")
        )


# --- the origin allow-list ---------------------------------------------------------------


def test_a_page_of_another_origin_is_refused_on_the_socket_and_the_endpoints(acme_chat):
    async def scenario() -> tuple[dict, dict]:
        socket = visitor_socket(acme_chat.public_key, origin="https://evil.example")
        connected, _ = await socket.connect(timeout=5)
        assert connected  # accepted only to say why, then closed
        refused = await socket.receive_json_from(timeout=5)
        closed = await socket.receive_output(timeout=5)
        return refused, closed

    refused, closed = run(scenario)
    assert refused["code"] == "origin_refused"
    assert "https://evil.example is not allowed" in refused["message"]
    assert closed == {"type": "websocket.close", "code": 4403}

    client = Client()
    response = client.get(
        f"/inbound/chat/{acme_chat.public_key}/config/", HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 403
    assert "https://evil.example is not allowed" in response.json()["message"]
    assert "Access-Control-Allow-Origin" not in response
    response = client.post(
        f"/inbound/chat/{acme_chat.public_key}/upload/", HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 403
    # A key that names no chat is 404, whatever the origin.
    assert client.get("/inbound/chat/acme.nope/config/", HTTP_ORIGIN=STORE).status_code == 404


def test_an_allowed_store_gets_the_config_in_its_pages_language_with_cors(acme_chat, li_online):
    client = Client()
    response = client.get(
        f"/inbound/chat/{acme_chat.public_key}/config/?lang=zh-CN", HTTP_ORIGIN=STORE
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == STORE
    config = response.json()
    assert config["language"] == "zh-hans"
    assert config["words"]["send"] == "发送"
    assert config["available"] is True
    assert config["prechat"]["fields"] == ["name", "email"]
    english = client.get(
        f"/inbound/chat/{acme_chat.public_key}/config/?lang=en-US", HTTP_ORIGIN=STORE
    ).json()
    assert english["words"]["send"] == "Send"


# --- messages ------------------------------------------------------------------------------


def test_a_visitor_message_reaches_the_agents_socket_and_the_agents_reply_reaches_the_visitor(
    acme_chat, li_online, tenant_acme
):
    agent = agent_socket(li_online)

    async def scenario() -> tuple[dict, dict, dict]:
        connected, _ = await agent.connect(timeout=5)
        assert connected
        socket = visitor_socket(acme_chat.public_key)
        welcome = await say_hello(socket)
        assert welcome["available"] is True and welcome["history"] == []
        await socket.send_json_to(
            {"type": "profile", "profile": {"name": "Wei Zhang", "email": "wei@example.cn"}}
        )
        await next_of(socket, "profile")
        await socket.send_json_to({"type": "message", "id": "m1", "text": "Where is my fridge?"})
        ack = await next_of(socket, "ack")
        heard = None
        while heard is None:
            event = await agent.receive_json_from(timeout=10)
            if event["event"] in ("ticket.created", "ticket.message"):
                heard = event

        def answer() -> None:
            with tenancy.activate(tenant_acme):
                ticket = Ticket.objects.get(channel="chat")
                reply_to_customer(
                    acting_agent=acting(li_online), ticket=ticket, text="It ships tomorrow."
                )

        await sync_to_async(answer)()
        reply = await next_of(socket, "message")
        await socket.disconnect()
        await agent.disconnect()
        return ack, heard, reply

    ack, heard, reply = run(scenario)
    assert ack == {"type": "ack", "id": "m1", "status": "accepted"}
    assert heard["payload"]["subject"] == "Where is my fridge?"
    assert reply["message"]["text"] == "It ships tomorrow."
    assert reply["message"]["author"] == {"name": "李娜", "initials": "李"}
    (message,) = chat_messages(tenant_acme)
    with tenancy.activate(tenant_acme):
        ticket = message.ticket
        assert ticket.group == acme_chat.after_sales
        # One timeline with email: the address from the pre-chat form is the customer's.
        identities = set(ticket.customer.identities.values_list("kind", "value"))
        assert (IdentityKind.EMAIL, "wei@example.cn") in identities
        assert ticket.customer.name == "Wei Zhang"
        reply_message = ticket.messages.get(direction=Message.Direction.OUTBOUND)
        assert reply_message.delivery_state == Message.Delivery.SENT
        assert reply_message.channel == "chat"


def test_a_message_resent_while_the_socket_reconnects_arrives_once_and_history_returns(
    acme_chat, li_online, tenant_acme
):
    async def scenario() -> tuple[dict, dict]:
        socket = visitor_socket(acme_chat.public_key)
        welcome = await say_hello(socket)
        await socket.send_json_to({"type": "message", "id": "m-1", "text": "空调不制冷"})
        await next_of(socket, "ack")
        await socket.disconnect()  # the store page's Wi-Fi drops before the widget saw more
        again = visitor_socket(acme_chat.public_key)
        restored = await say_hello(again, token=welcome["token"], lang="zh-CN")
        # The widget resends what it had not seen acknowledged, with the same id.
        await again.send_json_to({"type": "message", "id": "m-1", "text": "空调不制冷"})
        resent = await next_of(again, "ack")
        await again.disconnect()
        return restored, resent

    restored, resent = run(scenario)
    assert resent == {"type": "ack", "id": "m-1", "status": "duplicate"}
    assert [m.body_text for m in chat_messages(tenant_acme)] == ["空调不制冷"]
    assert [(item["id"], item["text"]) for item in restored["history"]] == [("m-1", "空调不制冷")]
    with tenancy.activate(tenant_acme):
        assert RawInbound.objects.filter(account=acme_chat.account).count() == 1


def test_a_burst_over_the_rate_limit_is_refused_and_the_earlier_messages_are_kept(
    acme_chat, li_online, tenant_acme, settings
):
    settings.HELPDESK_CHAT_VISITOR_RATE = "3/10s"

    async def scenario() -> list[dict]:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket)
        for number in range(5):
            await socket.send_json_to(
                {"type": "message", "id": f"b{number}", "text": f"hi {number}"}
            )
        answers = []
        while len(answers) < 5:
            event = await socket.receive_json_from(timeout=10)
            if event["type"] in ("ack", "error"):
                answers.append(event)
        await socket.disconnect()
        return answers

    answers = run(scenario)
    assert [a["type"] for a in answers] == ["ack", "ack", "ack", "error", "error"]
    assert answers[3]["code"] == "rate_limited" and answers[3]["id"] == "b3"
    assert "too fast" in answers[3]["message"]
    assert [m.body_text for m in chat_messages(tenant_acme)] == ["hi 0", "hi 1", "hi 2"]
    assert len({m.ticket_id for m in chat_messages(tenant_acme)}) == 1


def test_an_oversized_or_unwanted_upload_gets_a_clear_error_and_a_good_one_lands_on_the_ticket(
    acme_chat, li_online, tenant_acme, settings
):
    settings.HELPDESK_CHAT_UPLOAD_MAX_BYTES = 100_000

    async def scenario() -> str:
        socket = visitor_socket(acme_chat.public_key)
        welcome = await say_hello(socket)
        await socket.disconnect()
        return welcome["token"]

    token = run(scenario)
    client = Client()
    url = f"/inbound/chat/{acme_chat.public_key}/upload/"
    from django.core.files.uploadedfile import SimpleUploadedFile

    big = SimpleUploadedFile("photo.jpg", b"\xff\xd8" + b"0" * 200_000, content_type="image/jpeg")
    response = client.post(url, {"token": token, "id": "f1", "file": big}, HTTP_ORIGIN=STORE)
    assert response.status_code == 413
    assert response.json()["message"] == "The file is too large (at most 97.7\xa0KB)."
    assert response["Access-Control-Allow-Origin"] == STORE

    exe = SimpleUploadedFile("run.exe", b"MZ", content_type="application/x-msdownload")
    response = client.post(url, {"token": token, "id": "f2", "file": exe}, HTTP_ORIGIN=STORE)
    assert response.status_code == 415
    assert "cannot be sent" in response.json()["message"]

    photo = SimpleUploadedFile("broken.png", b"\x89PNG fake", content_type="image/png")
    response = client.post(url, {"token": "forged", "id": "f3", "file": photo}, HTTP_ORIGIN=STORE)
    assert response.status_code == 401

    photo = SimpleUploadedFile("broken.png", b"\x89PNG fake", content_type="image/png")
    response = client.post(url, {"token": token, "id": "f4", "file": photo}, HTTP_ORIGIN=STORE)
    assert response.status_code == 202, response.content
    (message,) = chat_messages(tenant_acme)
    with tenancy.activate(tenant_acme):
        (attachment,) = message.attachments.all()
        assert attachment.filename == "broken.png"
        assert attachment.file.read() == b"\x89PNG fake"


# --- nobody online, personas, supervisor -------------------------------------------------


def test_leaving_a_message_while_nobody_is_online_makes_a_ticket_answered_by_email(
    acme_chat, tenant_acme, agent_li, acme_email, settings
):
    settings.HELPDESK_CHAT_VISITOR_GONE_SECONDS = 0

    async def scenario() -> dict:
        socket = visitor_socket(acme_chat.public_key)
        welcome = await say_hello(socket)
        await socket.send_json_to(
            {
                "type": "message",
                "kind": "left_message",
                "id": "left-1",
                "text": "Please call me about order 1001",
                "profile": {"name": "Ann", "email": "ann@example.com"},
            }
        )
        await next_of(socket, "ack")
        await socket.disconnect()
        return welcome

    with tenancy.activate(tenant_acme):  # 李娜 works the chat's group, but is offline
        GroupMember.objects.create(group=acme_chat.after_sales, user=agent_li)
    welcome = run(scenario)
    assert welcome["available"] is False  # the widget shows its leave-a-message form
    (message,) = chat_messages(tenant_acme)
    with tenancy.activate(tenant_acme):
        ticket = message.ticket
        assert ticket.subject == "Message left in the chat: Please call me about order 1001"
        assert ticket.status == Ticket.Status.NEW
        reply = reply_to_customer(
            acting_agent=acting(agent_li), ticket=ticket, text="We will call you today."
        )
        reply.refresh_from_db()
        assert reply.channel == "email" and reply.delivery_state == Message.Delivery.SENT
    (sent,) = mail.outbox
    assert sent.to == ["ann@example.com"]
    assert "We will call you today." in sent.body


def test_out_of_hours_the_widget_offers_the_leave_a_message_form_though_agents_are_online(
    acme_chat, li_online, tenant_acme
):
    client = Client()
    url = f"/inbound/chat/{acme_chat.public_key}/config/"
    assert client.get(url, HTTP_ORIGIN=STORE).json()["available"] is True
    with tenancy.activate(tenant_acme):  # the group keeps hours, and has none set: closed now
        Group.objects.filter(pk=acme_chat.after_sales.pk).update(always_open=False)
    config = client.get(url, HTTP_ORIGIN=STORE).json()
    assert config["available"] is False
    assert config["words"]["offline_title"] == "Leave us a message"


def test_a_visitor_who_picks_a_service_style_goes_to_that_persona_group(
    acme_chat, li_online, tenant_acme, admin_zhao
):
    with tenancy.activate(tenant_acme):
        expert = Group.objects.create(name="Experts", persona="expert")
        chat_channels.update_chat_channel(
            acting_agent=acting(admin_zhao),
            webchat=acme_chat,
            chat_settings=ChatSettings(
                name="Acme store chat", allowed_origins=[STORE], persona_group_ids=[expert.pk]
            ),
        )

    async def scenario() -> list[dict]:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket)
        await socket.send_json_to({"type": "profile", "profile": {"persona": "nobody"}})
        refused = await next_of(socket, "error")
        await socket.send_json_to({"type": "profile", "profile": {"persona": "expert"}})
        await next_of(socket, "profile")
        await socket.send_json_to({"type": "message", "id": "p1", "text": "Which model fits?"})
        await next_of(socket, "ack")
        await socket.disconnect()
        return refused

    refused = run(scenario)
    assert refused["field"] == "persona"
    (message,) = chat_messages(tenant_acme)
    assert message.ticket.group_id == expert.pk


def test_the_supervisor_button_escalates_the_chat(acme_chat, li_online, tenant_acme):
    async def scenario() -> None:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket)
        await socket.send_json_to(
            {"type": "message", "id": "s1", "kind": "supervisor", "text": "Let me talk to a boss"}
        )
        await next_of(socket, "ack")
        await socket.disconnect()

    run(scenario)
    with tenancy.activate(tenant_acme):
        (escalation,) = Escalation.objects.all()
        assert escalation.trigger == "customer_request"
        assert "联系主管" in escalation.reason  # in Acme's language


def test_typing_and_read_receipts_travel_between_the_visitor_and_the_agent(
    acme_chat, li_online, tenant_acme
):
    agent = agent_socket(li_online)

    async def scenario() -> tuple[dict, dict, dict]:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket)
        await socket.send_json_to({"type": "message", "id": "t1", "text": "hello?"})
        await next_of(socket, "ack")
        number = await sync_to_async(lambda: chat_messages(tenant_acme)[0].ticket.number)()
        connected, _ = await agent.connect(timeout=5)
        assert connected
        await agent.send_json_to({"type": "viewing", "ticket": number})
        seen = await next_of(socket, "seen")
        await agent.send_json_to({"type": "typing", "ticket": number, "box": "reply"})
        typing = await next_of(socket, "typing")
        await socket.send_json_to({"type": "typing"})
        visitor_typing = None
        while visitor_typing is None:
            event = await agent.receive_json_from(timeout=10)
            if event["event"] == "ticket.presence" and event["payload"]["state"] == "typing":
                visitor_typing = event
        await socket.disconnect()
        await agent.disconnect()
        return seen, typing, visitor_typing

    seen, typing, visitor_typing = run(scenario)
    assert seen["at"]
    assert typing["name"] == "李娜"
    assert visitor_typing["payload"]["name"] == "访客（客户）"  # in Acme's language
    with tenancy.activate(tenant_acme):
        assert ChatVisitor.objects.get().agent_read_at is not None


def test_the_generic_webhook_refuses_chat(acme_chat):
    response = Client().post(
        f"/inbound/acme/chat/{acme_chat.account_id}/",
        data=json.dumps({"visitor": "x", "id": "1", "text": "hi"}),
        content_type="application/json",
    )
    assert response.status_code == 404


def test_a_socket_flooding_frames_is_cut_off_and_an_oversized_frame_refused(acme_chat):
    async def scenario() -> tuple[list[str], dict]:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket)  # the hello is the first frame of the window
        answers = []
        for _ in range(45):
            await socket.send_json_to({"type": "ping"})
            answers.append((await socket.receive_json_from(timeout=10))["type"])
        await socket.send_to(text_data=json.dumps({"type": "message", "text": "x" * 30_000}))
        too_large = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        return answers, too_large

    answers, too_large = run(scenario)
    assert answers == ["pong"] * 39 + ["error"] * 6
    assert too_large["code"] == "too_large"


def test_a_refusal_is_worded_in_the_store_pages_language(acme_chat):
    async def scenario() -> tuple[dict, dict]:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket, lang="zh-CN")
        await socket.send_json_to({"type": "profile", "profile": {"email": "not-an-address"}})
        refused = await next_of(socket, "error")
        await socket.send_json_to({"type": "message", "id": "e1", "text": "   "})
        empty = await next_of(socket, "error")
        await socket.disconnect()
        return refused, empty

    refused, empty = run(scenario)
    assert (refused["field"], refused["message"]) == ("email", "这不是有效的电子邮件地址。")
    assert empty["message"] == "请先输入消息。"


def test_a_visitor_who_types_another_customers_email_sees_none_of_their_chats(
    acme_chat, li_online, tenant_acme
):
    """A pre-chat email is not proof: the visitor is filed under the customer it names (one
    timeline), but never shown that customer's other chats, and replies on the first visitor's
    ticket still go to the first visitor's widget."""

    async def write(text: str, message_id: str) -> dict:
        socket = visitor_socket(acme_chat.public_key)
        welcome = await say_hello(socket)
        await socket.send_json_to({"type": "profile", "profile": {"email": "wei@example.cn"}})
        await next_of(socket, "profile")
        await socket.send_json_to({"type": "message", "id": message_id, "text": text})
        await next_of(socket, "ack")
        await socket.disconnect()
        return welcome

    def close_first() -> None:
        with tenancy.activate(tenant_acme):
            Ticket.objects.filter(channel="chat").update(status=Ticket.Status.CLOSED)

    async def scenario() -> tuple[dict, dict]:
        first = await write("我的订单地址是北京市朝阳区", "a1")
        await sync_to_async(close_first)()
        second = await write("Hello", "b1")
        again = visitor_socket(acme_chat.public_key)
        restored = await say_hello(again, token=second["token"])
        await again.disconnect()
        return first, restored

    first, restored = run(scenario)
    assert [item["text"] for item in restored["history"]] == ["Hello"]
    with tenancy.activate(tenant_acme):
        tickets = list(Ticket.objects.filter(channel="chat").order_by("pk"))
        assert len(tickets) == 2 and tickets[0].customer_id == tickets[1].customer_id
        first_visitor = ChatVisitor.objects.order_by("pk").first()
        reply = reply_to_customer(
            acting_agent=acting(li_online), ticket=tickets[0], text="已经改好了"
        )
        reply.refresh_from_db()
        assert reply.conversation_id == first_visitor.visitor_id


def test_a_left_message_whose_email_is_refused_is_not_filed_and_the_widget_says_why(
    acme_chat, tenant_acme
):
    async def scenario() -> dict:
        socket = visitor_socket(acme_chat.public_key)
        await say_hello(socket)
        await socket.send_json_to(
            {
                "type": "message",
                "kind": "left_message",
                "id": "left-2",
                "text": "Call me back",
                "profile": {"name": "Ann", "email": "not an address"},
            }
        )
        refused = await next_of(socket, "error")
        await socket.disconnect()
        return refused

    refused = run(scenario)
    assert (refused["id"], refused["code"], refused["field"]) == ("left-2", "bad_profile", "email")
    assert chat_messages(tenant_acme) == []
    with tenancy.activate(tenant_acme):
        assert not RawInbound.objects.filter(account=acme_chat.account).exists()
