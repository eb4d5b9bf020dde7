"""`make run` (SQLite, the in-memory channel layer, Celery inline) chats too: a visitor's
message through the widget's socket becomes a ticket once, and an agent's reply reaches the
visitor's socket."""

from __future__ import annotations

from pathlib import Path

from tests.make_run import make_run_manage

SQLITE_CHAT = """
import asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from channels_in.chat_channels import ChatSettings, create_chat_channel
from helpdesk import tenancy
from helpdesk.asgi import application
from helpdesk.models import Membership, Role, Tenant
from helpdesk.permissions import acting_agent_for
from tickets.models import Message, Ticket
from tickets.services import reply_to_customer

tenant = Tenant.objects.create(name="Shop", slug="shop")
boss = get_user_model().objects.create(username="boss")
Membership.objects.create(tenant=tenant, user=boss, role=Role.OWNER)
with tenancy.activate(tenant):
    chat = create_chat_channel(
        acting_agent=acting_agent_for(boss, tenant),
        chat_settings=ChatSettings(name="Chat", allowed_origins=["http://localhost:8080"]),
    )

def reply():
    with tenancy.activate(tenant):
        ticket = Ticket.objects.get()
        reply_to_customer(acting_agent=acting_agent_for(boss, tenant), ticket=ticket, text="Hi!")

async def scenario():
    socket = WebsocketCommunicator(
        application, f"/ws/chat/{chat.public_key}/", headers=[(b"origin", b"http://localhost:8080")]
    )
    await socket.connect()
    await socket.send_json_to({"type": "hello", "token": "", "lang": "en"})
    await socket.receive_json_from(timeout=10)
    heard = []
    for _ in range(2):  # the second is a resend of the first
        await socket.send_json_to({"type": "message", "id": "x1", "text": "hello"})
        while True:
            event = await socket.receive_json_from(timeout=10)
            if event["type"] == "ack":
                heard.append(event["status"])
                break
    await sync_to_async(reply)()
    while True:
        event = await socket.receive_json_from(timeout=10)
        if event["type"] == "message":
            heard.append(event["message"]["text"])
            break
    await socket.disconnect()
    return heard

heard = asyncio.run(scenario())
with tenancy.activate(tenant):
    print(heard, Message.objects.filter(direction="inbound").count(), Ticket.objects.count())
"""


def test_make_run_on_sqlite_chats_through_the_widget_socket(tmp_path: Path):
    manage = make_run_manage(tmp_path)

    manage("migrate", "-v0")
    out = manage("shell", "-c", SQLITE_CHAT).strip().splitlines()[-1]
    assert out == "['accepted', 'duplicate', 'Hi!'] 1 1"
