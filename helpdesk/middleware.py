"""Request-wide middleware: a request id for the logs, refusing input nothing can store, and the
signed-in member's own interface language."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput, error_response

REQUEST_ID_HEADER = "X-Request-ID"
# A reverse proxy's id (nginx's $request_id, an AWS trace id) is kept so its log and ours join
# up; anything else, or nothing, gets a fresh one. The shape is checked because it goes into
# every log line and a response header.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,200}")
# PostgreSQL text cannot hold NUL (psycopg2 raises ValueError, a 500 wherever the value reaches
# a query) and an unpaired surrogate cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}

access_log = structlog.get_logger("helpdesk.request")


class RequestIdMiddleware:
    """Give every request an id: bound into its log lines and returned in ``X-Request-ID``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request.headers.get(REQUEST_ID_HEADER, "")
        if not _ACCEPTABLE_REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        request.request_id = request_id
        started = time.monotonic()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            response = self.get_response(request)
            tenant = getattr(request, "tenant", None)
            # The path only: query strings carry search terms (customers' names and addresses).
            access_log.info(
                "request finished",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
                tenant_id=tenant.pk if tenant is not None else None,
            )
        response[REQUEST_ID_HEADER] = request_id
        return response


def _first_unstorable(pairs: Iterable[tuple[str, Any]]) -> str | None:
    """The name of the first field whose name or value holds a character nothing can store."""
    for name, values in pairs:
        if _UNSTORABLE.search(name):
            return _UNSTORABLE.sub("?", name)[:100]
        for value in values if isinstance(values, list) else [values]:
            text = value if isinstance(value, str) else getattr(value, "name", "") or ""
            if _UNSTORABLE.search(text):
                return name[:100]
    return None


class RefuseUnstorableInputMiddleware:
    """Answer 400 with the reason when the path, a header, a cookie, a query parameter or a
    posted form field holds NUL (or an unpaired surrogate), instead of failing deep inside a
    query with a 500.

    Path, headers and cookies are checked before the session is loaded (a NUL in the session
    cookie would reach the session query); parameters once the view is known, so the page is
    shown to the signed-in user and raw-body endpoints are left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _UNSTORABLE.search(request.path):
            return self._refuse(request, _("The address"), where="path", early=True)
        headers = (
            (key[5:].replace("_", "-").title(), value)
            for key, value in request.META.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        )
        header = _first_unstorable(headers)
        if header is not None:
            return self._refuse(request, header, where="header", early=True)
        # Checked parsed: a quoted cookie carries NUL as the escape \000 in the header itself.
        cookie = _first_unstorable(request.COOKIES.items())
        if cookie is not None:
            return self._refuse(request, cookie, where="cookie", early=True)
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        field = _first_unstorable(request.GET.lists())
        if field is not None:
            return self._refuse(request, field, where="query")
        # Machine endpoints marked csrf_exempt read their body themselves (inbound mail takes the
        # raw bytes whatever the Content-Type says; parsing it here as a form would refuse mail
        # with many "&"), and DRF's serializers already refuse NUL in their CharFields.
        if request.method in _SAFE_METHODS or getattr(view_func, "csrf_exempt", False):
            return None
        field = _first_unstorable(request.POST.lists()) or _first_unstorable(request.FILES.lists())
        if field is not None:
            return self._refuse(request, field, where="form")
        return None

    def _refuse(
        self, request: HttpRequest, field: str, *, where: str, early: bool = False
    ) -> HttpResponse:
        if early and not hasattr(request, "user"):
            # Before the session is read: the error page is shown as to someone signed out.
            request.user = AnonymousUser()
        error = BadInput(
            _(
                "“%(field)s” contains a character that cannot be accepted (a NUL byte or an "
                "invalid Unicode character)."
            )
            % {"field": field},
            field=field,
            where=where,
        )
        return error_response(request, error)


class MemberLanguageMiddleware:
    """Work in the language the member chose, kept on their membership so it follows them to the
    next sign-in and to any browser, and remember the one they switch to in the header.

    Which language a page reads in, first match wins: the member's stored choice
    (``Membership.language``); the language cookie (what this browser chose, signed in or not);
    the merchant's language (``Tenant.locale``, set by ``tenancy.TenantMiddleware``); the
    browser's Accept-Language (``LocaleMiddleware``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from helpdesk.tenancy import membership_of

        tenant = getattr(request, "tenant", None)
        membership = membership_of(request) if tenant is not None else None
        if membership is not None:
            cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
            for language in (membership.language, cookie, tenant.locale):
                if _offered(language):
                    translation.activate(language)
                    request.LANGUAGE_CODE = translation.get_language()
                    break
        response = self.get_response(request)
        if membership is not None and _switched_language(request, response):
            self._keep(request, response.cookies[settings.LANGUAGE_COOKIE_NAME].value)
        return response

    def _keep(self, request: HttpRequest, language: str) -> None:
        from helpdesk import profile
        from helpdesk.permissions import acting_agent_for_request

        profile.keep_language(acting_agent=acting_agent_for_request(request), language=language)


def _offered(language: str) -> bool:
    return bool(language) and language.lower() in {code for code, _name in settings.LANGUAGES}


def _switched_language(request: HttpRequest, response: HttpResponse) -> bool:
    """Whether this was Django's ``set_language`` accepting a language (it sets the cookie only
    for a language the site offers)."""
    match = getattr(request, "resolver_match", None)
    return (
        request.method == "POST"
        and match is not None
        and match.url_name == "set_language"
        and settings.LANGUAGE_COOKIE_NAME in response.cookies
    )
