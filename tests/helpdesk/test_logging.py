"""Logs an operator can follow: one JSON object a line, naming the request, the merchant and the
inbound payload; errors reach Sentry only when configured, and never with personal data."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import structlog
from django.http import HttpRequest, HttpResponse
from django.urls import path

from channels_in import pipeline
from channels_in.models import RawInbound
from helpdesk import tenancy
from helpdesk.logging import init_sentry, scrub_event
from tests.conftest import login

ROOT = Path(__file__).resolve().parents[2]


def queue_view(request: HttpRequest) -> HttpResponse:
    logging.getLogger("tickets.views").warning("queue looked at")
    structlog.get_logger("tickets.views").info("queue counted", open_tickets=3)
    return HttpResponse("ok")


# This module is the URL conf of the request tests below: a view that writes log lines.
urlpatterns = [path("queue/", queue_view)]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the configured console handler writes during the test."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def written(buffer: io.StringIO) -> list[dict]:
    """The lines written so far; json.loads fails the test if one is not JSON."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.django_db
@pytest.mark.urls("tests.helpdesk.test_logging")
def test_lines_written_during_a_request_carry_its_request_id_and_the_merchant(
    agent_li, tenant_acme, log_lines
):
    response = login(agent_li).get("/queue/")
    lines = written(log_lines)
    request_id = response["X-Request-ID"]
    assert request_id
    by_event = {line["event"]: line for line in lines}
    for event in ("queue looked at", "queue counted", "request finished"):
        assert by_event[event]["request_id"] == request_id, event
        assert by_event[event]["tenant_id"] == tenant_acme.pk, event
    assert by_event["queue counted"]["open_tickets"] == 3
    assert by_event["request finished"]["status"] == 200


@pytest.mark.django_db
@pytest.mark.urls("tests.helpdesk.test_logging")
def test_a_proxys_request_id_is_kept_and_a_forged_one_replaced(agent_li, log_lines):
    client = login(agent_li)
    assert client.get("/queue/", HTTP_X_REQUEST_ID="nginx-4f1c2a")["X-Request-ID"] == (
        "nginx-4f1c2a"
    )
    forged = client.get("/queue/", HTTP_X_REQUEST_ID='x"\n{"admin": true}')["X-Request-ID"]
    assert forged != 'x"\n{"admin": true}'
    assert len(forged) == 32
    assert {line["request_id"] for line in written(log_lines)} == {"nginx-4f1c2a", forged}


@pytest.mark.django_db
def test_a_line_written_while_processing_an_inbound_payload_names_it(acme_email, log_lines):
    with tenancy.activate(acme_email.tenant):
        raw = RawInbound.objects.create(
            account=acme_email, external_id="<log@example.cn>", payload=b"Subject: x\r\n\r\nx"
        )
        broken = mock.Mock()
        broken.parse.side_effect = RuntimeError("parser crashed")
        with (
            mock.patch.object(pipeline.registry, "adapter_for", return_value=broken),
            pytest.raises(RuntimeError),
        ):
            pipeline.process_raw(raw.pk)
    failure = next(line for line in written(log_lines) if line["event"].startswith("inbound"))
    assert failure["raw_inbound_id"] == raw.pk
    assert failure["tenant_id"] == acme_email.tenant.pk
    assert failure["level"] == "error"
    assert "parser crashed" in json.dumps(failure["exception"])
    # Frames without their local variables: those hold the customer's mail.
    assert "locals" not in json.dumps(failure["exception"])
    # The binding ends with the payload: later lines do not name it.
    logging.getLogger("tickets.views").warning("afterwards")
    assert "raw_inbound_id" not in written(log_lines)[-1]


def test_sentry_is_not_started_without_a_dsn():
    with mock.patch("sentry_sdk.init") as init:
        assert init_sentry(dsn="", environment="production") is False
    init.assert_not_called()


def test_sentry_is_started_without_personal_data_when_a_dsn_is_set():
    with mock.patch("sentry_sdk.init") as init:
        assert init_sentry(dsn="https://key@sentry.example/1", environment="production")
    options = init.call_args.kwargs
    assert options["dsn"] == "https://key@sentry.example/1"
    assert options["send_default_pii"] is False
    assert options["include_local_variables"] is False
    assert options["max_request_body_size"] == "never"
    assert options["before_send"] is scrub_event


def settings_sentry_state(**extra_env: str) -> str:
    """Whether Sentry is active once the settings are loaded, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"} | extra_env
    code = (
        "import django, sentry_sdk; django.setup(); c = sentry_sdk.get_client();"
        "print(c.is_active(), c.options.get('send_default_pii'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "helpdesk.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_the_settings_start_sentry_only_when_sentry_dsn_is_set():
    assert settings_sentry_state() == "False None"
    # Nothing listens on port 9: starting the client sends nothing.
    assert settings_sentry_state(SENTRY_DSN="https://key@127.0.0.1:9/1") == "True False"


def test_sentry_events_lose_bodies_cookies_query_strings_and_secret_headers():
    event = {
        "request": {
            "url": "https://help.example.com/tickets/",
            "method": "POST",
            "data": {"body": "My address is 1 Long Road"},
            "cookies": {"sessionid": "s3cret"},
            "query_string": "q=li.wei@example.cn",
            "headers": {
                "Cookie": "sessionid=s3cret",
                "Authorization": "Bearer hd_x_y",
                "X-Helpdesk-Secret": "abc",
                "User-Agent": "curl",
            },
        },
        "user": {"email": "li.wei@example.cn"},
    }
    scrubbed = scrub_event(event, {})
    assert scrubbed["request"] == {
        "url": "https://help.example.com/tickets/",
        "method": "POST",
        "headers": {"User-Agent": "curl"},
    }
    assert "user" not in scrubbed
