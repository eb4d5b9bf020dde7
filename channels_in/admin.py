from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from channels_in.crypto import encrypt_secret
from channels_in.models import ChannelAccount, Mailbox, RawInbound
from helpdesk.admin_base import TenantScopedAdmin


class MailboxForm(forms.ModelForm):
    """Passwords are write-only: typed in plain, stored encrypted, never shown again."""

    imap_password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave empty to keep the stored one."
    )
    smtp_password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave empty to keep the stored one."
    )

    class Meta:
        model = Mailbox
        fields = [
            "address",
            "from_name",
            "imap_host",
            "imap_port",
            "imap_use_ssl",
            "imap_username",
            "imap_password",
            "imap_folder",
            "smtp_host",
            "smtp_port",
            "smtp_use_tls",
            "smtp_use_ssl",
            "smtp_username",
            "smtp_password",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("smtp_use_tls") and cleaned.get("smtp_use_ssl"):
            raise forms.ValidationError(
                "Choose STARTTLS (usually port 587) or SSL/TLS (usually port 465), not both."
            )
        return cleaned

    def save(self, commit: bool = True) -> Mailbox:
        mailbox = super().save(commit=False)
        if self.cleaned_data.get("imap_password"):
            mailbox.imap_password_encrypted = encrypt_secret(self.cleaned_data["imap_password"])
        if self.cleaned_data.get("smtp_password"):
            mailbox.smtp_password_encrypted = encrypt_secret(self.cleaned_data["smtp_password"])
        if commit:
            mailbox.save()
        return mailbox


class MailboxInline(admin.StackedInline):
    model = Mailbox
    form = MailboxForm
    readonly_fields = ["imap_uidvalidity", "imap_last_uid", "imap_last_polled_at"]
    extra = 0


@admin.register(ChannelAccount)
class ChannelAccountAdmin(TenantScopedAdmin):
    list_display = ["name", "kind", "is_active", "paused", "last_error_at"]
    list_filter = ["kind", "is_active", "paused"]
    # The forwarding address changes only through its service (the old one keeps a grace period).
    readonly_fields = [
        "last_error",
        "last_error_at",
        "created_at",
        "forwarding_token",
        "previous_forwarding_token",
        "previous_forwarding_valid_until",
    ]
    inlines = [MailboxInline]


@admin.register(RawInbound)
class RawInboundAdmin(TenantScopedAdmin):
    list_display = ["received_at", "account", "external_id", "source", "state", "attempts"]
    list_filter = ["state", "source"]
    search_fields = ["external_id"]
    exclude = ("tenant", "payload")
    readonly_fields = [
        f.name for f in RawInbound._meta.fields if f.name not in {"tenant", "payload"}
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
