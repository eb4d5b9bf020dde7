"""Settings pages of WeChat Official Account channels: connect one, edit it, see the server
URL to paste into WeChat, and test the API credentials. Every view needs ``MANAGE_CHANNELS``."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels_in import wechat_accounts
from channels_in.models import WeChatAccount
from channels_in.wechat_forms import WeChatChannelForm
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.models import Channel
from tickets.views import tenant_required

SECTION = "settings:channels"
TEMPLATE = "settings/wechat_channel_form.html"


def _wechat(pk: int) -> WeChatAccount:
    """The active merchant's WeChat channel ``pk``; another merchant's id is 404."""
    return get_object_or_404(WeChatAccount.objects.select_related("account"), account_id=pk)


@tenant_required
def wechat_channel_new(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = WeChatChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            wechat = wechat_accounts.create_wechat_channel(
                acting_agent=acting, values=form.wechat_settings()
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(
                request,
                _(
                    "The WeChat account %(name)s is connected. Paste the server URL and token "
                    "into the WeChat platform, then test the AppSecret."
                )
                % {"name": wechat.account.name},
            )
            return redirect("settings:channel", pk=wechat.account_id)
    return render_settings(
        request,
        acting,
        TEMPLATE,
        {"form": form, "wechat": None},
        section=SECTION,
        status=400 if form.is_bound else 200,
    )


def wechat_channel_edit(request: HttpRequest, acting: ActingAgent, pk: int) -> HttpResponse:
    """A WeChat channel's page (``settings:channel`` hands it over)."""
    wechat = _wechat(pk)
    if request.method != "POST":
        return _page(request, acting, wechat, form=_initial_form(wechat))
    form = WeChatChannelForm(request.POST)
    if form.is_valid():
        try:
            wechat_accounts.update_wechat_channel(
                acting_agent=acting, wechat=wechat, values=form.wechat_settings()
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, _("The channel settings are saved."))
            return redirect("settings:channel", pk=pk)
    return _page(request, acting, _wechat(pk), form=form, status=400)


@require_POST
@tenant_required
def wechat_channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    wechat = _wechat(pk)
    check = wechat_accounts.test_wechat_credentials(acting_agent=acting, wechat=wechat)
    return _page(request, acting, wechat, form=_initial_form(wechat), check=check)


def _initial_form(wechat: WeChatAccount) -> WeChatChannelForm:
    return WeChatChannelForm(
        initial={"name": wechat.account.name, "app_id": wechat.app_id, "token": wechat.token}
    )


def _page(
    request: HttpRequest,
    acting: ActingAgent,
    wechat: WeChatAccount,
    *,
    form: WeChatChannelForm,
    check: wechat_accounts.TokenCheck | None = None,
    status: int = 200,
) -> HttpResponse:
    account = wechat.account
    server_url = request.build_absolute_uri(
        reverse("channels_in:inbound", args=[request.tenant.slug, Channel.WECHAT, account.pk])
    )
    return render_settings(
        request,
        acting,
        TEMPLATE,
        {
            "form": form,
            "wechat": wechat,
            "account": account,
            "server_url": server_url,
            "safe_mode": bool(wechat.encoding_aes_key_encrypted),
            "has_app_secret": bool(wechat.app_secret_encrypted),
            "check": check,
        },
        section=SECTION,
        status=status,
    )
