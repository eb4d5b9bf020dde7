"""Inbound endpoints (thin: verify, store raw, enqueue, answer fast) and the admins' inbox log."""

from __future__ import annotations

import base64
import hmac
import re
from io import BytesIO
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels_in import pipeline, services
from channels_in.base import AdapterError
from channels_in.mail.charsets import decode_bytes
from channels_in.models import ChannelAccount, RawInbound
from helpdesk import tenancy, throttles
from helpdesk.models import Tenant
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require
from tickets.views import tenant_required

RAW_FIELDS = ("message", "email", "body-mime", "mime")
_FORM_UNSAFE = re.compile(rb"[\s]")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"message": message, "code": code, "extra": {}}, status=status)


def presented_secret(request: HttpRequest) -> str:
    """The channel secret from X-Helpdesk-Secret, a Bearer token or HTTP Basic's password."""
    if request.headers.get("X-Helpdesk-Secret"):
        return request.headers["X-Helpdesk-Secret"]
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def secret_accepted(account: ChannelAccount, presented: str) -> bool:
    """The channel's secret, or the one it replaced while its grace period lasts.

    Both comparisons always run, in constant time, so the answer's timing tells nothing about
    which secret (if any) came close.
    """
    current = hmac.compare_digest(presented.encode(), account.inbound_secret.encode())
    previous = hmac.compare_digest(
        presented.encode(), (account.previous_inbound_secret or "").encode()
    )
    previous_valid = bool(
        account.previous_inbound_secret
        and account.previous_secret_valid_until
        and account.previous_secret_valid_until > timezone.now()
    )
    return bool(presented) and (current or (previous and previous_valid))


def raw_mail_from(request: HttpRequest) -> bytes:
    """The raw message: the request body whatever its Content-Type says, unless the body really
    is a form (Mailgun, SendGrid) carrying one of the raw-MIME fields.

    ``curl --data-binary`` labels a piped mail ``application/x-www-form-urlencoded``; reading
    that as a form would find no fields and lose the mail.
    """
    body = request.body
    if request.content_type == "multipart/form-data":
        try:
            fields, files = request.parse_file_upload(request.META, BytesIO(body))
        except MultiPartParserError:
            return body
        for field in RAW_FIELDS:
            if field in files:
                return files[field].read()
        for field in RAW_FIELDS:
            if fields.get(field):
                # Form fields arrive decoded as UTF-8: 8-bit GBK may already be damaged.
                return fields[field].encode("utf-8", "surrogateescape")
        return body
    if request.content_type == "application/x-www-form-urlencoded" and not _FORM_UNSAFE.search(
        body
    ):
        # A real form body has no raw spaces or line breaks; a mail always has them. Values are
        # kept as bytes, so 8-bit mail survives percent-encoding.
        form = dict(pair.partition(b"=")[::2] for pair in body.split(b"&"))
        for field in RAW_FIELDS:
            value = form.get(field.encode())
            if value:
                return unquote_to_bytes(value.replace(b"+", b" "))
    return body


def read_large_body(request: HttpRequest, *, max_bytes: int) -> bool:
    """Read the whole body, up to ``max_bytes``, into ``request.body``; False past it.

    ``request.body`` itself refuses anything above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, right
    for every form of the site), and mail with attachments is often far larger: this endpoint
    alone reads the stream itself, still bounded, even when no Content-Length was sent.
    """
    body = request.read(max_bytes + 1)
    if len(body) > max_bytes:
        return False
    # What HttpRequest.body would have stored: later reads (body, a multipart form) see it.
    request._body = body
    request._stream = BytesIO(body)
    return True


@csrf_exempt
@require_POST
def email_inbound(request: HttpRequest, tenant_slug: str, account_id: int) -> HttpResponse:
    """Accept one raw RFC 822 message for a merchant's email channel; 202 once it is stored."""
    # Counted per channel before any database work, so a flood costs one Redis increment each.
    # Senders retry on 429 (Postfix with the README's `curl -f || exit 75`, the providers on
    # their own), so mail past the quota is late, not lost.
    quota = throttles.take(
        scope="inbound", subject=f"{tenant_slug}:{account_id}", rate=settings.HELPDESK_INBOUND_RATE
    )
    if not quota.allowed:
        response = _error(429, "rate_limited", "Too many messages for this channel; retry later")
        response["Retry-After"] = str(quota.retry_after_seconds)
        return response
    try:
        declared_length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "bad_length", "The Content-Length header is not a number")
    if declared_length > settings.HELPDESK_INBOUND_MAX_BYTES or not read_large_body(
        request, max_bytes=settings.HELPDESK_INBOUND_MAX_BYTES
    ):
        return _error(413, "too_large", "The message is larger than this helpdesk accepts")
    tenant = Tenant.objects.filter(slug=tenant_slug, is_active=True).first()
    if tenant is None:
        raise Http404("No such channel")
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.filter(pk=account_id, kind="email").first()
        if account is None:
            raise Http404("No such channel")
        if not secret_accepted(account, presented_secret(request)):
            return _error(403, "bad_secret", "The channel secret is missing or wrong")
        payload = raw_mail_from(request)
        try:
            raw, created = pipeline.receive(
                account=account, payload=payload, source=RawInbound.Source.WEBHOOK
            )
        except AdapterError as exc:
            return _error(400, "not_mail", exc.message)
    return JsonResponse(
        {"status": "accepted" if created else "duplicate", "id": raw.pk, "state": raw.state},
        status=202,
    )


def _channel_manager(request: HttpRequest) -> ActingAgent:
    """The person acting for this request, refused (403) unless their role manages channels."""
    acting = acting_agent_for_request(request)
    require(acting, Capability.MANAGE_CHANNELS)
    return acting


@tenant_required
def inbound_log(request: HttpRequest) -> HttpResponse:
    """What arrived on the merchant's channels, failures first: for admins."""
    _channel_manager(request)
    state = request.GET.get("state", RawInbound.State.FAILED)
    rows = RawInbound.objects.select_related("account", "ticket").defer("payload")
    if state != "all":
        rows = rows.filter(state=state)
    page = Paginator(rows.order_by("-received_at"), 50).get_page(request.GET.get("page"))
    accounts = ChannelAccount.objects.select_related("mailbox").order_by("kind", "name")
    return render(
        request,
        "channels_in/inbound_log.html",
        {
            "page": page,
            "state": state,
            "states": RawInbound.State.choices,
            "accounts": accounts,
            "pager_query": urlencode({"state": state}),
        },
    )


@require_POST
@tenant_required
def channel_resume(request: HttpRequest, pk: int) -> HttpResponse:
    acting = _channel_manager(request)
    account = get_object_or_404(ChannelAccount, pk=pk)
    services.resume_channel(acting_agent=acting, account=account)
    messages.success(request, _("The channel is running again."))
    return redirect("channels_in:log")


@tenant_required
def inbound_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _channel_manager(request)
    raw = get_object_or_404(RawInbound.objects.select_related("account", "ticket"), pk=pk)
    # Raw mail is often GBK or Big5: decode it as the parser would, not blindly as UTF-8.
    preview = decode_bytes(bytes(raw.payload[:20000]))
    return render(request, "channels_in/inbound_detail.html", {"raw": raw, "preview": preview})


@require_POST
@tenant_required
def inbound_retry(request: HttpRequest, pk: int) -> HttpResponse:
    acting = _channel_manager(request)
    raw = get_object_or_404(RawInbound.objects.defer("payload"), pk=pk)
    pipeline.retry_inbound(acting_agent=acting, raw=raw)
    raw.refresh_from_db(fields=["state", "error"])
    if raw.state == RawInbound.State.FAILED:
        messages.error(request, _("It failed again: %(error)s") % {"error": raw.error})
    else:
        messages.success(request, _("Sent through the pipeline again."))
    return redirect("channels_in:detail", pk=raw.pk)


@require_POST
@tenant_required
def inbound_discard(request: HttpRequest, pk: int) -> HttpResponse:
    """A failed or ignored message needs no ticket: it leaves the list, its bytes stay."""
    acting = _channel_manager(request)
    raw = get_object_or_404(RawInbound.objects.defer("payload"), pk=pk)
    pipeline.discard_inbound(acting_agent=acting, raw=raw, reason=request.POST.get("reason", ""))
    messages.success(request, _("The message was discarded."))
    return redirect("channels_in:detail", pk=raw.pk)


@require_POST
@tenant_required
def inbound_file(request: HttpRequest, pk: int) -> HttpResponse:
    """File a failed or ignored message as a ticket all the same."""
    acting = _channel_manager(request)
    raw = get_object_or_404(RawInbound.objects.defer("payload"), pk=pk)
    raw = pipeline.file_inbound_anyway(acting_agent=acting, raw=raw)
    messages.success(
        request,
        _("Filed on ticket #%(number)s.") % {"number": raw.ticket.number if raw.ticket else "?"},
    )
    return redirect("channels_in:detail", pk=raw.pk)
