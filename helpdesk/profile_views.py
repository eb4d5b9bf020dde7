"""The "My profile" page at /profile/: a signed-in member edits their own display name,
interface language and email signature in the active merchant (helpdesk.profile)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from helpdesk import profile
from helpdesk.errors import BadInput
from helpdesk.permissions import acting_agent_for_request
from helpdesk.views_settings import form_error
from tickets.views import tenant_required


def _language_choices() -> list[tuple[str, str]]:
    return [("", gettext_lazy("The merchant's default"))] + [
        (code, translation.get_language_info(code)["name_local"])
        for code in profile.interface_languages()
    ]


class ProfileForm(forms.Form):
    display_name = forms.CharField(
        label=gettext_lazy("Display name"),
        max_length=profile.MAX_DISPLAY_NAME_CHARS,
        required=False,
        help_text=gettext_lazy("How colleagues see you here. Empty: your username."),
    )
    language = forms.ChoiceField(
        label=gettext_lazy("Interface language"), choices=_language_choices, required=False
    )
    signature = forms.CharField(
        label=gettext_lazy("Email signature"),
        max_length=profile.MAX_SIGNATURE_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy("Added under your email replies."),
    )
    phone = forms.CharField(
        label=gettext_lazy("Phone number"),
        max_length=32,
        required=False,
        help_text=gettext_lazy(
            "Calls to the merchant's phone line ring this number while you are online and "
            "your group is open. Include the country code, e.g. +86 138 0013 8000."
        ),
    )


@tenant_required
def my_profile(request: HttpRequest) -> HttpResponse:
    acting = acting_agent_for_request(request)
    membership = acting.membership
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                profile.update_own_profile(acting_agent=acting, **form.cleaned_data)
            except BadInput as exc:
                form_error(form, exc)
            else:
                language = form.cleaned_data["language"] or request.tenant.locale
                translation.activate(language)  # the message below reads in the new language
                messages.success(request, _("Your profile is saved."))
                response = redirect("profile")
                if form.cleaned_data["language"]:
                    response.set_cookie(
                        settings.LANGUAGE_COOKIE_NAME, form.cleaned_data["language"]
                    )
                else:
                    response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
                return response
        status = 400
    else:
        form = ProfileForm(
            initial={
                "display_name": membership.display_name if membership else "",
                "language": membership.language if membership else "",
                "signature": membership.signature if membership else "",
                "phone": membership.phone if membership else "",
            }
        )
        status = 200
    return render(
        request,
        "account/profile.html",
        {"form": form, "member": membership, "acting": acting},
        status=status,
    )
