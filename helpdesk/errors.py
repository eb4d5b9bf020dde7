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


# DRF's own errors, by the code the API answers with (a class's default_code otherwise).
_API_ERROR_CODES = {
    "not_authenticated": "not_authenticated",
    "authentication_failed": "authentication_failed",
    "permission_denied": "permission_denied",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "throttled": "rate_limited",
    "invalid": "invalid",
    "parse_error": "bad_input",
    "unsupported_media_type": "unsupported_media_type",
    "not_acceptable": "not_acceptable",
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as ``{"message", "code", "extra"}`` with its status: the project's own
    errors as they are, DRF's (401, 403, 404, 405, 415, 429, validation) and Django's 404 and
    permission errors in the same shape. A repeated Idempotency-Key gets its first answer."""
    from rest_framework import exceptions as drf

    from helpdesk.idempotency import Replayed

    if isinstance(exc, Replayed):
        return exc.response()  # type: ignore[return-value]
    if isinstance(exc, HelpdeskError):
        return Response(exc.as_dict(), status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    extra: dict[str, Any] = {}
    if isinstance(exc, drf.ValidationError):
        message = _first_message(exc.detail) or "Invalid input"
        code = "invalid"
        extra["fields"] = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
    elif isinstance(exc, drf.APIException):
        message = _first_message(exc.detail) or str(exc.default_detail)
        code = _API_ERROR_CODES.get(str(exc.default_code), str(exc.default_code))
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            extra["retry_after_seconds"] = int(exc.wait + 0.999)
        if isinstance(exc, drf.MethodNotAllowed):
            extra["allowed"] = sorted(response.get("Allow", "").replace(" ", "").split(","))
    else:  # Django's Http404 and PermissionDenied, which DRF maps to 404 and 403
        message = str(response.data.get("detail", "")) if isinstance(response.data, dict) else ""
        code = "not_found" if response.status_code == 404 else "permission_denied"
    response.data = {"message": message, "code": code, "extra": extra}
    return response


def _first_message(detail: Any) -> str:
    """The first message of a DRF error detail (a string, or a list or dict of them)."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            found = _first_message(value)
            if found:
                return found if field in ("non_field_errors", "detail") else f"{field}: {found}"
        return ""
    if isinstance(detail, list):
        return next((found for item in detail if (found := _first_message(item))), "")
    return str(detail)


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any path under the API that names nothing: the API's 404, not the site's page."""
    from django.utils.translation import gettext

    return JsonResponse(
        {
            "message": gettext("No such API endpoint"),
            "code": "not_found",
            "extra": {"path": request.path[:200]},
        },
        status=404,
    )


def valid(serializer_class: type[Any], request: Any) -> dict[str, Any]:
    """An API request's body checked by ``serializer_class`` (a DRF serializer): 400 with the
    fields when it does not pass, 400 when the body is not a JSON object at all."""
    from django.utils.translation import gettext as _

    if not isinstance(request.data, dict):
        raise BadInput(_("Send a JSON object"))
    checked = serializer_class(data=request.data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)
