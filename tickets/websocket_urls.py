"""The WebSocket URLs of the agents' pages (the ASGI router in helpdesk/asgi.py mounts them).

Named for what it holds: ticket routing (to groups and agents) lives in tickets/assignment.py.
"""

from __future__ import annotations

from django.urls import path

from tickets.consumers import AgentEventsConsumer

websocket_urlpatterns = [path("ws/agent/", AgentEventsConsumer.as_asgi())]
