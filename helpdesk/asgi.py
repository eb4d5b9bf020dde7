"""ASGI entry point: HTTP through Django (behind body size and time limits), WebSockets through
Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from channels_in.chat_consumer import websocket_router  # noqa: E402
from helpdesk.asgi_limits import RequestBodyLimits  # noqa: E402
from tickets.websocket_urls import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestBodyLimits(django_asgi_app),
        # Chat widgets on merchants' stores (/ws/chat/<key>/) check their own allow-list of
        # store origins; agents' sockets stay behind the host check and sign-in.
        "websocket": websocket_router(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
