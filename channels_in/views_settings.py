"""Settings pages for the merchant's channels: connect and edit mailboxes and JSON API
channels, test mailboxes, rotate the inbound secret, pause and resume. Every view needs
``MANAGE_CHANNELS``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels_in import api_channels, forwarding, mailboxes
from channels_in.forms import ApiChannelForm, AttachmentLimitForm, MailboxForm
from channels_in.models import ApiChannel, ChannelAccount, Mailbox
from channels_in.views_chat import chat_channel_edit
from channels_in.views_wechat import wechat_channel_edit
from helpdesk.errors import BadInput, EgressRefused
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.models import Channel
from tickets.views import tenant_required

SECTION = "settings:channels"


def _mailbox(pk: int) -> Mailbox:
    """The active merchant's mailbox of channel ``pk``; another merchant's id is 404."""
    return get_object_or_404(Mailbox.objects.select_related("account"), account_id=pk)


def _account(pk: int) -> ChannelAccount:
    """The active merchant's channel ``pk``, of any kind; another merchant's id is 404."""
    return get_object_or_404(ChannelAccount, pk=pk)


def _api_channel(pk: int) -> ApiChannel:
    """The active merchant's API channel ``pk``; another merchant's id is 404."""
    return get_object_or_404(ApiChannel.objects.select_related("account"), account_id=pk)


@tenant_required
def channel_list(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    accounts = ChannelAccount.objects.select_related(
        "mailbox", "api", "wechat", "webchat", "phone"
    ).order_by("kind", "name")
    limit_form = AttachmentLimitForm(
        initial={"megabytes": request.tenant.max_attachment_bytes // (1024 * 1024)}
    )
    return render_settings(
        request,
        acting,
        "settings/channels.html",
        {"accounts": accounts, "limit_form": limit_form},
        section=SECTION,
    )


@require_POST
@tenant_required
def attachment_limit(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = AttachmentLimitForm(request.POST)
    if form.is_valid():
        mailboxes.set_attachment_limit(
            acting_agent=acting, megabytes=form.cleaned_data["megabytes"]
        )
        messages.success(request, _("The attachment limit is saved."))
    else:
        messages.error(request, " ".join(form.errors.get("megabytes", [])))
    return redirect(SECTION)


@tenant_required
def channel_new(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = MailboxForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            mailbox = mailboxes.create_mailbox(
                acting_agent=acting,
                mailbox_settings=form.mailbox_settings(),
                imap_password=form.cleaned_data["imap_password"],
                smtp_password=form.cleaned_data["smtp_password"],
            )
        except EgressRefused as exc:
            return _refused_host(request, acting, form, exc, mailbox=None)
        messages.success(
            request,
            _("The mailbox %(address)s is connected. Test the connection to be sure.")
            % {"address": mailbox.address},
        )
        return redirect("settings:channel", pk=mailbox.account_id)
    return render_settings(
        request,
        acting,
        "settings/channel_form.html",
        {"form": form, "mailbox": None},
        section=SECTION,
        status=400 if form.is_bound else 200,
    )


def _refused_host(
    request: HttpRequest,
    acting: ActingAgent,
    form: MailboxForm,
    exc: EgressRefused,
    *,
    mailbox: Mailbox | None,
) -> HttpResponse:
    """The form again, with the guard's reason beside the server field it refused."""
    form_error(form, exc)
    if mailbox is not None:
        return _channel_page(request, acting, mailbox, form=form, status=400)
    return render_settings(
        request,
        acting,
        "settings/channel_form.html",
        {"form": form, "mailbox": None},
        section=SECTION,
        status=400,
    )


def _channel_page(
    request: HttpRequest,
    acting: ActingAgent,
    mailbox: Mailbox,
    *,
    form: MailboxForm | None = None,
    checks: list[mailboxes.ConnectionCheck] | None = None,
    status: int = 200,
) -> HttpResponse:
    if form is None:
        form = MailboxForm(initial=asdict(mailboxes.settings_of(mailbox)))
    return render_settings(
        request,
        acting,
        "settings/channel_form.html",
        {
            "form": form,
            "mailbox": mailbox,
            "account": mailbox.account,
            "checks": checks,
            "has_imap_password": bool(mailbox.imap_password_encrypted),
            "has_smtp_password": bool(mailbox.smtp_password_encrypted),
            "previous_secret_until": _grace_end(mailbox.account),
            "forwarding_address": forwarding.forwarding_address(mailbox.account),
            "previous_forwarding": forwarding.previous_forwarding_address(mailbox.account),
            "confirmations": forwarding.latest_confirmations(mailbox.account),
        },
        section=SECTION,
        status=status,
    )


@tenant_required
def channel_edit(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    kind = _account(pk).kind
    if kind == Channel.API:
        return api_channel_edit(request, acting, _api_channel(pk))
    if kind == Channel.WECHAT:
        return wechat_channel_edit(request, acting, pk)
    if kind == Channel.CHAT:
        return chat_channel_edit(request, acting, pk)
    if kind == Channel.PHONE:
        from channels_in.views_phone import phone_channel_edit

        return phone_channel_edit(request, acting, pk)
    mailbox = _mailbox(pk)
    if request.method != "POST":
        return _channel_page(request, acting, mailbox)
    form = MailboxForm(request.POST)
    if not form.is_valid():
        return _channel_page(request, acting, mailbox, form=form, status=400)
    try:
        mailboxes.update_mailbox(
            acting_agent=acting, mailbox=mailbox, mailbox_settings=form.mailbox_settings()
        )
    except EgressRefused as exc:
        mailbox.refresh_from_db()
        return _refused_host(request, acting, form, exc, mailbox=mailbox)
    for server in ("imap", "smtp"):
        # An empty password field means "keep the saved one": passwords are never sent back
        # to the browser, so the field is always empty when the page opens.
        password = form.cleaned_data[f"{server}_password"]
        if password:
            mailboxes.set_mailbox_password(
                acting_agent=acting, mailbox=mailbox, server=server, password=password
            )
    messages.success(request, _("The mailbox settings are saved."))
    return redirect("settings:channel", pk=pk)


@require_POST
@tenant_required
def channel_clear_password(request: HttpRequest, pk: int, server: str) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    mailbox = _mailbox(pk)
    mailboxes.set_mailbox_password(acting_agent=acting, mailbox=mailbox, server=server, password="")
    messages.success(request, _("The saved password is removed."))
    return redirect("settings:channel", pk=pk)


@require_POST
@tenant_required
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    mailbox = _mailbox(pk)
    checks = mailboxes.test_connection(acting_agent=acting, mailbox=mailbox)
    return _channel_page(request, acting, mailbox, checks=checks)


@require_POST
@tenant_required
def channel_test_mail(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    mailbox = _mailbox(pk)
    address = mailboxes.send_test_mail(acting_agent=acting, mailbox=mailbox)
    messages.success(
        request,
        _(
            "A test mail is on its way to %(address)s. It is marked automated, so it opens no ticket."
        )
        % {"address": address},
    )
    return redirect("settings:channel", pk=pk)


@require_POST
@tenant_required
def channel_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    account = _account(pk)
    mailboxes.rotate_inbound_secret(acting_agent=acting, account=account)
    messages.success(
        request,
        _(
            "The channel has a new secret. The old one works until %(until)s: update your "
            "forwarder or your system before then."
        )
        % {"until": _local(account.previous_secret_valid_until)},
    )
    return redirect("settings:channel", pk=pk)


@require_POST
@tenant_required
def channel_new_forwarding_address(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    account = _mailbox(pk).account
    forwarding.new_forwarding_address(acting_agent=acting, account=account)
    messages.success(
        request,
        _(
            "The channel has a new forwarding address. The old one works until %(until)s: "
            "update your mail host's forwarding before then."
        )
        % {"until": _local(account.previous_forwarding_valid_until)},
    )
    return redirect("settings:channel", pk=pk)


def _grace_end(account: ChannelAccount) -> datetime | None:
    """When the replaced secret stops working, while it still works."""
    until = account.previous_secret_valid_until
    if account.previous_inbound_secret and until and until > timezone.now():
        return until
    return None


def _local(moment: datetime) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


@require_POST
@tenant_required
def channel_pause(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    mailboxes.pause_channel(acting_agent=acting, account=_account(pk))
    messages.success(
        request, _("The channel is paused: no polling and no replies until you resume it.")
    )
    return redirect("settings:channel", pk=pk)


@require_POST
@tenant_required
def channel_resume(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    mailboxes.resume_channel(acting_agent=acting, account=_account(pk))
    messages.success(request, _("The channel is running again."))
    return redirect("settings:channel", pk=pk)


# --- JSON API channels -------------------------------------------------------------------------


@tenant_required
def api_channel_new(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = ApiChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            api = api_channels.create_api_channel(
                acting_agent=acting,
                name=form.cleaned_data["name"],
                callback_url=form.cleaned_data["callback_url"],
            )
        except BadInput as exc:  # EgressRefused included
            form_error(form, exc)
        else:
            messages.success(
                request,
                _(
                    "The API channel %(name)s is connected. Sign what your system posts with "
                    "its secret."
                )
                % {"name": api.account.name},
            )
            return redirect("settings:channel", pk=api.account_id)
    return render_settings(
        request,
        acting,
        "settings/api_channel_form.html",
        {"form": form, "api": None},
        section=SECTION,
        status=400 if form.is_bound else 200,
    )


def api_channel_edit(request: HttpRequest, acting: ActingAgent, api: ApiChannel) -> HttpResponse:
    """An API channel's page: its endpoint and secret, and its name and callback URL to edit."""
    account = api.account
    if request.method != "POST":
        form = ApiChannelForm(initial={"name": account.name, "callback_url": api.callback_url})
        return _api_channel_page(request, acting, api, form=form)
    form = ApiChannelForm(request.POST)
    if form.is_valid():
        try:
            api_channels.update_api_channel(
                acting_agent=acting,
                api_channel=api,
                name=form.cleaned_data["name"],
                callback_url=form.cleaned_data["callback_url"],
            )
        except BadInput as exc:  # EgressRefused included
            form_error(form, exc)
        else:
            messages.success(request, _("The channel settings are saved."))
            return redirect("settings:channel", pk=account.pk)
    api.refresh_from_db()
    account.refresh_from_db()
    return _api_channel_page(request, acting, api, form=form, status=400)


def _api_channel_page(
    request: HttpRequest,
    acting: ActingAgent,
    api: ApiChannel,
    *,
    form: ApiChannelForm,
    status: int = 200,
) -> HttpResponse:
    account = api.account
    endpoint = request.build_absolute_uri(
        reverse("channels_in:inbound", args=[request.tenant.slug, Channel.API, account.pk])
    )
    return render_settings(
        request,
        acting,
        "settings/api_channel_form.html",
        {
            "form": form,
            "api": api,
            "account": account,
            "endpoint": endpoint,
            "previous_secret_until": _grace_end(account),
        },
        section=SECTION,
        status=status,
    )
