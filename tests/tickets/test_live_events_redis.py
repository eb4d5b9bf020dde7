"""Live events on the production channel layer (channels-redis), through the real ASGI app.

The in-memory layer in test_live_events.py cannot show transport faults: with redis-py 8 and
channels-redis 4.3 an idle socket's 5 s BZPOPMIN outlived the client's 5 s socket_timeout, so an
agent's socket closed after 5 s of quiet. SLOW: the idle test waits 30 s on purpose.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client

from helpdesk.realtime import publish_after_commit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]

IDLE_SECONDS = 30


@pytest.fixture
def redis_channel_layer(settings) -> Iterator[None]:
    """The production layer config (client timeouts included) under a prefix of this run's own."""
    layers = copy.deepcopy(django_settings.CHANNEL_LAYERS)
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    layers["default"]["CONFIG"]["prefix"] = f"test-live-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = layers  # resets channels' cached layer
    yield


def agent_socket(user) -> WebsocketCommunicator:
    """A socket to /ws/agent/ through helpdesk.asgi, signed in with a real session cookie."""
    from helpdesk.asgi import application

    client = Client()
    client.force_login(user)
    session_id = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return WebsocketCommunicator(
        application,
        "/ws/agent/",
        headers=[
            (b"host", b"testserver"),
            (b"origin", b"http://testserver"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session_id}".encode()),
        ],
    )


def publish_in_a_committed_transaction(tenant_id: int, subject: str) -> None:
    with transaction.atomic():
        publish_after_commit(tenant_id, "ticket.created", {"subject": subject})


async def heard_besides_presence(socket, seconds: float) -> list[dict]:
    """What ``socket`` sent within ``seconds``, agents' presence aside: an agent's own status
    (``agent.presence``) is another feature's event, sent after the publisher moves on
    (helpdesk.realtime), so on Redis it may arrive a moment after the socket connected."""
    heard: list[dict] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await socket.receive_nothing(timeout=min(left, 1.0), interval=0.1):
            continue
        event = await socket.receive_json_from(timeout=1)
        if event.get("event") != "agent.presence":
            heard.append(event)
    return heard


def test_an_idle_agent_socket_stays_open_for_30_seconds_and_then_hears_an_event_within_1_second(
    redis_channel_layer, agent_li, tenant_acme
):
    socket = agent_socket(agent_li)

    async def scenario() -> tuple[dict, float]:
        connected, _ = await socket.connect(timeout=5)
        assert connected
        try:
            heard = await heard_besides_presence(socket, IDLE_SECONDS)
            assert heard == [], f"the idle socket sent {heard}"
            # A consumer that crashed (say on a Redis timeout) sends nothing either: the
            # application has finished, and a real server would have closed the socket.
            if socket.future.done():
                pytest.fail(f"the socket's consumer stopped while idle: {socket.future!r}")
            published_at = time.monotonic()
            await sync_to_async(publish_in_a_committed_transaction)(tenant_acme.pk, "空调不制冷")
            event = await socket.receive_json_from(timeout=5)
            latency = time.monotonic() - published_at
        finally:
            try:
                await socket.disconnect()  # re-raises the consumer's exception if it crashed
            finally:
                await get_channel_layer().flush()  # this run's keys only (its prefix)
        return event, latency

    event, latency = asyncio.run(scenario())
    assert event == {"event": "ticket.created", "payload": {"subject": "空调不制冷"}}
    print(f"event latency after {IDLE_SECONDS} s idle: {latency * 1000:.1f} ms")
    assert latency < 1.0
