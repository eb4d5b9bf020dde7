"""In a real browser: a store on another origin embeds the chat widget with one script tag; a
visitor writes, an agent in another browser sees the chat arrive without reloading and
answers, the visitor reads the answer, and after a reload the conversation is still there."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from channels_in import chat_channels
from channels_in.chat_channels import ChatSettings
from helpdesk import tenancy
from helpdesk.models import Membership
from tests.browser.conftest import CHROMIUM, free_port, sign_in
from tests.browser.test_live_updates import live_asgi_server  # noqa: F401
from tests.conftest import acting
from tickets import presence
from tickets.models import AgentPresence, Group, GroupMember, Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]


@pytest.fixture
def store(live_asgi_server) -> Iterator[dict]:  # noqa: F811
    """A merchant's store: a page served from another origin (localhost, its own port) that
    embeds the widget with the one tag the settings page gives."""
    port = free_port()
    origin = f"http://localhost:{port}"
    holder: dict = {"origin": origin, "key": ""}

    class StorePage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = (
                '<!doctype html><html lang="en"><head><meta charset="utf-8">'
                "<title>Acme store</title></head><body><h1>Acme appliances</h1>"
                f'<script src="{live_asgi_server}/static/chat/widget.js" '
                f'data-key="{holder["key"]}" async></script></body></html>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), StorePage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder
    server.shutdown()
    server.server_close()


def test_a_visitor_on_the_store_chats_live_with_an_agent_and_finds_the_history_after_reload(
    live_asgi_server,  # noqa: F811
    store,
    chromium,
    tenant_acme,
    admin_zhao,
    agent_li,
    settings,
    tmp_path,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path)
    with tenancy.activate(tenant_acme):
        group = Group.objects.create(name="After-sales", is_default=True)
        GroupMember.objects.create(group=group, user=agent_li)
        Membership.objects.filter(tenant=tenant_acme, user=agent_li).update(display_name="Li Na")
        presence.set_presence(acting_agent=acting(agent_li), status=AgentPresence.Status.ONLINE)
        webchat = chat_channels.create_chat_channel(
            acting_agent=acting(admin_zhao),
            chat_settings=ChatSettings(
                name="Store chat", allowed_origins=[store["origin"]], prechat_fields=["name"]
            ),
        )
    store["key"] = webchat.public_key

    # The agent works the ticket list in their own browser.
    agent = chromium.new_context(locale="en-US").new_page()
    sign_in(agent, live_asgi_server, "li.acme")
    agent.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)

    # The visitor opens the store: another origin, another browser context.
    visitor_context = chromium.new_context(locale="en-US")
    visitor = visitor_context.new_page()
    visitor.goto(store["origin"] + "/")
    visitor.locator("#helpdesk-chat .bubble").click()
    visitor.locator("#helpdesk-chat form.prechat input[name=name]").fill("Wei Zhang")
    visitor.locator("#helpdesk-chat form.prechat button[type=submit]").click()
    box = visitor.locator("#helpdesk-chat textarea.text")
    box.fill("My dishwasher leaks")
    box.press("Enter")
    visitor.wait_for_selector(
        "#helpdesk-chat li.message.visitor[data-state=sent]:has-text('My dishwasher leaks')",
        timeout=10_000,
    )

    # The agent's list shows the chat without a reload; they open it and answer.
    row = agent.locator("table.tickets a", has_text="My dishwasher leaks")
    row.wait_for(timeout=10_000)
    row.click()
    # The agent has the chat open: the visitor's message reads "Seen"; they type: the widget
    # says so.
    visitor.wait_for_selector("#helpdesk-chat li.message.visitor[data-state=seen]", timeout=10_000)
    agent.locator("form.reply textarea[name=text]").fill("Sorry! A technician comes tomorrow.")
    typing = visitor.locator("#helpdesk-chat .typing")
    typing.wait_for(timeout=10_000)
    assert typing.inner_text() == "Li Na is typing…"
    with agent.expect_navigation(timeout=30_000):
        agent.locator("form.reply button[type=submit]").click()

    answer = visitor.locator(
        "#helpdesk-chat li.message.agent:has-text('A technician comes tomorrow')"
    )
    answer.wait_for(timeout=10_000)
    assert "Li Na" in answer.inner_text()
    assert visitor.locator("#helpdesk-chat header .agent .avatar").inner_text() == "LN"

    # After a reload the conversation is still there (the token is in the store's storage).
    visitor.reload()
    visitor.locator("#helpdesk-chat li.message.agent").first.wait_for(timeout=10_000)
    texts = visitor.locator("#helpdesk-chat li.message .body").all_inner_texts()
    assert texts == ["My dishwasher leaks", "Sorry! A technician comes tomorrow."]
    # The read receipt is restored too.
    assert visitor.locator("#helpdesk-chat li.message.visitor").get_attribute("data-state") == (
        "seen"
    )

    # A file past the chat's limit is refused in the widget with a clear reason.
    visitor.locator("#helpdesk-chat input.file").set_input_files(
        [{"name": "video.png", "mimeType": "image/png", "buffer": b"0" * (11 * 1024 * 1024)}]
    )
    error = visitor.locator("#helpdesk-chat .error")
    error.wait_for(timeout=5_000)
    assert error.inner_text() == "The file is too large (at most 10.0\xa0MB)."

    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get(channel="chat")
        assert list(ticket.messages.order_by("pk").values_list("direction", flat=True)) == [
            Message.Direction.INBOUND,
            Message.Direction.OUTBOUND,
        ]
        assert ticket.customer.name == "Wei Zhang"


def test_with_nobody_online_the_store_page_offers_a_form_whose_message_becomes_a_ticket(
    live_asgi_server,  # noqa: F811
    store,
    chromium,
    tenant_acme,
    admin_zhao,
    settings,
):
    with tenancy.activate(tenant_acme):
        Group.objects.create(name="After-sales", is_default=True)
        webchat = chat_channels.create_chat_channel(
            acting_agent=acting(admin_zhao),
            chat_settings=ChatSettings(name="Store chat", allowed_origins=[store["origin"]]),
        )
    store["key"] = webchat.public_key
    visitor = chromium.new_context(locale="en-US").new_page()
    visitor.goto(store["origin"] + "/")
    visitor.locator("#helpdesk-chat .bubble").click()
    form = visitor.locator("#helpdesk-chat form.offline")
    form.wait_for(timeout=10_000)
    assert "Nobody can chat right now" in form.inner_text()
    assert visitor.locator("#helpdesk-chat form.composer").is_hidden()
    # Neither an email nor a phone: the widget asks for one.
    form.locator("input[name=name]").fill("Ann")
    form.locator("textarea[name=text]").fill("Is the AC-300 in stock?")
    form.locator("button[type=submit]").click()
    assert visitor.locator("#helpdesk-chat .error").inner_text() == (
        "Give an email address or a phone number."
    )
    form.locator("input[name=email]").fill("ann@example.com")
    form.locator("textarea[name=text]").fill("Is the AC-300 in stock?")
    form.locator("button[type=submit]").click()
    visitor.wait_for_selector(
        "#helpdesk-chat .status:has-text('Your message is with us')", timeout=10_000
    )
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get(channel="chat")
        assert ticket.subject == "Message left in the chat: Is the AC-300 in stock?"
        assert ticket.customer.identities.filter(kind="email", value="ann@example.com").exists()


def test_a_burst_past_the_rate_is_refused_in_the_widget_and_the_earlier_messages_stay_sent(
    live_asgi_server,  # noqa: F811
    store,
    chromium,
    tenant_acme,
    admin_zhao,
    agent_li,
    settings,
):
    settings.HELPDESK_CHAT_VISITOR_RATE = "2/10s"
    with tenancy.activate(tenant_acme):
        group = Group.objects.create(name="After-sales", is_default=True)
        GroupMember.objects.create(group=group, user=agent_li)
        presence.set_presence(acting_agent=acting(agent_li), status=AgentPresence.Status.ONLINE)
        webchat = chat_channels.create_chat_channel(
            acting_agent=acting(admin_zhao),
            chat_settings=ChatSettings(name="Store chat", allowed_origins=[store["origin"]]),
        )
    store["key"] = webchat.public_key
    visitor = chromium.new_context(locale="en-US").new_page()
    visitor.goto(store["origin"] + "/")
    visitor.locator("#helpdesk-chat .bubble").click()
    box = visitor.locator("#helpdesk-chat textarea.text")
    for text in ("one", "two", "three"):
        box.fill(text)
        box.press("Enter")
    failed = visitor.locator("#helpdesk-chat li.message.visitor[data-state=failed]")
    failed.wait_for(timeout=10_000)
    assert "three" in failed.inner_text()
    assert "You are sending messages too fast" in failed.inner_text()
    assert failed.locator("button.retry").is_visible()
    sent = visitor.locator("#helpdesk-chat li.message.visitor[data-state=sent] .body")
    sent.nth(1).wait_for(timeout=10_000)
    assert sent.all_inner_texts() == ["one", "two"]
    with tenancy.activate(tenant_acme):
        filed = (
            Message.objects.filter(channel="chat")
            .order_by("pk")
            .values_list("body_text", flat=True)
        )
        assert list(filed) == ["one", "two"]
