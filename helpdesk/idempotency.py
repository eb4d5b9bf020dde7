"""``Idempotency-Key`` on API writes: the same key from the same caller gets the first answer.

A POST or PATCH (or PUT, DELETE) sent with the header claims the key before the view runs
(``helpdesk.api_permissions.IdempotencyKeyHonoured``, the last permission, once the caller is known); the middleware
keeps the answer (any status below 500 but 429) on the way out. A repeat with the same method, path and
body is answered with the kept status and body, and ``Idempotent-Replayed: true``, without
doing anything again. The same key with another request is refused (422
``idempotency_key_reused``); a repeat while the first is still being answered is 409
``idempotency_key_in_progress`` (a claim left unanswered for five minutes is taken as
abandoned: its process died). A 5xx or 429 answer is not kept: the key may be tried again. Keys
are remembered ``HELPDESK_IDEMPOTENCY_HOURS`` (24) and belong to one caller: an API key, or a
signed-in person, within one merchant.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.request import Request

from helpdesk.errors import BadInput, HelpdeskError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CLAIM_ATTRIBUTE = "_idempotency_claim"
PURGED_PER_CLAIM = 20
# A claim without an answer this old was abandoned (no request runs this long: the server's
# timeouts end it first).
ABANDONED_AFTER = timedelta(minutes=5)


class IdempotencyKeyReused(HelpdeskError):
    code = "idempotency_key_reused"
    status = 422


class IdempotencyKeyInProgress(HelpdeskError):
    code = "idempotency_key_in_progress"
    status = 409


class Replayed(Exception):
    """The first answer to this key, to be sent again as it was (helpdesk.errors turns it into
    the response)."""

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.content_type = content_type
        self.body = body

    def response(self) -> HttpResponse:
        answer = HttpResponse(self.body, status=self.status, content_type=self.content_type)
        answer[REPLAYED_HEADER] = "true"
        return answer


def caller_of(request: Request) -> str | None:
    """Whose keys these are: the API key, or the signed-in person."""
    from helpdesk.models import ApiKey

    if isinstance(request.auth, ApiKey):
        return f"key:{request.auth.pk}"
    if request.user is not None and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return None


def fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), request.body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def claim(request: Request, key: str) -> None:
    """Claim ``key`` for this request, or raise: ``Replayed`` with the first answer,
    ``IdempotencyKeyReused`` or ``IdempotencyKeyInProgress``."""
    from helpdesk.models import IdempotentRequest

    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise BadInput(
            _("An Idempotency-Key is 1 to %(most)s printable characters.")
            % {"most": MAX_KEY_CHARS},
            header=HEADER,
        )
    caller = caller_of(request)
    if caller is None:
        return
    now = timezone.now()
    printed = fingerprint(request)
    expired = IdempotentRequest.objects.filter(expires_at__lte=now)
    # This key, if its time is up, and a few other expired ones: the table keeps one day.
    expired.filter(caller=caller, key=key).delete()
    expired.filter(pk__in=list(expired.values_list("pk", flat=True)[:PURGED_PER_CLAIM])).delete()
    try:
        with transaction.atomic():
            claimed = IdempotentRequest.objects.create(
                key=key,
                caller=caller,
                method=request.method,
                path=request.get_full_path()[:2000],
                fingerprint=printed,
                expires_at=now + timedelta(hours=_hours()),
            )
    except IntegrityError:
        first = IdempotentRequest.objects.filter(caller=caller, key=key).first()
        if first is None:  # expired and removed meanwhile: a fresh start next time
            raise IdempotencyKeyInProgress(
                _("This Idempotency-Key is being used by another request right now; try again."),
                key=key,
            ) from None
        if first.fingerprint != printed:
            raise IdempotencyKeyReused(
                _(
                    "This Idempotency-Key was used for another request (%(method)s %(path)s "
                    "or another body): use a new key for a new request."
                )
                % {"method": first.method, "path": first.path},
                key=key,
            ) from None
        if first.status is None and first.created_at < now - ABANDONED_AFTER:
            # Its process died before answering (nothing was kept): this request may do it.
            IdempotentRequest.objects.filter(pk=first.pk, status__isnull=True).delete()
            return claim(request, key)
        if first.status is None:
            raise IdempotencyKeyInProgress(
                _("The first request with this Idempotency-Key is still being answered."),
                key=key,
            ) from None
        raise Replayed(first.status, first.content_type, bytes(first.body)) from None
    setattr(request._request, _CLAIM_ATTRIBUTE, (claimed.pk, request.auth))


def _hours() -> int:
    from django.conf import settings

    return settings.HELPDESK_IDEMPOTENCY_HOURS


class IdempotencyMiddleware:
    """Keeps the answer to a claimed key; a 5xx or 429 frees the key instead."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        claimed = getattr(request, _CLAIM_ATTRIBUTE, None)
        if claimed is not None:
            keep(request, claimed[0], response)
        return response


def keep(request: HttpRequest, pk: int, response: HttpResponse) -> None:
    from helpdesk import tenancy
    from helpdesk.models import IdempotentRequest

    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return
    with tenancy.activate(tenant):
        found = IdempotentRequest.objects.filter(pk=pk)
        # A 5xx or a 429 (throttles run after the claim) is not an answer to keep: the caller
        # may try the same key again.
        if response.status_code >= 500 or response.status_code == 429 or response.streaming:
            found.delete()
            return
        found.update(
            status=response.status_code,
            content_type=response.get("Content-Type", ""),
            body=response.content,
        )
