"""The WeChat channel's settings form. The EncodingAESKey and AppSecret are write-only."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from channels_in.wechat_accounts import WeChatSettings


def _secret_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class WeChatChannelForm(forms.Form):
    # Checked by channels_in.wechat_accounts, whose reasons speak WeChat's terms.
    name = forms.CharField(label=_("Channel name"), max_length=120)
    app_id = forms.CharField(label=_("AppID"), max_length=32)
    app_secret = _secret_field(
        _("AppSecret"), _("Needed to send replies and download customers' photos and voice.")
    )
    token = forms.CharField(
        label=_("Token"),
        max_length=32,
        help_text=_("Any 3 to 32 letters and digits: enter the same token in the WeChat platform."),
    )
    encoding_aes_key = _secret_field(
        _("EncodingAESKey"),
        _("For safe mode (recommended): WeChat then encrypts and signs each message's content."),
    )
    clear_aes_key = forms.BooleanField(
        label=_("Remove the saved EncodingAESKey (plain mode)"), required=False
    )

    def wechat_settings(self) -> WeChatSettings:
        data = self.cleaned_data
        return WeChatSettings(
            name=data["name"],
            app_id=data["app_id"],
            token=data["token"],
            encoding_aes_key=data["encoding_aes_key"],
            app_secret=data["app_secret"],
            clear_aes_key=data["clear_aes_key"],
        )
