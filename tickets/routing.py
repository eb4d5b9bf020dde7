from __future__ import annotations

from django.urls import path

from tickets.consumers import AgentEventsConsumer

websocket_urlpatterns = [path("ws/agent/", AgentEventsConsumer.as_asgi())]
