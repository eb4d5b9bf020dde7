"""Settings for running past one process (docs/scaling.md): the channel layer spread over several
Redis nodes (a comma-separated CHANNEL_LAYER_REDIS_URLS becomes channels-redis' hosts, in order;
unset, REDIS_URL is the one), and the worker's pool size from CELERY_CONCURRENCY."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def setting(expression: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start Django with ``extra_env`` and print ``expression`` (of ``settings``) as JSON."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CHANNEL_LAYER_REDIS_URLS", "CELERY_CONCURRENCY"}
    }
    env |= {"DJANGO_SETTINGS_MODULE": "helpdesk.settings", **extra_env}
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({expression}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def layer_hosts(extra_env: dict[str, str]) -> list[dict]:
    result = setting("settings.CHANNEL_LAYERS['default']['CONFIG']['hosts']", extra_env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_shards_the_layer_over_every_node_listed_in_order() -> None:
    hosts = layer_hosts(
        {"CHANNEL_LAYER_REDIS_URLS": "redis://layer-a:6379/0, redis://layer-b:6379/0"}
    )
    assert [host["address"] for host in hosts] == [
        "redis://layer-a:6379/0",
        "redis://layer-b:6379/0",
    ]
    assert all(host["socket_timeout"] == 15 for host in hosts)


def test_without_the_list_the_layer_uses_redis_url() -> None:
    hosts = layer_hosts({"REDIS_URL": "redis://one-node:6379/3"})
    assert [host["address"] for host in hosts] == ["redis://one-node:6379/3"]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)")
def test_a_group_message_reaches_channels_that_live_on_different_nodes() -> None:
    # Two entries for the test's Redis: the layer treats them as two nodes and hashes each
    # channel and group to one of them, as it would with two servers.
    address = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"]
    layer = RedisChannelLayer(
        hosts=[{"address": address}, {"address": address}], prefix=f"shards-{uuid.uuid4().hex}"
    )

    async def send_and_hear() -> tuple[set[int], list[int]]:
        channels = [await layer.new_channel() for _ in range(16)]
        for name in channels:
            await layer.group_add("agents", name)
        await layer.group_send("agents", {"type": "ticket.created", "number": 7})
        heard = [(await asyncio.wait_for(layer.receive(name), 5))["number"] for name in channels]
        nodes = {layer.consistent_hash(name) for name in channels}
        await layer.flush()
        return nodes, heard

    nodes, heard = asyncio.run(send_and_hear())
    assert nodes == {0, 1}
    assert heard == [7] * 16


def test_the_worker_pool_size_comes_from_celery_concurrency_and_defaults_to_the_cpus() -> None:
    pool_size = "settings.CELERY_WORKER_CONCURRENCY"
    assert setting(pool_size, {"CELERY_CONCURRENCY": "3"}).stdout.strip() == "3"
    assert setting(pool_size, {"CELERY_CONCURRENCY": ""}).stdout.strip() == "null"  # CPUs
    refused = setting(pool_size, {"CELERY_CONCURRENCY": "four"})
    assert refused.returncode != 0
    assert "CELERY_CONCURRENCY='four' is not an integer" in refused.stderr
