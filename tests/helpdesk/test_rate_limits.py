"""Quotas: an inbound channel and an API key past theirs get 429 with Retry-After, and are let
through again once the window has passed. The counters are in Redis, so every process counts
together."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.test import APIClient

from channels_in.models import ChannelAccount, RawInbound
from helpdesk import tenancy, throttles
from helpdesk.models import ApiKey
from tests.channels_in.mails import customer_mail

pytestmark = pytest.mark.django_db

WINDOW_START = 1_800_000_000.0  # a whole number of minutes, hours and days


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The quotas' clock, moved by tests instead of sleeping (``clock[0] += 60``)."""
    now = [WINDOW_START]
    monkeypatch.setattr(throttles, "clock", lambda: now[0])
    return now


def post_mail(account: ChannelAccount, n: int) -> object:
    return Client().post(
        f"/inbound/{account.tenant.slug}/email/{account.pk}/",
        customer_mail(message_id=f"<quota-{n}@example.cn>"),
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=account.inbound_secret,
    )


def stored(tenant) -> int:
    with tenancy.activate(tenant):
        return RawInbound.objects.count()


def redis_keys(pattern: str) -> list[bytes]:
    return redis.Redis.from_url(django_settings.REDIS_URL).keys(f"*{pattern}*")


def take_in_another_process(scope: str, subject: str, rate: str, times: int) -> None:
    """Another web process (a fresh interpreter) counts ``times`` requests against a quota."""
    code = (
        "import django; django.setup()\n"
        "from helpdesk.throttles import take\n"
        f"for _ in range({times}): assert take(scope={scope!r}, subject={subject!r}, rate={rate!r}).allowed\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "helpdesk.settings"},
        timeout=60,
    )


def key_client(key_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_token}")
    return client


# --- inbound endpoint, per channel ---------------------------------------------------------


def test_a_channel_past_its_quota_gets_429_with_retry_after_then_is_let_through_again(
    acme_email, settings, clock
):
    settings.HELPDESK_INBOUND_RATE = "2/m"
    assert post_mail(acme_email, 1).status_code == 202
    clock[0] += 20
    assert post_mail(acme_email, 2).status_code == 202

    refused = post_mail(acme_email, 3)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "40"  # the rest of the minute
    assert refused.json()["code"] == "rate_limited"
    assert stored(acme_email.tenant) == 2  # the refused mail was not stored

    clock[0] += 40
    assert post_mail(acme_email, 3).status_code == 202
    assert stored(acme_email.tenant) == 3


def test_one_busy_channel_does_not_use_up_another_channels_quota(acme_email, settings, clock):
    settings.HELPDESK_INBOUND_RATE = "1/m"
    with tenancy.activate(acme_email.tenant):
        other = ChannelAccount.objects.create(kind="email", name="Acme sales")
    assert post_mail(acme_email, 1).status_code == 202
    assert post_mail(acme_email, 2).status_code == 429
    assert post_mail(other, 3).status_code == 202


def test_the_channel_quota_is_held_in_redis_across_processes(acme_email, settings):
    settings.HELPDESK_INBOUND_RATE = "3/d"
    subject = f"acme:{acme_email.pk}"
    take_in_another_process("inbound", subject, "3/d", times=3)

    assert redis_keys(f"ratelimit:inbound:{subject}:")
    response = post_mail(acme_email, 1)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_mail_is_still_accepted_when_redis_is_unreachable(acme_email, settings):
    settings.HELPDESK_INBOUND_RATE = "1/m"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    assert post_mail(acme_email, 1).status_code == 202
    assert post_mail(acme_email, 2).status_code == 202


# --- REST API, per key ----------------------------------------------------------------------


def test_an_api_key_past_its_quota_gets_429_with_retry_after_then_is_let_through_again(
    tenant_acme, agent_li, settings, clock
):
    settings.HELPDESK_API_RATE = "3/m"
    _, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="shop sync")
    client = key_client(token)
    for _ in range(3):
        assert client.get("/api/v1/tickets/").status_code == 200

    refused = client.get("/api/v1/tickets/")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"

    # Another key of the same merchant has its own quota.
    _, other_token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="reports")
    assert key_client(other_token).get("/api/v1/tickets/").status_code == 200

    clock[0] += 60
    assert client.get("/api/v1/tickets/").status_code == 200


def test_the_api_key_quota_is_held_in_redis_across_processes(tenant_acme, agent_li, settings):
    settings.HELPDESK_API_RATE = "2/d"
    key, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="shop sync")
    take_in_another_process("api", str(key.pk), "2/d", times=2)

    assert redis_keys(f"ratelimit:api:{key.pk}:")
    response = key_client(token).get("/api/v1/tickets/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_rates_are_read_strictly():
    assert throttles.Quota.parse("600/m") == throttles.Quota(600, 60)
    assert throttles.Quota.parse("10/5m") == throttles.Quota(10, 300)
    with pytest.raises(ValueError):
        throttles.Quota.parse("600 per minute")
