"""Forms of the channel settings pages. Passwords are write-only: never rendered back."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from channels_in.mailboxes import MAX_ATTACHMENT_MEGABYTES, MailboxSettings


class MailboxForm(forms.Form):
    name = forms.CharField(label=_("Channel name"), max_length=120)
    address = forms.EmailField(label=_("Support address"))
    from_name = forms.CharField(label=_("From name"), max_length=120, required=False)
    imap_host = forms.CharField(label=_("IMAP server"), max_length=255, required=False)
    imap_port = forms.IntegerField(label=_("IMAP port"), min_value=1, max_value=65535, initial=993)
    imap_use_ssl = forms.BooleanField(label=_("IMAP over SSL"), required=False, initial=True)
    imap_username = forms.CharField(label=_("IMAP username"), max_length=255, required=False)
    imap_password = forms.CharField(
        label=_("IMAP password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    imap_folder = forms.CharField(label=_("IMAP folder"), max_length=255, initial="INBOX")
    smtp_host = forms.CharField(label=_("SMTP server"), max_length=255, required=False)
    smtp_port = forms.IntegerField(label=_("SMTP port"), min_value=1, max_value=65535, initial=587)
    smtp_use_tls = forms.BooleanField(label=_("SMTP with STARTTLS"), required=False, initial=True)
    smtp_use_ssl = forms.BooleanField(label=_("SMTP over SSL"), required=False)
    smtp_username = forms.CharField(label=_("SMTP username"), max_length=255, required=False)
    smtp_password = forms.CharField(
        label=_("SMTP password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("smtp_use_tls") and cleaned.get("smtp_use_ssl"):
            self.add_error("smtp_use_ssl", _("Choose STARTTLS or SSL for SMTP, not both."))
        return cleaned

    def mailbox_settings(self) -> MailboxSettings:
        fields = MailboxSettings.__dataclass_fields__
        return MailboxSettings(**{k: v for k, v in self.cleaned_data.items() if k in fields})


class AttachmentLimitForm(forms.Form):
    megabytes = forms.IntegerField(
        label=_("Largest attachment kept (MB)"), min_value=1, max_value=MAX_ATTACHMENT_MEGABYTES
    )


class ApiChannelForm(forms.Form):
    name = forms.CharField(label=_("Channel name"), max_length=120)
    # Checked by channels_in.api_channels (scheme, public address, usual port), whose reasons
    # are more precise than a URL field's.
    callback_url = forms.CharField(
        label=_("Callback URL for replies"),
        max_length=500,
        required=False,
        help_text=_("Agents' replies are posted here, signed. Leave empty to only receive."),
        widget=forms.URLInput(attrs={"placeholder": "https://shop.example.com/helpdesk/replies"}),
    )
