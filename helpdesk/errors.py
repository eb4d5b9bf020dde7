"""One project error, and the two places that turn it into a response."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework.response import Response
from rest_framework.views import exception_handler


class HelpdeskError(Exception):
    """An error a user can cause: it carries a code, an HTTP status and structured fields."""

    code = "helpdesk_error"
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code, "extra": self.extra}


class NotFound(HelpdeskError):
    code = "not_found"
    status = 404


class PermissionDenied(HelpdeskError):
    code = "permission_denied"
    status = 403


class InvalidTransition(HelpdeskError):
    code = "invalid_transition"
    status = 409


class BadInput(HelpdeskError):
    code = "bad_input"
    status = 400


class EgressRefused(BadInput):
    """A server a merchant named is not one the platform connects to (an internal address, a
    port that is not the service's). The message never says what is listening where."""

    code = "egress_refused"


class HelpdeskErrorMiddleware:
    """Pages: show the error as a message and go back; machines: JSON with the status."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, HelpdeskError):
            return None
        if "text/html" in request.headers.get("Accept", ""):
            referer = request.headers.get("Referer")
            if (
                request.method == "POST"
                and referer
                and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()})
            ):
                messages.error(request, exc.message)
                return HttpResponseRedirect(referer)
        return error_response(request, exc)


def error_response(request: HttpRequest, exc: HelpdeskError) -> HttpResponse:
    """The error as a page for browsers (they ask for HTML), as JSON for everything else."""
    if "text/html" in request.headers.get("Accept", ""):
        return render(request, "error.html", {"error": exc}, status=exc.status)
    return JsonResponse(exc.as_dict(), status=exc.status)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, HelpdeskError):
        return Response(exc.as_dict(), status=exc.status)
    return exception_handler(exc, context)
