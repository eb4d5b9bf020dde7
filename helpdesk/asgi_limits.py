"""Request body limits enforced at the ASGI layer, before Django reads a byte.

Django's ASGI handler reads the whole body before it runs any view, and waits for it as long
as the client likes; a size check in a view runs only once the body has arrived. So a client
that declares more than it sends holds a worker with no answer, and a large chunked body is
spooled whole before anyone refuses it. This middleware answers first:

- 413 at once when ``Content-Length`` is above the path's limit (``HELPDESK_INBOUND_MAX_BYTES``
  for ``/inbound/``, ``HELPDESK_UPLOAD_MAX_BYTES`` for the composer's uploads,
  ``DATA_UPLOAD_MAX_MEMORY_SIZE`` elsewhere);
- 413 as soon as a body without a length (chunked) passes it;
- 408 when the body has not fully arrived ``HELPDESK_BODY_TIMEOUT_SECONDS`` after the request.

Either way the connection is closed and Django is told the client went away, so the view
never runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}


# The agent's composer posts files with a reply, a note or a new conversation (tickets.composer
# checks them against the merchant's own limit and answers with a form error).
_COMPOSER_UPLOADS = re.compile(r"^/tickets/(?:\d+/(?:reply|note)|new)/$")
# An admin uploads a customers or orders file to import (tickets.import_views).
_IMPORT_UPLOADS = "/settings/imports/"


def body_limit_for(path: str) -> int | None:
    """The largest body accepted on ``path`` (None: no limit)."""
    if path.startswith("/inbound/"):
        return settings.HELPDESK_INBOUND_MAX_BYTES
    if _COMPOSER_UPLOADS.match(path):
        return settings.HELPDESK_UPLOAD_MAX_BYTES
    if path == _IMPORT_UPLOADS:
        # The file itself is checked in the view, which answers with a form error; the form's
        # other fields and the multipart framing take a few more bytes.
        return settings.HELPDESK_IMPORT_MAX_BYTES + 64 * 1024
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def answer(send: Send, status: int, code: str, message: str) -> None:
    """Send a complete JSON error in the project's shape and ask the server to close."""
    body = json.dumps({"message": message, "code": code, "extra": {}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body may still be on its way: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestBodyLimits:
    """ASGI middleware for the ``http`` scope: size and time limits on the request body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope.get("path", ""))
        length = declared_length(scope)
        if limit is not None and length is not None and length > limit:
            await answer(send, 413, "too_large", "The request body is larger than accepted here")
            return

        deadline = time.monotonic() + settings.HELPDESK_BODY_TIMEOUT_SECONDS
        received = 0
        body_complete = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, body_complete, answered
            if answered:
                return _DISCONNECT
            if body_complete:
                # Django listens for the client going away while the view runs: no deadline.
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                answered = True
                await answer(send, 408, "body_timeout", "The request body did not arrive in time")
                return _DISCONNECT
            if message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            if limit is not None and received > limit:
                answered = True
                await answer(
                    send, 413, "too_large", "The request body is larger than accepted here"
                )
                return _DISCONNECT
            body_complete = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:  # after our answer, nothing the app says can reach the client
                await send(message)

        await self.app(scope, limited_receive, guarded_send)
