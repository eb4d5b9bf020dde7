"""Live events on channels-redis leave through one long-lived event loop per process: no loop
and no Redis connection is set up per message, and a forked worker starts a loop of its own."""

from __future__ import annotations

import asyncio
import copy
import os
import uuid
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.db import connection, transaction

from helpdesk import realtime

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]


@pytest.fixture
def redis_channel_layer(settings) -> Iterator[None]:
    layers = copy.deepcopy(django_settings.CHANNEL_LAYERS)
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    layers["default"]["CONFIG"]["prefix"] = f"test-loop-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = layers
    yield


def received(group: str, count: int) -> list[dict]:
    """What a listener on ``group`` hears of ``count`` events published meanwhile."""
    layer = get_channel_layer()

    def publish() -> None:
        try:
            for n in range(count):
                with transaction.atomic():
                    realtime.publish_after_commit(7, "ticket.created", {"n": n})
        finally:
            connection.close()  # this thread's own connection, not the test's

    async def listen() -> list[dict]:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        await sync_to_async(publish)()
        heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]
        await layer.flush()
        return heard

    return asyncio.run(listen())


def test_events_of_many_transactions_leave_through_one_loop_that_stays(redis_channel_layer):
    heard = received(realtime.agents_group(7), 3)
    assert [event["payload"] for event in heard] == [{"n": 0}, {"n": 1}, {"n": 2}]
    first = realtime._loop_of_this_process()
    assert first.is_running()
    assert realtime._loop_of_this_process() is first


def test_a_forked_process_starts_a_sending_loop_of_its_own(redis_channel_layer):
    parent = realtime._loop_of_this_process()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer whether its loop is new and running, then leave at once
        try:
            child = realtime._loop_of_this_process()
            os.write(write, b"1" if child is not parent and child.is_running() else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert realtime._loop_of_this_process() is parent
