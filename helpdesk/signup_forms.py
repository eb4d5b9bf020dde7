"""The signup forms: a new merchant with its owner's account (allauth's signup form plus the
shop), and another merchant for someone already signed in."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import get_adapter
from allauth.account.forms import SignupForm
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from helpdesk import signup
from helpdesk.errors import BadInput
from helpdesk.models import Tenant
from helpdesk.tenancy import SESSION_KEY


class MerchantFields(forms.Form):
    """What a merchant is set up with: its name, address, currency, time zone and language."""

    shop_name = forms.CharField(label=_("Shop name"), max_length=200)
    slug = forms.CharField(
        label=_("Shop address"),
        max_length=60,
        help_text=_("Lower-case letters, digits and hyphens; part of your forwarding address."),
        widget=forms.TextInput(attrs={"autocapitalize": "off", "spellcheck": "false"}),
    )
    default_currency = forms.ChoiceField(label=_("Default currency"), initial="CNY")
    time_zone = forms.ChoiceField(label=_("Time zone"), initial="Asia/Shanghai")
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES, initial="zh-hans")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["default_currency"].choices = [(code, code) for code in signup.currencies()]
        self.fields["time_zone"].choices = [(zone, zone) for zone in signup.time_zones()]

    def clean_slug(self) -> str:
        try:
            return signup.checked_slug(self.cleaned_data["slug"])
        except BadInput as exc:
            raise ValidationError(exc.message, code="slug") from exc

    def create_merchant(self, owner: Any, owner_name: str) -> Tenant:
        data = self.cleaned_data
        return signup.create_merchant(
            owner=owner,
            name=data["shop_name"],
            slug=data["slug"],
            default_currency=data["default_currency"],
            time_zone=data["time_zone"],
            language=data["language"],
            owner_name=owner_name,
        )


class MerchantSignupForm(MerchantFields, SignupForm):
    """allauth's signup (email, password, verification mail) with the shop and its owner's
    name: one transaction makes the account, the merchant and the owner's membership."""

    owner_name = forms.CharField(label=_("Your name"), max_length=150)

    field_order = [
        "shop_name",
        "slug",
        "owner_name",
        "email",
        "password1",
        "default_currency",
        "time_zone",
        "language",
    ]

    def clean_email(self) -> str:
        email = super().clean_email()
        # Said plainly, not hidden behind a "check your mail" page: a second account for the
        # same person is what must never happen, and they need to know where to go instead.
        if signup.email_taken(email):
            raise ValidationError(get_adapter().error_messages["email_taken"], code="email_taken")
        return email

    def save(self, request: HttpRequest) -> Any:
        with transaction.atomic():
            user = super().save(request)
            user.first_name = self.cleaned_data["owner_name"].strip()[:150]
            user.save(update_fields=["first_name"])
            tenant = self.create_merchant(user, user.first_name)
        request.session[SESSION_KEY] = tenant.pk
        return user


class AddMerchantForm(MerchantFields):
    """Another merchant for someone signed in: they become its owner."""
