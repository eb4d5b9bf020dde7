"""The chat widget's WebSocket, ``/ws/chat/<public key>/``: one per open widget on a store page.

The socket is accepted only from an origin on the channel's allow-list (else closed with
4403, after the reason is sent), and the widget then says hello with its signed visitor token.
Visitor messages go to the pipeline (``chat_visitors.send_message``: stored raw first, once per
message id, within the rate limit) and are acknowledged; agents' replies arrive on the
visitor's channel-layer group; typing and read receipts travel through the ticket's presence
group, the one agents' pages share (tickets/ticket_presence.py), so agents see "… is typing"
and visitors see the agent typing and having read their messages.

A socket between messages holds no database connection (each database call closes its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import DatabaseError, connections
from django.utils import translation
from django.utils.translation import gettext as _

from channels_in import chat_visitors
from channels_in.chat import REPLY_EVENT, visitor_group
from channels_in.chat_widget import ChatRefused, Widget, check_origin, page_language, widget_for_key
from channels_in.models import ChatVisitor
from helpdesk import tenancy
from helpdesk.errors import BadInput
from tickets import ticket_presence

logger = logging.getLogger(__name__)

PING_WRITE_SECONDS = 30  # the widget pings every 20 s; the visitor's row is touched this often
TYPING_MIN_SECONDS = 2.0
SEEN_WRITE_SECONDS = 10.0
READ_MIN_SECONDS = 2.0
# A widget sends a frame now and then (a message, typing every 2 s, a ping every 20 s): frames
# past this budget per socket are answered with an error and dropped, so a script cannot keep
# a server thread and the database busy. Messages also count against the visitor's own rate.
FRAMES_PER_WINDOW = 40
FRAME_WINDOW_SECONDS = 10.0
MAX_FRAME_CHARS = 20_000


def _in_tenant(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run ``function(widget, ...)`` in a thread with the widget's merchant active, closing the
    database connection after."""

    def run(widget: Widget, *args: Any, **kwargs: Any) -> Any:
        try:
            with tenancy.activate(widget.tenant):
                return function(widget, *args, **kwargs)
        finally:
            connections.close_all()

    # Not thread-sensitive: a thousand widgets' calls share a pool of threads instead of
    # queueing for the one thread Django's sync views use.
    return database_sync_to_async(run, thread_sensitive=False)


@database_sync_to_async
def _widget_of(public_key: str, origin: str) -> Widget:
    try:
        widget = widget_for_key(public_key)
        check_origin(widget.webchat, origin)
        return widget
    finally:
        connections.close_all()


# redis-py refuses a connection past its pool's 100 rather than waiting for one: a thousand
# widgets closing at once (a deploy, a network blip) must queue for the channel layer.
LAYER_CALLS_AT_ONCE = 32
_layer_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _layer_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _layer_slots.get(loop)
    if slot is None:
        slot = _layer_slots[loop] = asyncio.Semaphore(LAYER_CALLS_AT_ONCE)
    return slot


def _origin_of(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1")
    return ""


class VisitorChatConsumer(AsyncJsonWebsocketConsumer):
    widget: Widget | None = None
    visitor: ChatVisitor | None = None
    group_name = ""
    ticket_number: int | None = None
    pinged_at = 0.0
    typed_at = 0.0
    seen_written_at = 0.0
    read_at = 0.0
    window_started = 0.0
    frames = 0
    language = "en"

    async def on_layer(self, operation: str, *args: Any) -> None:
        """A channel-layer call, at most ``LAYER_CALLS_AT_ONCE`` at a time in this process."""
        async with _layer_slot():
            await getattr(self.channel_layer, operation)(*args)

    async def connect(self) -> None:
        public_key = self.scope["url_route"]["kwargs"]["public_key"]
        try:
            self.widget = await _widget_of(public_key, _origin_of(self.scope))
        except ChatRefused as refused:
            # The reason goes first, so the widget (and its developer) can tell what is wrong.
            await self.accept()
            await self.send_json(
                {"type": "refused", "code": refused.code, "message": refused.message}
            )
            await self.close(code=refused.close_code)
            return
        await self.accept()

    async def disconnect(self, code: int) -> None:
        try:
            await self.leave_groups()
        except Exception:  # Redis gone: the layer forgets the groups at their expiry anyway
            logger.warning("chat socket: leaving its groups failed", exc_info=True)
        if self.widget is not None and self.visitor is not None:
            try:
                await _in_tenant(lambda _w, v: chat_visitors.mark_seen(v, left=True))(
                    self.widget, self.visitor
                )
            except DatabaseError:
                logger.warning("chat visitor %s: leaving not recorded", self.visitor.pk)

    async def leave_groups(self) -> None:
        if self.group_name:
            await self.on_layer("group_discard", self.group_name, self.channel_name)
        if self.widget is not None and self.visitor is not None:
            await self.tell_agents("left")
            await self.leave_ticket()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if not text_data or self.widget is None:
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self.send_json(
                {"type": "error", "code": "too_large", "message": "The frame is too large"}
            )
            return
        if not self.take_frame():
            await self.send_json(
                {"type": "error", "code": "too_many_frames", "message": "Too many frames"}
            )
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "code": "bad_json", "message": "Not JSON"})
            return
        if isinstance(content, dict):
            await self.receive_json(content)

    def take_frame(self) -> bool:
        """Count one frame against the socket's budget; False past it."""
        now = time.monotonic()
        if now - self.window_started > FRAME_WINDOW_SECONDS:
            self.window_started, self.frames = now, 0
        self.frames += 1
        return self.frames <= FRAMES_PER_WINDOW

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content.get("type")
        if kind == "hello":
            await self.hello(content)
        elif self.visitor is None:
            await self.send_json(
                {"type": "error", "code": "no_hello", "message": "Say hello with your token first"}
            )
        elif kind == "message":
            await self.visitor_message(content)
        elif kind == "profile":
            await self.profile(content)
        elif kind == "typing":
            await self.typing()
        elif kind == "read":
            await self.read()
        elif kind == "ping":
            await self.ping()

    # --- the visitor ---

    async def hello(self, content: dict[str, Any]) -> None:
        assert self.widget is not None
        self.language = page_language(str(content.get("lang", "")))
        visitor_id, token = chat_visitors.visitor_of(self.widget, str(content.get("token") or ""))
        if self.group_name:
            await self.on_layer("group_discard", self.group_name, self.channel_name)
        # Joined before the history is read: a reply sent meanwhile is in one or the other.
        self.group_name = visitor_group(self.widget.tenant.pk, self.widget.account.pk, visitor_id)
        await self.on_layer("group_add", self.group_name, self.channel_name)
        self.visitor, state = await _in_tenant(self._greet)(self.widget, visitor_id)
        self.pinged_at = time.monotonic()
        await self.send_json({"type": "welcome", "token": token, **state})
        await self.follow_ticket(state["ticket"])

    def _greet(self, widget: Widget, visitor_id: str) -> tuple[ChatVisitor, dict[str, Any]]:
        visitor, created = chat_visitors.identify(
            widget, visitor_id=visitor_id, language=self.language
        )
        return visitor, chat_visitors.greeting(widget, visitor, new=created)

    async def profile(self, content: dict[str, Any], message_id: str = "") -> bool:
        """Save the pre-chat form; False (the visitor told why) when it is refused."""
        assert self.widget is not None and self.visitor is not None
        form = content.get("profile") if isinstance(content.get("profile"), dict) else {}
        try:
            with translation.override(self.language):  # the refusal in the page's language
                self.visitor = await _in_tenant(
                    lambda widget, visitor: chat_visitors.save_profile(widget, visitor, form)
                )(self.widget, self.visitor)
        except BadInput as refused:
            refusal = {
                "type": "error",
                "code": "bad_profile",
                "field": refused.extra.get("field", ""),
                "message": str(refused.message),
            }
            await self.send_json({**refusal, "id": message_id} if message_id else refusal)
            return False
        await self.send_json({"type": "profile", "profile": chat_visitors.profile_of(self.visitor)})
        return True

    async def visitor_message(self, content: dict[str, Any]) -> None:
        assert self.widget is not None and self.visitor is not None
        message_id = str(content.get("id") or "")
        kind = str(content.get("kind") or "message")
        # A left message's contact is what the answer goes to: a refused one files nothing,
        # and the visitor's form keeps what they wrote.
        left = kind == "left_message" and isinstance(content.get("profile"), dict)
        if left and not await self.profile(content, message_id):
            return
        try:
            with translation.override(self.language):
                sent = await _in_tenant(
                    lambda widget, visitor: chat_visitors.send_message(
                        widget,
                        visitor,
                        message_id=message_id,
                        text=str(content.get("text") or ""),
                        kind=kind,
                        page=str(content.get("page") or ""),
                    )
                )(self.widget, self.visitor)
        except chat_visitors.RateLimited as limited:
            with translation.override(self.language):
                words = _("You are sending messages too fast. Wait a few seconds and try again.")
            await self.send_json(
                {
                    "type": "error",
                    "id": message_id,
                    "code": "rate_limited",
                    "retry_after": limited.retry_after_seconds,
                    "message": words,
                }
            )
            return
        except BadInput as refused:
            await self.send_json(
                {
                    "type": "error",
                    "id": message_id,
                    "code": "bad_message",
                    "message": str(refused.message),
                }
            )
            return
        await self.send_json({"type": "ack", "id": message_id, "status": sent.status})
        await self.follow_ticket(sent.ticket_number)

    async def typing(self) -> None:
        now = time.monotonic()
        if now - self.typed_at < TYPING_MIN_SECONDS:
            return
        self.typed_at = now
        if self.ticket_number is None and self.widget is not None:
            # The first message may have been filed by a worker since it was acknowledged.
            await self.follow_ticket(
                await _in_tenant(lambda _w, v: chat_visitors.current_ticket_number(v))(
                    self.widget, self.visitor
                )
            )
        await self.tell_agents("typing")

    async def read(self) -> None:
        assert self.widget is not None and self.visitor is not None
        now = time.monotonic()
        if now - self.read_at < READ_MIN_SECONDS:
            return
        self.read_at = now
        await _in_tenant(lambda _w, v: chat_visitors.mark_read(v, by_agent=False))(
            self.widget, self.visitor
        )
        await self.tell_agents("viewing")

    async def ping(self) -> None:
        assert self.widget is not None and self.visitor is not None
        now = time.monotonic()
        if now - self.pinged_at >= PING_WRITE_SECONDS:
            self.pinged_at = now
            await _in_tenant(lambda _w, v: chat_visitors.mark_seen(v))(self.widget, self.visitor)
        await self.send_json({"type": "pong"})

    # --- the ticket's presence group, shared with agents' pages ---

    async def follow_ticket(self, number: int | None) -> None:
        if number is None or number == self.ticket_number or self.widget is None:
            return
        await self.leave_ticket()
        self.ticket_number = number
        group = ticket_presence.ticket_group(self.widget.tenant.pk, number)
        await self.on_layer("group_add", group, self.channel_name)

    async def leave_ticket(self) -> None:
        if self.ticket_number is None or self.widget is None:
            return
        group = ticket_presence.ticket_group(self.widget.tenant.pk, self.ticket_number)
        await self.on_layer("group_discard", group, self.channel_name)
        self.ticket_number = None

    async def tell_agents(self, state: str) -> None:
        """Tell the agents who have the visitor's ticket open that the visitor is typing, has
        the chat open ("viewing": they read it) or left."""
        if self.ticket_number is None or self.widget is None or self.visitor is None:
            return
        with translation.override(self.widget.tenant.locale or None):
            name = _("%(name)s (customer)") % {"name": self.visitor.name or _("Visitor")}
        await self.on_layer(
            "group_send",
            ticket_presence.ticket_group(self.widget.tenant.pk, self.ticket_number),
            {
                "type": "ticket.presence",
                "ticket": self.ticket_number,
                "state": state,
                "box": "reply",
                "user": None,
                "name": name,
                "tab": f"visitor-{self.visitor.visitor_id[:12]}",
                "sender": self.channel_name,
                "ask": False,
            },
        )

    async def ticket_presence(self, message: dict[str, Any]) -> None:
        """An agent's page on the visitor's ticket: typing is shown in the widget; viewing
        marks the visitor's messages as seen."""
        if message.get("sender") == self.channel_name or message.get("user") is None:
            return  # this socket's own news, or another visitor tab's
        state = message.get("state")
        if state == "typing" and message.get("box") != "note":
            await self.send_json({"type": "typing", "name": message.get("name") or ""})
        elif state == "viewing" and self.widget is not None and self.visitor is not None:
            now = time.monotonic()
            if now - self.seen_written_at < SEEN_WRITE_SECONDS:
                return
            self.seen_written_at = now
            at = await _in_tenant(lambda _w, v: chat_visitors.mark_read(v, by_agent=True))(
                self.widget, self.visitor
            )
            await self.send_json({"type": "seen", "at": at})

    # --- agents' replies (channels_in.chat.ChatAdapter.send) ---

    async def chat_reply(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "message", "message": message["message"]})
        await self.follow_ticket(message.get("ticket"))


# The handler name Channels derives from REPLY_EVENT ("chat.reply" -> chat_reply).
assert REPLY_EVENT.replace(".", "_") == VisitorChatConsumer.chat_reply.__name__


def websocket_router(agent_application: Any) -> Any:
    """The WebSocket application: visitors' widgets at ``/ws/chat/<public key>/`` (their own
    origin check against the channel's allow-list, no session), everything else to
    ``agent_application`` (the agents' sockets, behind the host check and sign-in)."""
    from channels.routing import URLRouter
    from django.urls import path

    visitors = URLRouter([path("ws/chat/<str:public_key>/", VisitorChatConsumer.as_asgi())])

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("path", "").startswith("/ws/chat/"):
            return await visitors(scope, receive, send)
        return await agent_application(scope, receive, send)

    return route
