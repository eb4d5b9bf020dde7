"""Structured logs (structlog) and error reports (Sentry) without customers' personal data.

Every line, from our code or from a library's standard logger, carries the ids bound for the
work at hand: ``request_id`` (``helpdesk.middleware.RequestIdMiddleware``), ``tenant_id`` (the
active merchant, read when the line is written) and ``raw_inbound_id`` (the inbound pipeline).
"""

from __future__ import annotations

from typing import Any

import structlog
import structlog.tracebacks

# Request parts Sentry must never receive: they hold customers' mail, sessions and secrets.
_SECRET_HEADERS = {"cookie", "authorization", "x-helpdesk-secret", "x-csrftoken"}


def add_tenant_id(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add the active merchant's id, unless the line names one itself."""
    if "tenant_id" not in event_dict:
        # Imported here: settings import this module before Django's apps are ready.
        from helpdesk.tenancy import current_tenant

        tenant = current_tenant()
        if tenant is not None:
            event_dict["tenant_id"] = tenant.pk
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        add_tenant_id,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def logging_config(*, debug: bool, level: str) -> dict[str, Any]:
    """Django's LOGGING: one console handler whose lines are JSON (key=value in development).

    Also points structlog's own loggers at the standard library, so both kinds of line go
    through the same formatter.
    """
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: list[Any] = (
        [structlog.dev.ConsoleRenderer(colors=False)]
        if debug
        else [
            # Tracebacks as data, without local variables: they hold customers' mail.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": [
                    *_shared_processors(),
                    structlog.stdlib.ExtraAdder(),
                ],
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *renderer,
                ],
            }
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structured"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Without its own handlers (Django's default prints lines a second time,
            # unformatted, in DEBUG), Django's lines reach the root handler like any other.
            "django": {"handlers": [], "level": level, "propagate": True},
        },
    }


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Drop request bodies, cookies, query strings and secret headers from a Sentry event."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if name.lower() not in _SECRET_HEADERS
            }
    event.pop("user", None)
    return event


def init_sentry(*, dsn: str, environment: str, release: str | None = None) -> bool:
    """Report errors to Sentry when a DSN is configured; without one, do nothing."""
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        # We hold customers' mail: no IP addresses, user names, cookies or bodies, and no local
        # variables in stack frames (they hold message text and addresses).
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=scrub_event,
    )
    return True
