"""Events pushed to agents' browsers over Channels.

A push is a hint, never the truth (channels-redis may drop messages past capacity): pages reload
what changed from the database when they receive one. Events of one transaction leave together,
once, after it commits; a rolled-back transaction sends nothing.

On channels-redis the events go out through one event loop per process, running in a thread of
its own, with a layer instance of its own that keeps its Redis connections: a worker does not
start a loop and connect to Redis for every message it files, nor wait for the send. (Its own
instance, because the shared one's ``flush``/``close_pools`` closes every loop's connections
from the caller's loop.) A forked process (a Celery prefork child) starts a loop of its own on
its first send. Other layers (the in-memory one of the tests) are sent to on the caller's loop,
as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any

from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, channel_layers, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


class _SendingLoop:
    """An event loop running in a daemon thread, owned by the process that started it, and the
    channel layer instance it sends through."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="helpdesk-realtime", daemon=True
        )
        self.thread.start()
        self.configured: BaseChannelLayer | None = None
        self.layer: BaseChannelLayer | None = None
        self._order: asyncio.Lock | None = None

    def in_order(self) -> asyncio.Lock:
        """A lock of the loop's own (call on the loop): FIFO, so batches keep their order."""
        if self._order is None:
            self._order = asyncio.Lock()
        return self._order

    def layer_like(self, configured: BaseChannelLayer) -> BaseChannelLayer:
        """An instance of the configured layer for this loop alone; a new one when the
        configuration changed (channels made a new shared instance)."""
        if self.configured is not configured:
            old, self.layer = self.layer, channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            self.configured = configured
            if old is not None and hasattr(old, "close_pools"):
                asyncio.run_coroutine_threadsafe(old.close_pools(), self.loop)
        return self.layer


_sending_loop: _SendingLoop | None = None
_sending_loop_lock = threading.Lock()


def _sending_loop_of_this_process() -> _SendingLoop:
    """This process's sending loop, started on first use; a fork never reuses its parent's
    (the thread did not survive the fork, and its connections belong to the parent)."""
    global _sending_loop
    if _sending_loop is None or _sending_loop.pid != os.getpid():
        _sending_loop = _SendingLoop()
    return _sending_loop


def _loop_of_this_process() -> asyncio.AbstractEventLoop:
    with _sending_loop_lock:
        return _sending_loop_of_this_process().loop


def _send_on_own_loop(configured: BaseChannelLayer, events: list[tuple[str, dict]]) -> None:
    with _sending_loop_lock:
        sending = _sending_loop_of_this_process()
        layer = sending.layer_like(configured)

    async def send_all() -> None:
        # One batch after another, in the order their transactions committed.
        async with sending.in_order():
            for group, message in events:
                await layer.group_send(group, message)

    sent = asyncio.run_coroutine_threadsafe(send_all(), sending.loop)
    sent.add_done_callback(_log_failure)


def _sends_on_own_loop(layer: BaseChannelLayer) -> bool:
    # channels-redis keeps a connection pool per event loop, so any loop may send; the
    # in-memory layer's queues belong to the loop its consumers run on.
    return type(layer).__module__.startswith("channels_redis.")


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("realtime push failed", exc_info=future.exception())


def agents_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}-agents"


class _Batch:
    """The events of one transaction, flushed by a single on-commit callback."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def flush(self) -> None:
        layer = get_channel_layer()
        if layer is None or not self.events:
            return

        events = list(self.events)

        async def send_all() -> None:
            for group, message in events:
                await layer.group_send(group, message)

        try:
            if _sends_on_own_loop(layer):
                _send_on_own_loop(layer, events)
            else:
                async_to_sync(send_all)()
        except Exception:  # a lost push must never fail the work that caused it
            logger.warning("realtime push of %d events failed", len(events), exc_info=True)


def publish_after_commit(
    tenant_id: int, event: str, payload: dict[str, Any], *, ticket: Any = None
) -> None:
    """Send ``event`` to the tenant's connected agents once the transaction commits.

    An event about a ticket carries the ticket's group and assignee (never sent to browsers), so
    each socket passes it on only to an agent who may work that ticket.
    """
    message: dict[str, Any] = {"type": "helpdesk.event", "event": event, "payload": payload}
    if ticket is not None:
        message["reach"] = {"group": ticket.group_id, "assignee": ticket.assignee_id}
    connection = transaction.get_connection()
    batch: _Batch | None = getattr(connection, "_helpdesk_realtime_batch", None)
    pending = batch is not None and any(
        callback == batch.flush for _, callback, _ in connection.run_on_commit
    )
    if not connection.in_atomic_block or not pending:
        batch = _Batch()
        connection._helpdesk_realtime_batch = batch
        batch.events.append((agents_group(tenant_id), message))
        transaction.on_commit(batch.flush)
        return
    batch.events.append((agents_group(tenant_id), message))
