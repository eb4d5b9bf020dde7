"""Settings pages of live chat channels: connect one, edit its origins, pre-chat form and
service styles, copy the ``<script>`` tag, rotate the public key. Every view needs
``MANAGE_CHANNELS``."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.templatetags.static import static
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels_in import chat_channels
from channels_in.chat_forms import ChatChannelForm
from channels_in.models import WebChat
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.views import tenant_required

SECTION = "settings:channels"
TEMPLATE = "settings/chat_channel_form.html"


def _webchat(pk: int) -> WebChat:
    """The active merchant's chat channel ``pk``; another merchant's id is 404."""
    return get_object_or_404(WebChat.objects.select_related("account"), account_id=pk)


@tenant_required
def chat_channel_new(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = ChatChannelForm(request.POST or None, initial={"prechat_fields": ["name", "email"]})
    if request.method == "POST" and form.is_valid():
        try:
            webchat = chat_channels.create_chat_channel(
                acting_agent=acting, chat_settings=form.chat_settings()
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(
                request,
                _("The live chat %(name)s is ready. Paste its script tag into your store's pages.")
                % {"name": webchat.account.name},
            )
            return redirect("settings:channel", pk=webchat.account_id)
    return render_settings(
        request,
        acting,
        TEMPLATE,
        {"form": form, "webchat": None},
        section=SECTION,
        status=400 if form.is_bound else 200,
    )


def chat_channel_edit(request: HttpRequest, acting: ActingAgent, pk: int) -> HttpResponse:
    """A chat channel's page (``settings:channel`` for chat channels)."""
    webchat = _webchat(pk)
    account = webchat.account
    if request.method != "POST":
        form = ChatChannelForm(
            initial={
                "name": account.name,
                "allowed_origins": "\n".join(webchat.allowed_origins),
                "prechat_fields": webchat.prechat_fields,
                "prechat_required": webchat.prechat_required,
                "persona_groups": webchat.persona_group_ids,
            }
        )
        return _page(request, acting, webchat, form=form)
    form = ChatChannelForm(request.POST)
    if form.is_valid():
        try:
            chat_channels.update_chat_channel(
                acting_agent=acting, webchat=webchat, chat_settings=form.chat_settings()
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, _("The channel settings are saved."))
            return redirect("settings:channel", pk=account.pk)
    webchat.refresh_from_db()
    return _page(request, acting, webchat, form=form, status=400)


@require_POST
@tenant_required
def chat_channel_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    webchat = chat_channels.rotate_public_key(acting_agent=acting, webchat=_webchat(pk))
    messages.success(
        request,
        _(
            "The chat has a new key. Update the script tag on your store; the old key works until %(until)s."
        )
        % {"until": _local(webchat.previous_key_valid_until)},
    )
    return redirect("settings:channel", pk=pk)


def _local(moment: datetime | None) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else ""


def snippet(request: HttpRequest, webchat: WebChat) -> str:
    """The tag a merchant pastes into their store's pages."""
    src = request.build_absolute_uri(static("chat/widget.js"))
    return f'<script src="{src}" data-key="{webchat.public_key}" async></script>'


def _page(
    request: HttpRequest,
    acting: ActingAgent,
    webchat: WebChat,
    *,
    form: ChatChannelForm,
    status: int = 200,
) -> HttpResponse:
    grace = webchat.previous_key_valid_until
    return render_settings(
        request,
        acting,
        TEMPLATE,
        {
            "form": form,
            "webchat": webchat,
            "account": webchat.account,
            "snippet": snippet(request, webchat),
            "previous_key_until": _local(grace) if grace and grace > timezone.now() else "",
        },
        section=SECTION,
        status=status,
    )
