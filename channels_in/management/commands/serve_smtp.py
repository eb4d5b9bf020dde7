"""``manage.py serve_smtp``: the inbound SMTP service for forwarding addresses, until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from channels_in.smtp_server import ForwardingController

logger = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = (
        "Receive mail for the channels' forwarding addresses over SMTP (point the inbound "
        "domain's MX record here). Stops on SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default=None, help="address to listen on (default HELPDESK_SMTP_HOST)"
        )
        parser.add_argument(
            "--port", type=int, default=None, help="port to listen on (default HELPDESK_SMTP_PORT)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"] or settings.HELPDESK_SMTP_HOST
        port = options["port"] or settings.HELPDESK_SMTP_PORT
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        controller = ForwardingController(host=host, port=port)
        controller.start()
        starttls = bool(settings.HELPDESK_SMTP_TLS_CERT)
        tls = "with STARTTLS" if starttls else "without STARTTLS"
        logger.info("smtp service listening", host=host, port=port, starttls=starttls)
        self.stdout.write(
            f"SMTP service on {host}:{port} ({tls}) for *@{settings.HELPDESK_INBOUND_DOMAIN}",
        )
        self.stdout.flush()
        try:
            stopping.wait()
        finally:
            controller.stop()
            logger.info("smtp service stopped")
