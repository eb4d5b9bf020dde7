"""Forms of the account pages: the merchant's profile, its logo, and asking for its deletion.
They read what was typed; the rules live in helpdesk.account and helpdesk.deletion."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from helpdesk.account import (
    CUSTOMER_LANGUAGE_CODES,
    LOGO_CONTENT_TYPES,
    AccountSettings,
    time_zone_names,
)
from helpdesk.models import Tenant
from helpdesk.money import KNOWN_CURRENCIES


def _language_name(code: str) -> str:
    try:
        info = get_language_info(code)
    except KeyError:
        return code
    return f"{info['name_local']} ({code})"


class AccountForm(forms.Form):
    name = forms.CharField(label=_("Merchant name"), max_length=200)
    default_currency = forms.ChoiceField(label=_("Default currency"))
    time_zone = forms.ChoiceField(label=_("Time zone"))
    locale = forms.ChoiceField(label=_("Default language"))
    customer_languages = forms.MultipleChoiceField(
        label=_("Languages offered to customers"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The default language is always offered."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["default_currency"].choices = [(c, c) for c in sorted(KNOWN_CURRENCIES)]
        self.fields["time_zone"].choices = [(zone, zone) for zone in time_zone_names()]
        self.fields["locale"].choices = [
            (code, _language_name(code)) for code, _n in settings.LANGUAGES
        ]
        self.fields["customer_languages"].choices = [
            (code, _language_name(code)) for code in CUSTOMER_LANGUAGE_CODES
        ]

    @classmethod
    def initial_of(cls, tenant: Tenant) -> dict[str, Any]:
        return {
            "name": tenant.name,
            "default_currency": tenant.default_currency,
            "time_zone": tenant.time_zone,
            "locale": tenant.locale,
            "customer_languages": tenant.customer_languages,
        }

    def wanted(self) -> AccountSettings:
        data = self.cleaned_data
        return AccountSettings(
            name=data["name"],
            default_currency=data["default_currency"],
            time_zone=data["time_zone"],
            locale=data["locale"],
            customer_languages=list(data["customer_languages"]),
        )


class LogoForm(forms.Form):
    # A plain file field: helpdesk.account.checked_logo reads the bytes themselves.
    logo = forms.FileField(
        label=_("Logo"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(LOGO_CONTENT_TYPES.values())}),
        help_text=_("PNG, JPEG or WebP, at most 1 MB and 1024x1024 pixels."),
    )


class DeletionRequestForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    slug = forms.CharField(label=_("The merchant's address, typed out"), max_length=60)
