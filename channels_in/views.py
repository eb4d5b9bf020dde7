"""The inbound endpoint of every channel (thin: verify, store raw, enqueue, answer fast) and the
admins' inbox log."""

from __future__ import annotations

from io import BytesIO

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from channels_in import pipeline, registry, services
from channels_in.base import AdapterError, Answer, Refused
from channels_in.mail.charsets import decode_bytes
from channels_in.models import ChannelAccount, RawInbound
from helpdesk import tenancy, throttles
from helpdesk.models import Tenant
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require
from tickets.views import tenant_required


def _error(status: int, code: str, message: str) -> HttpResponse:
    return Answer.error(status, code, message).response()


def read_large_body(request: HttpRequest, *, max_bytes: int) -> bool:
    """Read the whole body, up to ``max_bytes``, into ``request.body``; False past it.

    ``request.body`` itself refuses anything above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, right
    for every form of the site), and mail with attachments is often far larger: the inbound
    endpoint alone reads the stream itself, still bounded, even when no Content-Length was sent.
    """
    body = request.read(max_bytes + 1)
    if len(body) > max_bytes:
        return False
    # What HttpRequest.body would have stored: later reads (body, a multipart form) see it.
    request._body = body
    request._stream = BytesIO(body)
    return True


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def inbound(request: HttpRequest, tenant_slug: str, kind: str, account_id: int) -> HttpResponse:
    """Every channel's webhook: ``/inbound/<merchant>/<kind>/<channel id>/``.

    Thin: find the channel, let its adapter answer a handshake or verify the request, store the
    delivery (``pipeline.receive``: raw first, deduplicated, queued after commit) and answer the
    provider the way the adapter says. The payload is processed by a worker.
    """
    # Counted per channel before any database work, so a flood costs one Redis increment each.
    # Senders retry on 429 (Postfix with the README's `curl -f || exit 75`, the providers on
    # their own), so messages past the quota are late, not lost.
    quota = throttles.take(
        scope="inbound",
        subject=f"{tenant_slug}:{account_id}",
        rate=settings.HELPDESK_INBOUND_RATE,
    )
    if not quota.allowed:
        response = _error(429, "rate_limited", "Too many messages for this channel; retry later")
        response["Retry-After"] = str(quota.retry_after_seconds)
        return response
    try:
        adapter_class = registry.adapter_class(kind)
    except AdapterError:
        raise Http404("No such channel") from None
    max_bytes = adapter_class.max_body_bytes or settings.HELPDESK_INBOUND_MAX_BYTES
    try:
        declared_length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "bad_length", "The Content-Length header is not a number")
    if declared_length > max_bytes or not read_large_body(request, max_bytes=max_bytes):
        return _error(413, "too_large", "The message is larger than this helpdesk accepts")
    tenant = Tenant.objects.filter(slug=tenant_slug, is_active=True).first()
    if tenant is None:
        raise Http404("No such channel")
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.filter(pk=account_id, kind=kind).first()
        if account is None:
            raise Http404("No such channel")
        adapter = adapter_class(account)
        try:
            if request.method != "POST":
                answer = adapter.handshake(request)
                if answer is None:
                    return HttpResponseNotAllowed(["POST"])
                return answer.response()
            adapter.verify(request)
            envelope = adapter.envelope(request)
        except Refused as refused:
            return _error(refused.status, refused.code, refused.message)
        try:
            raw, created = pipeline.receive(
                account=account, envelope=envelope, source=RawInbound.Source.WEBHOOK
            )
        except AdapterError as exc:
            return adapter.refuse_payload(exc).response()
        return adapter.answer(raw, created).response()


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
